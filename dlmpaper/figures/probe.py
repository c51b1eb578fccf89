"""Figures of notebook 03_positional_probe (paper §4, issue (i)). The probe is
:func:`dlmpaper.core.probe.positional_probe`, its measures :mod:`dlmpaper.analyses.probe`; this
module draws their tables:

* :func:`plot_single_prompt` - the paper's single-prompt figure (``03_single_prompt``);
* :func:`plot_aggregate` - statistics against position with bootstrap bands (``03_aggregate``);
* :func:`plot_frequency_drift` - frequency class of the top-1 token against position and
  the end-dominance distance histogram (``03_frequency_drift``);
* :func:`plot_baseline_measures` - copy rate and gold-answer recall against their
  mismatched-prompt baselines, model and negative controls (``03_baseline_measures``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Sequence

import numpy as np
import pandas as pd

from dlmpaper.figures.style import token_label

__all__ = [
    "SPECIAL_LABELS",
    "STAT_LABELS",
    "display_token",
    "plot_aggregate",
    "plot_baseline_measures",
    "plot_frequency_drift",
    "plot_single_prompt",
]

#: Panel titles / axis labels of the statistics of :func:`dlmpaper.core.probe.position_summary`.
STAT_LABELS: dict[str, str] = {
    "entropy": "entropy (nats)",
    "top1_prob": "top-1 probability",
    "end_share": "share: top-1 is end token",
    "stop_punct_share": "share: top-1 is stop word / punct.",
    "content_share": "share: top-1 is a content token",
    "modal_share": "share: top-1 = most common top-1",
    "js_divergence": "prompt-specificity JS (nats)",
    "js_divergence_upper": "JS upper bound (nats)",
    "top1_freq_class": "frequency class of top-1",
    "top1_freq_class_nonend": "frequency class of top-1 (non-end)",
}

#: Short display names of special tokens in the single-prompt figure.
SPECIAL_LABELS: dict[str, str] = {
    "<|endoftext|>": "EOS",
    "</s>": "EOS",
    "<|eos|>": "EOS",
    "<eos>": "EOS",
    "<|eot_id|>": "EOT",
    "<|im_end|>": "EOT",
    "<|mdm_mask|>": "MASK",
}

_SPECIAL_RE = re.compile(r"^<\|?[A-Za-z_]+\|?>$")


def display_token(text: str, max_chars: int = 8) -> str:
    """A token's text for a figure cell: special tokens by short name (:data:`SPECIAL_LABELS`),
    other tokens via :func:`dlmpaper.figures.style.token_label` (``"␣the"``), truncated to ``max_chars``."""
    if text in SPECIAL_LABELS:
        return SPECIAL_LABELS[text]
    if _SPECIAL_RE.match(text):
        return token_label(text.strip("<|>").upper(), max_chars=max_chars)
    return token_label(text, max_chars=max_chars)


def plot_single_prompt(
    table: pd.DataFrame,
    prompt_id: str | None = None,
    *,
    positions_per_row: int = 16,
    max_chars: int = 8,
    title: str | None = None,
    cmap: str = "Blues",
):
    """The paper's single-prompt figure (§4): top-k tokens and their probabilities at every mask position.

    ``table`` is :attr:`dlmpaper.core.probe.ProbeResult.table` (one prompt is drawn:
    ``prompt_id``, default the first). One band per ``positions_per_row`` positions; in a
    band, columns are positions and rows are ranks 1..k; each cell shows the token
    (:func:`display_token`) on a colour that encodes its probability (log scale, colour
    bar). Figure ``03_single_prompt`` of notebook 03. Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    required = {"prompt_id", "position", "rank", "token", "prob"}
    if not required <= set(table.columns):
        raise ValueError(f"table lacks {sorted(required - set(table.columns))}; pass ProbeResult.table")
    if table.empty:
        raise ValueError("table is empty: run dlmpaper.core.probe.positional_probe first")
    if prompt_id is None:
        prompt_id = table["prompt_id"].iloc[0]
    one = table[table["prompt_id"] == prompt_id]
    if one.empty:
        raise ValueError(f"prompt_id {prompt_id!r} is not in the table")
    probs = one.pivot(index="rank", columns="position", values="prob").sort_index()
    tokens = one.pivot(index="rank", columns="position", values="token").sort_index()
    k, n = probs.shape
    positions = probs.columns.to_numpy()
    n_rows = math.ceil(n / positions_per_row)
    norm = LogNorm(vmin=1e-3, vmax=1.0, clip=True)
    fig, axes = plt.subplots(
        n_rows,
        1,
        figsize=(0.72 * positions_per_row + 1.4, (0.23 * k + 0.42) * n_rows + 0.7),
        squeeze=False,
        layout="constrained",
    )
    colormap = plt.get_cmap(cmap)
    image = None
    for r, ax in enumerate(axes[:, 0]):
        cols = slice(r * positions_per_row, min((r + 1) * positions_per_row, n))
        p = probs.iloc[:, cols].to_numpy(dtype=np.float64)
        t = tokens.iloc[:, cols].to_numpy()
        width = p.shape[1]
        image = ax.imshow(
            np.clip(p, 1e-3, 1.0),
            cmap=colormap,
            norm=norm,
            aspect="auto",
            extent=(-0.5, positions_per_row - 0.5, k - 0.5, -0.5),
        )
        for i in range(k):
            for j in range(width):
                shade = colormap(norm(max(p[i, j], 1e-3)))
                light = 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2] > 0.55
                label = ax.text(
                    j,
                    i,
                    display_token(str(t[i, j]), max_chars),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if light else "white",
                    clip_on=True,
                )
                label.set_in_layout(False)  # inside its cell: keeps layout and tight bbox cheap
        ax.set_xlim(-0.5, positions_per_row - 0.5)
        ax.set_xticks(range(width), [str(int(x)) for x in positions[cols]], fontsize=6.5)
        ax.set_yticks(range(k), [f"#{i + 1}" for i in range(k)], fontsize=7)
        ax.tick_params(length=0, pad=1.5)
        ax.grid(False)
        for edge in np.arange(0.5, positions_per_row - 0.5):
            ax.axvline(edge, color="white", linewidth=0.6)
        for spine in ax.spines.values():
            spine.set_visible(False)
    axes[-1, 0].set_xlabel("mask position after the prompt (token offset)")
    cbar = fig.colorbar(image, ax=axes[:, 0].tolist(), shrink=0.5, pad=0.01, aspect=30)
    cbar.set_label("probability (log scale)")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _log2_position_axis(ax, n_masks: int) -> None:
    ax.set_xscale("log", base=2)
    ticks = [2**i for i in range(int(math.log2(max(n_masks, 1))) + 1)]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlim(1, n_masks)
    ax.minorticks_off()


