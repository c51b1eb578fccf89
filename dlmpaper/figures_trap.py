"""Tables and figures of notebook 04_marginal_trap (paper §4, issue (ii), the marginal trap).

Paper: "On the Role of Discreteness in Diffusion LLMs" (arXiv 2512.22630). A masked diffusion
LM is trained token by token, so it learns per-position marginals, not their joint; a step
that commits several positions samples from the product of marginals ("I like" and "He
likes" are fine, "I likes" gets produced), worse with committed intermediate states and with
fewer steps than tokens. The analyses live in :mod:`dlmpaper.trap` (exact toy languages),
:mod:`dlmpaper.toymodels` (trained toy models) and :mod:`dlmpaper.sampling` (the real model);
this module only turns their tidy tables into numbers with uncertainties and figures:

* :func:`plot_likes_exact` - joint vs product of marginals for "_ _ tennis" (``04_likes_exact``);
* :func:`plot_invalid_rates` - invalid rate vs tokens per step on the toy languages
  (``04_invalid_vs_tokens_per_step``);
* :func:`summarize_over_prompts`, :func:`paired_change` - means with bootstrap 95% CIs over
  prompts, and paired differences between two decoder settings;
* :func:`plot_sweep` - incoherence proxies vs tokens per step (``04_real_model_sweep``);
* :func:`example_answers` - side-by-side answers at a few tokens-per-step values;
* :func:`end_fill_by_step` - which positions get end tokens at each step (one block);
* :func:`commit_phase`, :func:`revision_rates`, :func:`plot_committed_states` - how often
  a committed token would be revised (``04_committed_states``);

Every plotting function takes DataFrames and returns a matplotlib Figure (saved by the
notebook with :func:`dlmpaper.plotting.save_figure`).
"""

from __future__ import annotations

import textwrap
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "METRIC_LABELS",
    "EXPECTED_DIRECTION",
    "plot_likes_exact",
    "plot_invalid_rates",
    "bootstrap_ci",
    "wilson_interval",
    "summarize_over_prompts",
    "paired_change",
    "plot_sweep",
    "example_answers",
    "end_fill_by_step",
    "commit_phase",
    "revision_rates",
    "plot_committed_states",
]

#: Axis labels of the sweep metrics (columns of :func:`dlmpaper.sampling.sweep`).
METRIC_LABELS: dict[str, str] = {
    "adjacent_duplicate_rate": "adjacent-duplicate rate",
    "distinct_ratio": "distinct-token ratio",
    "seq_loglik_per_token": "sequential log-lik. / token (nats)",
    "answer_length": "answer length (tokens)",
    "would_revise": "share of committed tokens\nthe model would revise",
}

#: Direction in which the marginal trap should move each metric as tokens per step grow
#: (+1 up, -1 down, 0 no prediction). Answer length: no prediction in general; with one
#: block, low-confidence decoding fills end tokens from the tail first and answers shrink.
EXPECTED_DIRECTION: dict[str, int] = {
    "adjacent_duplicate_rate": +1,
    "distinct_ratio": -1,
    "seq_loglik_per_token": -1,
    "answer_length": 0,
    "would_revise": +1,
}

_EXACT_COLOR = "#333333"
_TRAINED_COLOR = "#DE8F05"
_INVALID_COLOR = "#C0392B"


