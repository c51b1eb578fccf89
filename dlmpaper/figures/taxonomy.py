"""Figures of notebook 01_taxonomy (paper §2: the two families and their forward processes). The
tables come from :mod:`dlmpaper.analyses.taxonomy`; this module draws them:

* :func:`timeline_layout`, :func:`plot_timeline` - methods by year and family (``01_taxonomy_timeline``);
* :func:`plot_forward_processes` - one sentence corrupted by the three processes (``01_forward_processes``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from dlmpaper.analyses.taxonomy import PROCESS_FAMILY, PROCESS_ORDER, check_grid, check_methods
from dlmpaper.figures.style import FAMILIES, FAMILY_COLORS, family_label, token_label

__all__ = ["PROCESS_LABELS", "plot_forward_processes", "plot_timeline", "timeline_layout"]

#: Panel titles of the grid figure.
PROCESS_LABELS: dict[str, str] = {
    "mask": "Absorbing mask (discrete): token -> [MASK] with prob. t",
    "uniform": "Uniform substitution (discrete): token -> random vocabulary token with prob. t",
    "gaussian": "Gaussian on embeddings (continuous), rounded to the nearest token embedding",
}

_KEPT_COLOR = "#F2F2F2"


# --------------------------------------------------------------------------- taxonomy tables


# --------------------------------------------------------------------------- timeline


def timeline_layout(methods: pd.DataFrame, *, char_width: float = 0.085, pad: float = 0.2) -> pd.DataFrame:
    """Place each method of the timeline figure (notebook 01) so that no two labels overlap.

    A method sits at its ``year`` in its family's row; its label runs to the right and covers
    ``[year, year + pad + char_width * len(name)]`` (in years). Within a row, methods are taken
    by year then name and put on the lowest ``slot`` whose previous label has ended before the
    method's year (greedy interval colouring). Rows follow :data:`FAMILIES` top to bottom and
    are as tall as their number of slots.

    Returns columns ``name, year, family, revisable, slot, y, label_end``; ``y`` counts down
    from 0 (the first slot of the first family) in steps of 1, rows separated by one extra step.
    """
    check_methods(methods, ("name", "year", "family", "revisable"))
    if char_width <= 0 or pad < 0:
        raise ValueError("char_width must be > 0 and pad >= 0 (label extent in years)")
    rows = []
    y_top = 0.0
    for fam in FAMILIES:
        sub = methods[methods["family"].astype(str) == fam].sort_values(["year", "name"], kind="stable")
        if sub.empty:
            continue
        ends: list[float] = []
        placed = []
        for _, m in sub.iterrows():
            year = float(m["year"])
            end = year + pad + char_width * len(str(m["name"]))
            slot = next((k for k, e in enumerate(ends) if e <= year), len(ends))
            if slot == len(ends):
                ends.append(end)
            else:
                ends[slot] = end
            placed.append((m, slot, end))
        for m, slot, end in placed:
            rows.append(
                {
                    "name": str(m["name"]),
                    "year": int(m["year"]),
                    "family": fam,
                    "revisable": bool(m["revisable"]),
                    "slot": slot,
                    "y": y_top - slot,
                    "label_end": end,
                }
            )
        y_top -= len(ends) + 1
    return pd.DataFrame(rows, columns=["name", "year", "family", "revisable", "slot", "y", "label_end"])


def plot_timeline(methods: pd.DataFrame, *, width: float = 7.0, row_height: float = 0.2):
    """Timeline of diffusion LMs (§2; figure ``01_taxonomy_timeline`` of notebook 01).

    Year on x; one band per family (colour of :data:`FAMILY_COLORS`); each method a marker with
    its name. Filled marker: the method can revise a committed token in the same generation
    (``revisable``); hollow: a committed token is final. Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    lay = timeline_layout(methods)
    x_min = lay["year"].min() - 0.6
    x_max = max(lay["label_end"].max(), lay["year"].max() + 0.6) + 0.1
    y_min, y_max = lay["y"].min() - 0.8, 0.8
    fig, ax = plt.subplots(figsize=(width, row_height * (y_max - y_min) + 0.9))
    ticks, tick_labels = [], []
    for fam in FAMILIES:
        sub = lay[lay["family"] == fam]
        if sub.empty:
            continue
        color = FAMILY_COLORS[fam]
        top, bottom = sub["y"].max() + 0.5, sub["y"].min() - 0.5
        ax.axhspan(bottom, top, color=color, alpha=0.08, lw=0)
        ticks.append((top + bottom) / 2)
        tick_labels.append(family_label(fam))
        for _, m in sub.iterrows():
            ax.plot(
                m["year"],
                m["y"],
                marker="o",
                ms=5.5,
                color=color,
                mfc=color if m["revisable"] else "white",
                mew=1.3,
                ls="none",
                zorder=3,
            )
            ax.text(m["year"] + 0.13, m["y"], m["name"], va="center", ha="left", fontsize=7.5, zorder=4)
    ax.set_yticks(ticks, tick_labels)
    for tick, fam in zip(ax.get_yticklabels(), [f for f in FAMILIES if f in set(lay["family"])]):
        tick.set_color(FAMILY_COLORS[fam])
        tick.set_fontweight("bold")
    years = range(int(lay["year"].min()), int(lay["year"].max()) + 1)
    ax.set_xticks(list(years), [str(y) for y in years])
    ax.set_xlim(x_min, x_max)
    ax.set_ylim(y_min, y_max)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("year of first arXiv version")
    ax.set_title("Diffusion language models by family (autoregressive LMs as the reference)", fontsize=9)
    handles = [
        Line2D([], [], marker="o", ls="none", color="0.3", mfc="0.3", ms=5.5, label="can revise a committed token"),
        Line2D(
            [], [], marker="o", ls="none", color="0.3", mfc="white", ms=5.5, mew=1.3, label="committed tokens are final"
        ),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=7.5, handletextpad=0.3)
    return fig