def plot_aggregate(
    summary: pd.DataFrame,
    statistics: Sequence[str] | None = None,
    *,
    log_position: bool = True,
    ncols: int = 3,
    title: str | None = None,
):
    """Small multiples: each statistic against mask position, mean over prompts and 95% bootstrap band.

    ``summary`` is the tidy table of :func:`dlmpaper.core.probe.position_summary` (or several
    stacked with a ``reference`` column, which then colours the lines). ``statistics``
    defaults to every statistic present except ``js_divergence_upper``, which is drawn
    dashed in the JS panel when it differs from ``js_divergence`` (truncated JS bracket).
    Position on a log2 axis by default (the change happens in the first few dozen
    positions). Figure ``03_aggregate`` of notebook 03 (paper §4, 100 prompts).
    """
    import matplotlib.pyplot as plt

    required = {"position", "statistic", "mean", "ci_low", "ci_high"}
    if not required <= set(summary.columns):
        raise ValueError(f"summary lacks {sorted(required - set(summary.columns))}; pass position_summary(...)")
    present = list(dict.fromkeys(summary["statistic"]))
    if statistics is None:
        statistics = [s for s in present if s != "js_divergence_upper"]
    unknown = [s for s in statistics if s not in present]
    if unknown:
        raise ValueError(f"statistic(s) {unknown} not in summary; present: {present}")
    if not statistics:
        raise ValueError("no statistics to plot")
    groups = list(dict.fromkeys(summary["reference"])) if "reference" in summary.columns else [None]
    n_masks = int(summary["position"].max())
    nrows = math.ceil(len(statistics) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False, layout="constrained")
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, stat in zip(axes.flat, statistics):
        for g, group in enumerate(groups):
            part = summary[summary["statistic"] == stat]
            if group is not None:
                part = part[part["reference"] == group]
            if part.empty:
                continue
            part = part.sort_values("position")
            color = palette[g % len(palette)]
            ax.fill_between(part["position"], part["ci_low"], part["ci_high"], color=color, alpha=0.25, linewidth=0)
            ax.plot(
                part["position"], part["mean"], color=color, linewidth=1.3, label=None if group is None else str(group)
            )
            if stat == "js_divergence":
                upper = summary[summary["statistic"] == "js_divergence_upper"].sort_values("position")
                if not upper.empty and not np.allclose(upper["mean"].to_numpy(), part["mean"].to_numpy()):
                    ax.plot(
                        upper["position"],
                        upper["mean"],
                        color=color,
                        linestyle="--",
                        linewidth=1.0,
                        label="upper bound",
                    )
        if log_position:
            _log2_position_axis(ax, n_masks)
        else:
            ax.set_xlim(1, n_masks)
        if stat.endswith("_share"):
            ax.set_ylim(-0.03, 1.03)
        ax.set_title(STAT_LABELS.get(stat, stat), fontsize=9)
        ax.set_xlabel("mask position")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(statistics) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_frequency_drift(
    freq_summaries: Mapping[str, pd.DataFrame],
    end_dominance: pd.DataFrame,
    n_masks: int,
    *,
    log_position: bool = True,
    title: str | None = None,
):
    """Drift toward frequent tokens and the distance at which EOS takes over (paper §4, notebook 03).

    Left: the frequency class ``floor(log2(rank))`` of the top-1 token against position,
    mean and 95% band over prompts, one line per reference unigram table
    (``freq_summaries``: label -> :func:`frequency_class_by_position` output, or a
    :func:`dlmpaper.core.probe.position_summary` computed with that table; rows with statistic
    ``top1_freq_class_nonend`` are used if present, else ``top1_freq_class``). Lower =
    more frequent (0 = the most frequent token). Right: histogram of
    :func:`dlmpaper.core.probe.end_dominance_distance` (the position from which an end token is
    top-1 for good), with the count of prompts where it never happens. Figure ``03_frequency_drift``.
    """
    import matplotlib.pyplot as plt

    if not freq_summaries:
        raise ValueError("freq_summaries is empty: pass {label: position_summary(result, reference_ranks=...)}")
    if "end_dominance_position" not in end_dominance.columns:
        raise ValueError(
            "end_dominance lacks 'end_dominance_position'; pass dlmpaper.core.probe.end_dominance_distance(result)"
        )
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.3), layout="constrained")
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for g, (label, frame) in enumerate(freq_summaries.items()):
        names = [n for n in ("top1_freq_class_nonend", "top1_freq_class") if n in set(frame["statistic"])]
        if not names:
            raise ValueError(
                f"summary {label!r} has no top1_freq_class rows; use frequency_class_by_position(result, ranks)"
            )
        part = frame[frame["statistic"] == names[0]].sort_values("position")
        color = palette[g % len(palette)]
        left.fill_between(part["position"], part["ci_low"], part["ci_high"], color=color, alpha=0.25, linewidth=0)
        left.plot(part["position"], part["mean"], color=color, linewidth=1.3, label=label)
    if log_position:
        _log2_position_axis(left, n_masks)
    else:
        left.set_xlim(1, n_masks)
    left.set_ylim(bottom=-0.3)
    left.set_xlabel("mask position")
    nonend = any("top1_freq_class_nonend" in set(f["statistic"]) for f in freq_summaries.values())
    left.set_ylabel(("non-end " if nonend else "") + "top-1 frequency class\nfloor(log2 rank), 0 = most frequent")
    left.set_title("drift toward frequent tokens", fontsize=9)
    left.legend(fontsize=7, title="reference ranks", title_fontsize=7)

    values = end_dominance["end_dominance_position"].to_numpy(dtype=np.float64)
    found = values[~np.isnan(values)]
    never = int(np.isnan(values).sum())
    bins = np.arange(0.5, n_masks + 1.5, max(1, n_masks // 64))
    right.hist(found, bins=bins, color=palette[3 % len(palette)], edgecolor="none")
    if found.size:
        median = float(np.median(found))
        right.axvline(median, color="black", linestyle="--", linewidth=1.0, label=f"median {median:g}")
        right.legend(fontsize=7)
    right.set_xlim(0.5, n_masks + 0.5)
    right.set_xlabel("end-dominance position (EOS top-1 from here on)")
    right.set_ylabel("prompts")
    right.set_title(f"where EOS takes over ({len(found)} prompts; never: {never})", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_baseline_measures(measures: Mapping[str, pd.DataFrame], *, title: str | None = None):
    """Own-prompt vs mismatched-prompt scores by position window, one panel per measure (paper §4).

    ``measures``: panel title -> a tidy table of :func:`dlmpaper.analyses.probe.copy_rate` or
    :func:`~dlmpaper.analyses.probe.gold_recall`, stacked over runs with a ``run`` column (the model
    and its negative controls). Each run is one colour; the solid line is the score against the
    prompt's own content/answer, the dashed line against another prompt's (the baseline), both with
    95% bootstrap bands. Figure ``03_baseline_measures`` of notebook 03.
    """
    import matplotlib.pyplot as plt

    if not measures:
        raise ValueError("measures is empty: pass {title: copy_rate(...) or gold_recall(...) with a 'run' column}")
    fig, axes = plt.subplots(1, len(measures), figsize=(4.6 * len(measures), 3.3), layout="constrained", squeeze=False)
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (panel, frame) in zip(axes[0], measures.items()):
        missing = {"run", "window", "scored_against", "mean", "ci_low", "ci_high"} - set(frame.columns)
        if missing:
            raise ValueError(
                f"table {panel!r} lacks {sorted(missing)}; pass copy_rate/gold_recall output with a 'run' column"
            )
        labels = list(dict.fromkeys(frame["window"]))
        x = np.arange(len(labels))
        for g, run in enumerate(dict.fromkeys(frame["run"])):
            color = palette[g % len(palette)]
            for against, style in (("own", "-"), ("mismatched", "--")):
                part = (
                    frame[(frame["run"] == run) & (frame["scored_against"] == against)].set_index("window").loc[labels]
                )
                ax.fill_between(x, part["ci_low"], part["ci_high"], color=color, alpha=0.18, linewidth=0)
                ax.plot(
                    x,
                    part["mean"],
                    style,
                    color=color,
                    linewidth=1.3,
                    marker="o",
                    markersize=3,
                    label=f"{run}, {'own' if against == 'own' else 'other prompt'}",
                )
        ax.set_xticks(x, labels, rotation=45 if len(labels) > 4 else 0, fontsize=7)
        ax.set_xlabel("mask positions")
        ax.set_ylabel("share")
        ax.set_ylim(bottom=0)
        ax.set_title(panel, fontsize=9)
    axes[0][-1].legend(fontsize=6, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
