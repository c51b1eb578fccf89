"""Figures of notebook 04_marginal_trap (paper §4, issue (ii): the marginal trap). The tables come from
:mod:`dlmpaper.analyses.trap`; this module only draws them:

* :func:`plot_likes_exact` - joint vs product of marginals for "_ _ tennis" (``04_likes_exact``);
* :func:`plot_invalid_rates` - invalid rate vs tokens per step on the toy languages
  (``04_invalid_vs_tokens_per_step``);
* :func:`plot_sweep` - incoherence proxies vs tokens per step (``04_real_model_sweep``);
* :func:`plot_committed_states` - how often a committed token would be revised
  (``04_committed_states``).

Every function takes DataFrames and returns a matplotlib Figure (saved by the notebook with
:func:`dlmpaper.figures.style.save_figure`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from dlmpaper.core.tables import require_columns as _need

__all__ = ["METRIC_LABELS", "plot_committed_states", "plot_invalid_rates", "plot_likes_exact", "plot_sweep"]

#: Axis labels of the sweep metrics (columns of :func:`dlmpaper.core.sampling.sweep`).
METRIC_LABELS: dict[str, str] = {
    "adjacent_duplicate_rate": "adjacent-duplicate rate",
    "distinct_ratio": "distinct-token ratio",
    "seq_loglik_per_token": "sequential log-lik. / token (nats)",
    "answer_length": "answer length (tokens)",
    "would_revise": "share of committed tokens\nthe model would revise",
}

_EXACT_COLOR = "#333333"
_TRAINED_COLOR = "#DE8F05"
_INVALID_COLOR = "#C0392B"


def _levels(series: pd.Series) -> list[str]:
    """Distinct values in display order: a categorical's category order, else first appearance."""
    present = list(dict.fromkeys(series.astype(str)))
    if isinstance(series.dtype, pd.CategoricalDtype):
        return [str(c) for c in series.cat.categories if str(c) in present]
    return present