def _need(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} needs columns {missing}; pass the table named in its docstring")


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
    ``04_likes_exact``). ``table`` is :func:`dlmpaper.trap.likes_example` (columns ``subject,
    verb, joint, product, valid``; ``attrs`` ``invalid_mass`` and ``partial`` used in titles)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    _need(table, ["subject", "verb", "joint", "product", "valid"], "plot_likes_exact")
    subjects, verbs = _levels(table["subject"]), _levels(table["verb"])
    t = table.assign(subject=table["subject"].astype(str), verb=table["verb"].astype(str))
    grids = {c: t.pivot(index="subject", columns="verb", values=c).reindex(index=subjects, columns=verbs)
             for c in ("joint", "product", "valid")}
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
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///",
                                           edgecolor=_INVALID_COLOR, linewidth=0.0, alpha=0.55))
        mass = float(np.nansum(np.where(valid, 0.0, values)))
        ax.set_title(f"{names[col]}\nmass on invalid pairs: {mass:.3f}", fontsize=9)
        ax.set_xticks(range(len(verbs)), verbs)
        ax.set_yticks(range(len(subjects)), subjects)
        ax.set_xlabel("verb")
    axes[0].set_ylabel("subject")
    fig.colorbar(im, ax=list(axes), shrink=0.85, label="probability")
    handle = Rectangle((0, 0), 1, 1, fill=False, hatch="///", edgecolor=_INVALID_COLOR, linewidth=0.0)
    fig.legend([handle], ["invalid pair (no agreement)"], loc="lower center", ncol=1, fontsize=8,
               bbox_to_anchor=(0.45, -0.06))
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# --------------------------------------------------------------------------- figure 2
def plot_invalid_rates(rates: pd.DataFrame, *, jitter: float = 0.08):
    """Invalid rate of full parallel decoding vs tokens per step, one panel per (order,
    language) (paper §4, issue (ii); figure ``04_invalid_vs_tokens_per_step``). ``rates`` is
    :func:`dlmpaper.toymodels.toy_invalid_rates` (or several
    :func:`dlmpaper.trap.invalid_rate_by_tokens_per_step` tables concatenated): the exact
    recursion for exact marginals (black line), the simulation with its 95% Wilson interval
    (black circles), and the trained model (orange: simulation with interval, exact recursion
    dashed). The x axis is log2; markers are shifted by ``2**(+-jitter)`` so intervals do not overlap."""
    import matplotlib.pyplot as plt

    _need(rates, ["language", "order", "marginals", "tokens_per_step", "invalid_exact", "invalid_sim",
                  "sim_ci_low", "sim_ci_high"], "plot_invalid_rates")
    languages = list(dict.fromkeys(rates["language"]))
    orders = list(dict.fromkeys(rates["order"]))
    fig, axes = plt.subplots(len(orders), len(languages), figsize=(2.6 * len(languages) + 0.6, 2.3 * len(orders) + 0.7),
                             sharey=True, squeeze=False)
    styles = {"exact": dict(color=_EXACT_COLOR, marker="o", mfc="white", dx=2.0 ** -jitter),
              "trained": dict(color=_TRAINED_COLOR, marker="s", mfc=_TRAINED_COLOR, dx=2.0 ** jitter)}
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
                    ax.plot(k, d["invalid_exact"], color=st["color"], lw=1.3,
                            ls="-" if label == "exact" else "--", zorder=2)
                sim = d["invalid_sim"].to_numpy()
                err = np.vstack([sim - d["sim_ci_low"].to_numpy(), d["sim_ci_high"].to_numpy() - sim])
                ax.errorbar(k * st["dx"], sim, yerr=np.clip(err, 0, None), fmt=st["marker"], color=st["color"],
                            mfc=st["mfc"], ms=4, capsize=2, lw=0.9, zorder=3)
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
        Line2D([], [], color=_EXACT_COLOR, marker="o", mfc="white", ls="none",
               label="exact marginals: simulation (95% CI)"),
        Line2D([], [], color=_TRAINED_COLOR, lw=1.3, ls="--", label="trained toy model: exact recursion"),
        Line2D([], [], color=_TRAINED_COLOR, marker="s", ls="none", label="trained toy model: simulation (95% CI)"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, bbox_to_anchor=(0.5, -0.1))
    return fig


# --------------------------------------------------------------------------- statistics
def bootstrap_ci(values: Iterable[float], n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float, int]:
    """``(mean, low, high, n)``: mean of the finite ``values`` (one per prompt) and its
    percentile-bootstrap 95% CI (``n_boot`` resamples, ``seed``); NaNs where none is finite."""
    x = np.asarray(list(values), dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan"), 0
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    boots = x[rng.integers(0, x.size, size=(int(n_boot), x.size))].mean(axis=1)
    return float(x.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5)), int(x.size)


def wilson_interval(rate: float, n: int) -> tuple[float, float]:
    """95% Wilson interval of a simulated proportion ``rate`` over ``n`` draws (notebook 04,
    the one-step simulation of "_ _ tennis"); the same interval as :mod:`dlmpaper.trap` uses."""
    from dlmpaper.trap import wilson

    if n < 1 or not 0.0 <= rate <= 1.0:
        raise ValueError(f"need n >= 1 and 0 <= rate <= 1, got n={n}, rate={rate}")
    return wilson(int(round(rate * n)), int(n))


