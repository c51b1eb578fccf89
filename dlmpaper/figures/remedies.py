"""Figures of notebook 05_remedies (paper §5: remedies for §4 issue (ii), the marginal trap).

Paper: "On the Role of Discreteness in Diffusion LLMs" (arXiv 2512.22630). Notebook 04 shows
the trap (a step that commits several tokens samples from the product of their marginals);
notebook 05 puts the published remedies, implemented as commit strategies of one sampler
(:mod:`dlmpaper.core.strategies`) and evaluated exactly on the toy languages
(:func:`dlmpaper.analyses.remedies.remedy_table`), on a cost axis:

* :func:`plot_pareto` - invalid rate or KL(true || sampler) against the expected number of
  forward passes (masked + AR), one panel per language, every decoder family, notebook 04's
  exact naive curve as the reference (figures ``05_pareto_invalid`` and ``05_pareto_kl``);
* :func:`plot_schedules` - toy models trained under information-aware masking schedules against
  uniform masking (figure ``05_schedules``).

Plotting only: the statistics live in :mod:`dlmpaper.analyses.remedies`; style from
:mod:`dlmpaper.figures.style` (call :func:`dlmpaper.figures.style.use_style` first).
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd

from dlmpaper.core.tables import require_columns
from dlmpaper.figures.style import FAMILY_COLORS

__all__ = ["DECODER_STYLES", "PARETO_COLUMNS", "SCHEDULE_COLORS", "plot_pareto", "plot_schedules"]

#: Display label, colour and marker of each decoder family of :func:`dlmpaper.analyses.remedies.remedy_table`
#: (the ``decoder`` column), in legend order.
DECODER_STYLES: dict[str, dict] = {
    "naive left_to_right": dict(label="naive left-to-right (notebook 04, exact)", color="#333333", marker="x", ls="--"),
    "low_confidence": dict(label="low confidence (LLaDA default)", color="#555555", marker="o", ls="-"),
    "threshold": dict(label="Fast-dLLM threshold", color="#0173B2", marker="^", ls="-"),
    "factor": dict(label="Fast-dLLM factor", color="#56B4E9", marker="v", ls="-"),
    "entropy_bounded": dict(label="EB-Sampler (entropy bound)", color="#029E73", marker="D", ls="-"),
    "dilated": dict(label="DUS (dilated)", color="#DE8F05", marker="s", ls="-"),
    "remask": dict(label="ReMDM-style remasking", color="#CC78BC", marker="P", ls="-"),
    "verifier": dict(label="AR verifier (APD-style)", color="#D55E00", marker="*", ls="-"),
    "autoregressive": dict(label="autoregressive model", color=FAMILY_COLORS["autoregressive"], marker="h", ls="none"),
}

#: Columns :func:`plot_pareto` needs (besides the metric).
PARETO_COLUMNS = ("language", "length", "decoder", "nfe")

_METRICS = {"invalid": "P(invalid sequence)", "kl": "KL(true || sampler) (nats)"}


def plot_pareto(table: pd.DataFrame, metric: str = "invalid", *, linthresh: float = 1e-3):
    """``metric`` (``"invalid"`` or ``"kl"``) against the expected NFE (masked + AR passes), one
    panel per language, one colour per decoder family (paper §4, issue (ii); notebook 05, figures
    ``05_pareto_invalid`` / ``05_pareto_kl``). ``table`` is :func:`dlmpaper.analyses.remedies.remedy_table`.

    Points of one family are joined in order of NFE (a family's settings, not a fitted curve);
    the dashed black line is notebook 04's exact naive left-to-right curve (absent where the
    table has no value, e.g. its KL); dotted verticals mark the budget ``ceil(L / 2)`` and ``L``
    passes. The KL axis is symlog (linear below ``linthresh``) so that 0 and small values show;
    non-finite values are left out. Raises ValueError for a table without the needed columns."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {sorted(_METRICS)}, got {metric!r}")
    missing = [c for c in (*PARETO_COLUMNS, metric) if c not in table.columns]
    if missing:
        raise ValueError(f"plot_pareto needs columns {missing}; pass dlmpaper.analyses.remedies.remedy_table(...)")
    languages = list(dict.fromkeys(table["language"]))
    if not languages:
        raise ValueError("plot_pareto needs at least one row")
    fig, axes = plt.subplots(1, len(languages), figsize=(3.0 * len(languages) + 0.6, 3.0), squeeze=False)
    used = []
    for ax, lang in zip(axes[0], languages):
        part = table[table["language"] == lang]
        L = int(part["length"].iloc[0])
        for family, st in DECODER_STYLES.items():
            d = part[part["decoder"] == family]
            d = d[np.isfinite(d[metric].to_numpy(dtype=float))].sort_values("nfe", kind="stable")
            if d.empty:
                continue
            used.append(family)
            ax.plot(
                d["nfe"].to_numpy(dtype=float),
                d[metric].to_numpy(dtype=float),
                color=st["color"],
                marker=st["marker"],
                ls=st["ls"],
                lw=1.6 if family == "naive left_to_right" else 0.9,
                ms=8 if st["marker"] in "*h" else 4.5,
                mfc="none" if family == "low_confidence" else st["color"],
                alpha=0.9,
                zorder=4 if family in ("verifier", "autoregressive") else 3,
            )
        for x in sorted({math.ceil(L / 2), L}):
            ax.axvline(x, color="#999999", lw=0.7, ls=":", zorder=1)
        ax.set_xlim(0.5, max(L, float(part["nfe"].max())) + 0.5)
        if metric == "invalid":
            ax.set_ylim(-0.03, 1.03)
        else:
            ax.set_yscale("symlog", linthresh=linthresh)
            values = part[metric].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            ax.set_ylim(0, 1.5 * max(1.0, float(values.max()) if values.size else 1.0))
        ax.set_title(f"{lang} (L = {L})", fontsize=9)
        ax.set_xlabel("expected forward passes (masked + AR)")
    axes[0, 0].set_ylabel(_METRICS[metric])
    handles = [
        Line2D(
            [],
            [],
            color=DECODER_STYLES[f]["color"],
            marker=DECODER_STYLES[f]["marker"],
            ls=DECODER_STYLES[f]["ls"],
            mfc="none" if f == "low_confidence" else DECODER_STYLES[f]["color"],
            label=DECODER_STYLES[f]["label"],
        )
        for f in DECODER_STYLES
        if f in used
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7.5, bbox_to_anchor=(0.5, -0.2))
    return fig