# --------------------------------------------------------------------------- figure 1
def plot_likes_exact(table: pd.DataFrame, *, title: str | None = None):
    """Two heatmaps, joint P(subject, verb | visible) and the product of the two marginals,
    with the invalid (subject, verb) cells hatched (paper §4 "I likes tennis"; figure
    ``04_likes_exact``). ``table`` is :func:`dlmpaper.core.trap.likes_example` (columns ``subject,
    verb, joint, product, valid``; ``attrs`` ``invalid_mass`` and ``partial`` used in titles)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    _need(table, ["subject", "verb", "joint", "product", "valid"], "plot_likes_exact")
    subjects, verbs = _levels(table["subject"]), _levels(table["verb"])
    t = table.assign(subject=table["subject"].astype(str), verb=table["verb"].astype(str))
    grids = {
        c: t.pivot(index="subject", columns="verb", values=c).reindex(index=subjects, columns=verbs)
        for c in ("joint", "product", "valid")
    }
    valid = grids["valid"].fillna(False).to_numpy(dtype=bool)
    vmax = float(max(grids["joint"].to_numpy().max(), grids["product"].to_numpy().max()))
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.4), sharey=True)
    partial = table.attrs.get("partial", "_ _ tennis")
    names = {"joint": f"joint  P(subject, verb | {partial})", "product": "product of marginals  P(subject) P(verb)"}
    for ax, col in zip(axes, ("joint", "product")):
        values = grids[col].to_numpy(dtype=float)
        im = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, aspect="auto")
        ax.grid(False)
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                v = values[i, j]
                colour = "white" if v > 0.6 * vmax else "black"
                ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=8, color=colour)
                if not valid[i, j]:
                    ax.add_patch(
                        Rectangle(
                            (j - 0.5, i - 0.5),
                            1,
                            1,
                            fill=False,
                            hatch="///",
                            edgecolor=_INVALID_COLOR,
                            linewidth=0.0,
                            alpha=0.55,
                        )
                    )
        mass = float(np.nansum(np.where(valid, 0.0, values)))
        ax.set_title(f"{names[col]}\nmass on invalid pairs: {mass:.3f}", fontsize=9)
        ax.set_xticks(range(len(verbs)), verbs)
        ax.set_yticks(range(len(subjects)), subjects)
        ax.set_xlabel("verb")
    axes[0].set_ylabel("subject")
    fig.colorbar(im, ax=list(axes), shrink=0.85, label="probability")
    handle = Rectangle((0, 0), 1, 1, fill=False, hatch="///", edgecolor=_INVALID_COLOR, linewidth=0.0)
    fig.legend(
        [handle], ["invalid pair (no agreement)"], loc="lower center", ncol=1, fontsize=8, bbox_to_anchor=(0.45, -0.06)
    )
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# --------------------------------------------------------------------------- figure 2
def plot_invalid_rates(rates: pd.DataFrame, *, jitter: float = 0.08):
    """Invalid rate of full parallel decoding vs tokens per step, one panel per (order,
    language) (paper §4, issue (ii); figure ``04_invalid_vs_tokens_per_step``). ``rates`` is
    :func:`dlmpaper.analyses.trap.toy_invalid_rates` (or several
    :func:`dlmpaper.core.trap.invalid_rate_by_tokens_per_step` tables concatenated): the exact
    recursion for exact marginals (black line), the simulation with its 95% Wilson interval
    (black circles), and the trained model (orange: simulation with interval, exact recursion
    dashed). The x axis is log2; markers are shifted by ``2**(+-jitter)`` so intervals do not overlap."""
    import matplotlib.pyplot as plt

    _need(
        rates,
        [
            "language",
            "order",
            "marginals",
            "tokens_per_step",
            "invalid_exact",
            "invalid_sim",
            "sim_ci_low",
            "sim_ci_high",
        ],
        "plot_invalid_rates",
    )
    languages = list(dict.fromkeys(rates["language"]))
    orders = list(dict.fromkeys(rates["order"]))
    fig, axes = plt.subplots(
        len(orders),
        len(languages),
        figsize=(2.6 * len(languages) + 0.6, 2.3 * len(orders) + 0.7),
        sharey=True,
        squeeze=False,
    )
    styles = {
        "exact": dict(color=_EXACT_COLOR, marker="o", mfc="white", dx=2.0**-jitter),
        "trained": dict(color=_TRAINED_COLOR, marker="s", mfc=_TRAINED_COLOR, dx=2.0**jitter),
    }
    for r, order in enumerate(orders):
        for c, lang in enumerate(languages):
            ax = axes[r, c]
            part = rates[(rates["order"] == order) & (rates["language"] == lang)]
            for label, st in styles.items():
                d = part[part["marginals"] == label].sort_values("tokens_per_step")
                if d.empty:
                    continue
                k = d["tokens_per_step"].to_numpy(dtype=float)
                if d["invalid_exact"].notna().any():
                    ax.plot(
                        k, d["invalid_exact"], color=st["color"], lw=1.3, ls="-" if label == "exact" else "--", zorder=2
                    )
                sim = d["invalid_sim"].to_numpy()
                err = np.vstack([sim - d["sim_ci_low"].to_numpy(), d["sim_ci_high"].to_numpy() - sim])
                ax.errorbar(
                    k * st["dx"],
                    sim,
                    yerr=np.clip(err, 0, None),
                    fmt=st["marker"],
                    color=st["color"],
                    mfc=st["mfc"],
                    ms=4,
                    capsize=2,
                    lw=0.9,
                    zorder=3,
                )
            ks = sorted(part["tokens_per_step"].unique())
            ax.set_xscale("log", base=2)
            ax.set_xticks(ks, [str(int(v)) for v in ks])
            ax.minorticks_off()
            ax.set_ylim(-0.03, 1.03)
            ax.set_title(f"{lang}, {order.replace('_', '-')}", fontsize=9)
            if r == len(orders) - 1:
                ax.set_xlabel("tokens per step k")
            if c == 0:
                ax.set_ylabel("P(invalid sequence)")
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=_EXACT_COLOR, lw=1.3, label="exact marginals: exact recursion"),
        Line2D(
            [], [], color=_EXACT_COLOR, marker="o", mfc="white", ls="none", label="exact marginals: simulation (95% CI)"
        ),
        Line2D([], [], color=_TRAINED_COLOR, lw=1.3, ls="--", label="trained toy model: exact recursion"),
        Line2D([], [], color=_TRAINED_COLOR, marker="s", ls="none", label="trained toy model: simulation (95% CI)"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, bbox_to_anchor=(0.5, -0.1))
    return fig


# --------------------------------------------------------------------------- statistics
# --------------------------------------------------------------------------- figure 3
def plot_sweep(
    summary: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    *,
    hue: str = "block_length",
    hue_labels: dict | None = None,
):
    """Incoherence proxies vs tokens per step, one panel per metric, one line per ``hue``
    value (mean over prompts with its 95% CI as a band) (paper §4, issue (ii); figure
    ``04_real_model_sweep``). ``summary`` is :func:`summarize_over_prompts` of the sweep
    grouped by ``[hue, "tokens_per_step"]``; ``hue_labels`` maps hue values to legend text."""
    import matplotlib.pyplot as plt

    _need(summary, [hue, "tokens_per_step", "metric", "mean", "ci_low", "ci_high"], "plot_sweep")
    metrics = list(metrics) if metrics is not None else list(dict.fromkeys(summary["metric"]))
    if not metrics:
        raise ValueError("plot_sweep: no metric to plot")
    ncols = min(len(metrics), 2)
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.5 * nrows + 0.4), squeeze=False)
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    hues = list(dict.fromkeys(sorted(summary[hue].unique())))
    for ax, m in zip(axes.flat, metrics):
        d = summary[summary["metric"] == m]
        for i, h in enumerate(hues):
            s = d[d[hue] == h].sort_values("tokens_per_step")
            if s.empty:
                continue
            label = (hue_labels or {}).get(h, f"{hue.replace('_', ' ')} {h}")
            colour = palette[i % len(palette)]
            ax.plot(s["tokens_per_step"], s["mean"], marker="o", ms=3.5, color=colour, label=label)
            ax.fill_between(s["tokens_per_step"], s["ci_low"], s["ci_high"], color=colour, alpha=0.2, lw=0)
        ks = sorted(d["tokens_per_step"].unique())
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("tokens per step")
        ax.set_ylabel(METRIC_LABELS.get(m, m), fontsize=8)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=max(1, len(labels)), fontsize=8, bbox_to_anchor=(0.5, -0.06))
    return fig


# --------------------------------------------------------------------------- figure 4
def plot_committed_states(by_tps: pd.DataFrame, by_phase: pd.DataFrame | None = None):
    """Share of committed tokens the model would revise if re-masked alone, vs tokens per step
    (left), and split by when they were committed (right, grouped bars) (paper §4, issue (ii), committed
    intermediate states; figure ``04_committed_states``). Both tables come from
    :func:`summarize_over_prompts` over :func:`revision_rates`; ``by_tps`` grouped by
    ``tokens_per_step``, ``by_phase`` by ``[tokens_per_step, phase]``."""
    import matplotlib.pyplot as plt

    _need(by_tps, ["tokens_per_step", "mean", "ci_low", "ci_high"], "plot_committed_states")
    ncols = 1 if by_phase is None else 2
    fig, axes = plt.subplots(1, ncols, figsize=(3.5 * ncols, 2.9), squeeze=False)
    ax = axes[0, 0]
    s = by_tps.sort_values("tokens_per_step")
    k = s["tokens_per_step"].to_numpy(dtype=float)
    ax.errorbar(
        k,
        s["mean"],
        yerr=np.clip(np.vstack([s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]]), 0, None),
        marker="o",
        ms=4,
        capsize=3,
        color=_EXACT_COLOR,
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks(k, [str(int(v)) for v in k])
    ax.minorticks_off()
    ax.set_xlabel("tokens per step")
    ax.set_ylabel(METRIC_LABELS["would_revise"], fontsize=8)
    ax.set_title("all committed tokens", fontsize=9)
    highs = [np.nanmax(s["ci_high"].to_numpy(dtype=float))]
    if by_phase is not None:
        _need(by_phase, ["tokens_per_step", "phase", "mean", "ci_low", "ci_high"], "plot_committed_states")
        ax2 = axes[0, 1]
        phases = _levels(by_phase["phase"])
        ks = sorted(by_phase["tokens_per_step"].unique())
        width = 0.8 / max(1, len(phases))
        palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for j, ph in enumerate(phases):
            d = by_phase[by_phase["phase"].astype(str) == ph].set_index("tokens_per_step").reindex(ks)
            x = np.arange(len(ks)) + (j - (len(phases) - 1) / 2) * width
            err = np.clip(np.vstack([d["mean"] - d["ci_low"], d["ci_high"] - d["mean"]]).astype(float), 0, None)
            ax2.bar(
                x,
                d["mean"],
                width=width,
                color=palette[j % len(palette)],
                label=f"committed {ph}",
                yerr=np.nan_to_num(err),
                capsize=2,
                error_kw=dict(lw=0.8),
            )
        ax2.set_xticks(np.arange(len(ks)), [str(v) for v in ks])
        ax2.set_xlabel("tokens per step")
        ax2.set_title("by commit time (1st / 2nd half of the steps)", fontsize=9)
        ax2.legend(fontsize=8, loc="upper left", ncol=len(phases))
        highs.append(np.nanmax(by_phase["ci_high"].to_numpy(dtype=float)))
    top = min(1.0, 1.25 * max([h for h in highs if np.isfinite(h)], default=1.0)) or 1.0
    for a in axes.flat:
        a.set_ylim(0.0, top)
    return fig