def summarize_over_prompts(frame: pd.DataFrame, by: Sequence[str], metrics: Sequence[str],
                           n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Mean over rows (one per prompt) of each metric per group ``by``, with a bootstrap 95% CI.

    Tidy columns: ``*by, metric, mean, ci_low, ci_high, n`` (``n``: rows with a finite value;
    e.g. the adjacent-duplicate rate is NaN for answers under two tokens). Notebook 04, the
    sweep of :func:`dlmpaper.sampling.sweep` and the :func:`revision_rates` table."""
    by = list(by)
    _need(frame, [*by, *metrics], "summarize_over_prompts")
    rows = []
    for key, group in frame.groupby(by, sort=True, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        for m in metrics:
            mean, lo, hi, n = bootstrap_ci(group[m].astype(float), n_boot, seed)
            rows.append({**dict(zip(by, key)), "metric": m, "mean": mean, "ci_low": lo, "ci_high": hi, "n": n})
    return pd.DataFrame(rows, columns=[*by, "metric", "mean", "ci_low", "ci_high", "n"])


def paired_change(frame: pd.DataFrame, metric: str, *, baseline, compare, column: str = "tokens_per_step",
                  by: Sequence[str] = ("block_length",), key: str = "prompt",
                  n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per group ``by``: mean over prompts of ``metric(compare) - metric(baseline)``, the two
    settings of ``column`` paired by ``key`` (the same prompt), with a bootstrap 95% CI.

    Columns ``*by, metric, baseline, compare, diff, ci_low, ci_high, n, expected`` (the sign
    from :data:`EXPECTED_DIRECTION`) and ``agrees``: True when the CI excludes 0 in the
    expected direction, False when it excludes 0 the other way, NaN (None) otherwise or when
    there is no expectation. Notebook 04's verdict lines."""
    by = list(by)
    _need(frame, [*by, column, key, metric], "paired_change")
    rows = []
    for group_key, group in frame.groupby(by, sort=True, observed=True):
        group_key = group_key if isinstance(group_key, tuple) else (group_key,)
        wide = group.pivot_table(index=key, columns=column, values=metric, aggfunc="mean")
        if baseline not in wide.columns or compare not in wide.columns:
            raise ValueError(f"paired_change: {column}={baseline!r} or {compare!r} missing in group {group_key}")
        mean, lo, hi, n = bootstrap_ci(wide[compare] - wide[baseline], n_boot, seed)
        expected = EXPECTED_DIRECTION.get(metric, 0)
        if expected == 0 or n == 0 or lo <= 0 <= hi:
            agrees = None
        else:
            agrees = bool(np.sign(mean) == expected)
        rows.append({**dict(zip(by, group_key)), "metric": metric, "baseline": baseline, "compare": compare,
                     "diff": mean, "ci_low": lo, "ci_high": hi, "n": n, "expected": expected, "agrees": agrees})
    out = pd.DataFrame(rows)
    out["agrees"] = pd.Series([r["agrees"] for r in rows], index=out.index, dtype=object)  # True / False / None
    return out


# --------------------------------------------------------------------------- figure 3
def plot_sweep(summary: pd.DataFrame, metrics: Sequence[str] | None = None, *, hue: str = "block_length",
               hue_labels: dict | None = None):
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
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=max(1, len(labels)), fontsize=8, bbox_to_anchor=(0.5, -0.06))
    return fig


def example_answers(sweep: pd.DataFrame, tokens_per_step: Sequence[int] = (1, 4, 16), *,
                    prompts: Sequence[int] = (0, 1), block_lengths: Sequence[int] | None = None,
                    width: int = 60) -> pd.DataFrame:
    """Side-by-side answers (rows ``prompt, block_length``; one column ``k=<t>`` per tokens per
    step), each shortened to ``width`` characters on one line (notebook 04, after figure
    ``04_real_model_sweep``). ``sweep`` is :func:`dlmpaper.sampling.sweep`'s table."""
    _need(sweep, ["prompt", "block_length", "tokens_per_step", "text"], "example_answers")
    d = sweep[sweep["prompt"].isin(list(prompts)) & sweep["tokens_per_step"].isin(list(tokens_per_step))]
    if block_lengths is not None:
        d = d[d["block_length"].isin(list(block_lengths))]
    if d.empty:
        raise ValueError("example_answers: no row matches these prompts / tokens_per_step / block lengths")
    short = d["text"].map(lambda s: textwrap.shorten(" ".join(str(s).split()) or "(empty)", width=width,
                                                     placeholder=" ..."))
    wide = d.assign(text=short).pivot(index=["prompt", "block_length"], columns="tokens_per_step", values="text")
    wide = wide.reindex(columns=[t for t in tokens_per_step if t in wide.columns])
    wide.columns = [f"k={t}" for t in wide.columns]
    return wide