# --------------------------------------------------------------------------- forward processes


def _cell_text(text: str, max_chars: int) -> str:
    """Cell label: the token without its space marks; a byte-level piece that is not valid
    UTF-8 on its own (decodes to U+FFFD) is shown as ``<bytes>``."""
    if "\ufffd" in text:
        return "<bytes>"
    return token_label(text.strip(" ") or text, max_chars=max_chars)


def _mix(color: str, weight: float) -> tuple[float, float, float]:
    """``color`` blended with white (weight 1 = the colour itself)."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(color)
    return (1 - weight + weight * r, 1 - weight + weight * g, 1 - weight + weight * b)


def plot_forward_processes(
    grid: pd.DataFrame,
    *,
    levels: Sequence[float] | None = None,
    curve: pd.DataFrame | None = None,
    max_chars: int = 8,
    width: float = 7.2,
    cell_height: float = 0.19,
):
    """The three forward processes on one sentence (§2; figure ``01_forward_processes`` of notebook 01).

    One panel per process: rows are noise levels t (``levels``, default all in ``grid``), columns
    token positions; each cell shows what x_t holds (``shown``): the original token (grey, kept),
    ``[M]`` (masked) or another token (substituted / rounded to another token; a byte-level
    piece that is not text on its own reads ``<bytes>``), coloured by the
    family of :data:`PROCESS_FAMILY`. The Gaussian panel also labels abar_t on the right.
    ``curve`` (from :func:`kept_fraction`, usually on a finer level grid) adds a bottom panel:
    fraction of positions still showing their original token against t. Returns the Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    check_grid(grid)
    if "shown" not in grid.columns or "token" not in grid.columns:
        raise ValueError("grid lacks the token text columns; call forward_processes(..., token_text=model.token_text)")
    procs = [p for p in PROCESS_ORDER if p in set(grid["process"].astype(str))]
    all_levels = np.array(sorted(grid["level"].unique()))
    if levels is None:
        show = all_levels
    else:
        show = []
        for t in levels:
            hit = all_levels[np.isclose(all_levels, t, atol=1e-9)]
            if hit.size == 0:
                raise ValueError(f"level {t} is not in the grid; pass levels that forward_processes computed")
            show.append(hit[0])
        show = np.array(show)
    n_pos = int(grid["position"].max()) + 1
    n_lv = len(show)
    panel_h = cell_height * n_lv + 0.45
    heights = [panel_h] * len(procs) + ([1.5] if curve is not None else [])
    fig, axes = plt.subplots(
        len(heights), 1, figsize=(width, sum(heights) + 0.5), gridspec_kw={"height_ratios": heights}
    )
    axes = np.atleast_1d(axes)
    code = {"kept": 0, "masked": 1, "substituted": 2}
    for ax, proc in zip(axes, procs):
        sub = grid[(grid["process"].astype(str) == proc) & np.isin(grid["level"], show)]
        color = FAMILY_COLORS[PROCESS_FAMILY[proc]]
        cmap = ListedColormap([_KEPT_COLOR, _mix(color, 0.85), _mix(color, 0.45)])
        mat = np.zeros((n_lv, n_pos))
        for _, r in sub.iterrows():
            i = int(np.flatnonzero(np.isclose(show, r["level"]))[0])
            mat[i, int(r["position"])] = code[r["state"]]
            changed = r["state"] != "kept"
            label = ax.text(
                r["position"],
                i,
                _cell_text(str(r["shown"]), max_chars),
                ha="center",
                va="center",
                fontsize=6,
                color="black",
                fontweight="bold" if changed else "normal",
                clip_on=True,
            )
            label.set_in_layout(False)  # inside its cell; keeps layout passes cheap (hundreds of texts)
        ax.imshow(mat, cmap=cmap, vmin=-0.5, vmax=2.5, aspect="auto", interpolation="nearest")
        ax.set_xticks(np.arange(n_pos) - 0.5, minor=True)
        ax.set_yticks(np.arange(n_lv) - 0.5, minor=True)
        ax.grid(which="minor", color="white", lw=1.0)
        ax.grid(which="major", visible=False)
        ax.tick_params(which="minor", length=0)
        ax.set_yticks(np.arange(n_lv), [f"{t:.1f}" for t in show], fontsize=6.5)
        ax.set_xticks(np.arange(n_pos), [str(p) for p in range(n_pos)], fontsize=6.5)
        ax.set_ylabel("noise level t", fontsize=7)
        ax.set_title(PROCESS_LABELS[proc], fontsize=8, loc="left", color=color, fontweight="bold")
        if proc == "gaussian":
            sched_ab = sub.drop_duplicates("level").set_index("level")["alpha_bar"]
            right = ax.secondary_yaxis("right")
            right.set_yticks(np.arange(n_lv), [f"{sched_ab.get(t, float('nan')):.2f}" for t in show], fontsize=6)
            right.set_ylabel(r"$\bar\alpha_t$", fontsize=7)
    axes[len(procs) - 1].set_xlabel("token position", fontsize=7)
    legend = [Patch(facecolor=_KEPT_COLOR, edgecolor="0.7", label="original token")]
    for proc in procs:
        color = FAMILY_COLORS[PROCESS_FAMILY[proc]]
        if proc == "mask":
            legend.append(Patch(facecolor=_mix(color, 0.85), label="[M] masked"))
        elif proc == "uniform":
            legend.append(Patch(facecolor=_mix(color, 0.45), label="substituted (random token)"))
        else:
            legend.append(Patch(facecolor=_mix(color, 0.45), label="rounds to another token"))
    if curve is not None:
        ax = axes[-1]
        for proc in procs:
            c = curve[curve["process"].astype(str) == proc].sort_values("level")
            ax.step(
                c["level"],
                c["kept_fraction"],
                where="post",
                color=FAMILY_COLORS[PROCESS_FAMILY[proc]],
                lw=1.4,
                label={"mask": "absorbing mask", "uniform": "uniform substitution", "gaussian": "Gaussian + rounding"}[
                    proc
                ],
            )
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("noise level t", fontsize=7)
        ax.set_ylabel("positions showing\nthe original token", fontsize=7)
        ax.tick_params(labelsize=6.5)
        ax.legend(fontsize=6.5, loc="lower left")
    fig.legend(
        handles=legend, loc="outside lower center", ncols=len(legend), fontsize=6.5, handlelength=1.2, columnspacing=1.0
    )
    return fig