#: Colour of each masking schedule of :data:`dlmpaper.analyses.schedules.SCHEDULES`.
SCHEDULE_COLORS: dict[str, str] = {
    "uniform": "#555555",
    "position": "#0173B2",
    "entropy": "#DE8F05",
    "entropy_inverse": "#029E73",
}


def plot_schedules(table: pd.DataFrame, metrics: Mapping[str, str]):
    """Each masking schedule's trained toy models against uniform masking (paper §5, the remedy for §4 issue (i);
    notebook 05, figure ``05_schedules``): one panel per metric, languages along x, one colour per
    schedule, one dot per training seed and a bar at the seeds' mean. ``table`` is
    :func:`dlmpaper.analyses.schedules.schedule_table`; ``metrics`` maps each plotted column to its panel
    title (``dlmpaper.analyses.schedules.METRICS``). Lower is better in every panel."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    require_columns(table, ["language", "schedule", "seed", *metrics], "plot_schedules")
    languages = list(dict.fromkeys(table["language"]))
    schedules = [s for s in SCHEDULE_COLORS if s in set(table["schedule"])]
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.9 * len(metrics), 2.9), squeeze=False, layout="constrained")
    width = 0.8 / max(len(schedules), 1)
    for ax, metric in zip(axes[0], metrics):
        for j, schedule in enumerate(schedules):
            for i, language in enumerate(languages):
                values = table[(table["language"] == language) & (table["schedule"] == schedule)][metric].to_numpy(
                    float
                )
                if values.size == 0:
                    continue
                x = i + (j - (len(schedules) - 1) / 2) * width
                ax.scatter(np.full(values.size, x), values, s=10, color=SCHEDULE_COLORS[schedule], zorder=3)
                ax.hlines(values.mean(), x - width / 2.5, x + width / 2.5, color=SCHEDULE_COLORS[schedule], lw=1.5)
        ax.set_xticks(range(len(languages)), languages)
        ax.set_title(metrics[metric], fontsize=8.5)
        ax.set_ylim(bottom=0)
    handles = [
        Line2D([], [], color=SCHEDULE_COLORS[s], marker="o", ls="-", label=s.replace("_", " ")) for s in schedules
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    return fig