def end_fill_by_step(tokens: pd.DataFrame, end_ids: Iterable[int]) -> pd.DataFrame:
    """Per decoding step: tokens committed, how many are end ids, and the mean position (0 =
    first generated token) of the committed end tokens and of the others (notebook 04: without
    blocks, low-confidence decoding commits end tokens at the tail first and answers shrink).
    ``tokens`` is :meth:`dlmpaper.sampling.GenerationResult.to_frame`."""
    _need(tokens, ["step", "position", "token_id"], "end_fill_by_step")
    ends = set(int(e) for e in end_ids)
    d = tokens.assign(is_end=tokens["token_id"].isin(ends))
    out = d.groupby("step", sort=True).agg(
        committed=("token_id", "size"), end_tokens=("is_end", "sum"),
    )
    out["end_share"] = out["end_tokens"] / out["committed"]
    out["mean_end_position"] = d[d["is_end"]].groupby("step")["position"].mean()
    out["mean_other_position"] = d[~d["is_end"]].groupby("step")["position"].mean()
    return out.reset_index()


# --------------------------------------------------------------------------- figure 4
def commit_phase(check: pd.DataFrame, steps: int, labels: Sequence[str] = ("early", "late")) -> pd.DataFrame:
    """Add ``phase`` to a :func:`dlmpaper.sampling.remask_check` table: the global commit step
    ``0 .. steps-1`` cut into ``len(labels)`` equal parts (step ``s`` falls in part
    ``floor(s * len(labels) / steps)``): with two labels, the first and second half of the
    decoding. Notebook 04, figure ``04_committed_states``."""
    _need(check, ["step"], "commit_phase")
    if steps < 1 or not labels:
        raise ValueError(f"commit_phase needs steps >= 1 and at least one label, got steps={steps}")
    step = check["step"].to_numpy()
    if np.any((step < 0) | (step >= steps)):
        raise ValueError(f"commit steps must lie in 0..{steps - 1}; pass the GenerationResult's settings.steps")
    part = np.minimum(step * len(labels) // steps, len(labels) - 1)
    phase = pd.Categorical(np.asarray(labels, dtype=object)[part], categories=list(labels), ordered=True)
    return check.assign(phase=phase)


def revision_rates(check: pd.DataFrame, by: Sequence[str] = ("tokens_per_step",)) -> pd.DataFrame:
    """Per prompt and group ``by``: ``would_revise`` = share of checked committed tokens whose
    re-masked prediction differs, ``n_tokens`` checked. One row per prompt, ready for
    :func:`summarize_over_prompts` (prompts are the unit of the bootstrap)."""
    by = list(by)
    _need(check, [*by, "prompt", "would_revise"], "revision_rates")
    out = (check.assign(would_revise=check["would_revise"].astype(float))
           .groupby([*by, "prompt"], observed=True, sort=True)["would_revise"]
           .agg(["mean", "size"]).reset_index()
           .rename(columns={"mean": "would_revise", "size": "n_tokens"}))
    return out


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
    ax.errorbar(k, s["mean"], yerr=np.clip(np.vstack([s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]]), 0, None),
                marker="o", ms=4, capsize=3, color=_EXACT_COLOR)
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
            ax2.bar(x, d["mean"], width=width, color=palette[j % len(palette)], label=f"committed {ph}",
                    yerr=np.nan_to_num(err), capsize=2, error_kw=dict(lw=0.8))
        ax2.set_xticks(np.arange(len(ks)), [str(v) for v in ks])
        ax2.set_xlabel("tokens per step")
        ax2.set_title("by commit time (1st / 2nd half of the steps)", fontsize=9)
        ax2.legend(fontsize=8, loc="upper left", ncol=len(phases))
        highs.append(np.nanmax(by_phase["ci_high"].to_numpy(dtype=float)))
    top = min(1.0, 1.25 * max([h for h in highs if np.isfinite(h)], default=1.0)) or 1.0
    for a in axes.flat:
        a.set_ylim(0.0, top)
    return fig
