"""Figures of notebook ``02_five_properties`` (paper §3): the property matrices and one figure per property.

Every function takes the tidy tables of ``dlmpaper.analyses.properties`` and returns a matplotlib Figure
for ``dlmpaper.figures.style.save_figure``; none computes a measurement or loads a model.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from dlmpaper.figures.style import FAMILY_COLORS, PROPERTY_LABELS

#: Our model families -> the plotting palette's family names.
PALETTE_FAMILY = {
    "continuous": "continuous",
    "masked": "discrete-absorbing",
    "discrete": "discrete-absorbing",
    "uniform": "discrete-uniform",
    "autoregressive": "autoregressive",
}
JUDGEMENT_COLORS = {"yes": "#4C9A5F", "partial": "#E3B448", "no": "#C8553D", "n/a": "#DDDDDD"}
ROWS = ("continuous", "discrete", "autoregressive")
#: The paper's row each of our measured models stands for (y tick labels of the measured matrix).
MEASURED_ROW_LABEL = {"masked": "discrete", "uniform": "discrete"}
#: Distances (in embedding-spacing units) below which a final state counts as on its token in figure L1 (b).
ROUNDING_TOL = 1e-3


def family_color(family: str) -> str:
    return FAMILY_COLORS[PALETTE_FAMILY[family]]


def plot_property_matrices(paper: pd.DataFrame, measured: pd.DataFrame):
    """Paper's family x property judgement next to ours (figure ``02_property_matrices``).

    ``paper``: taxonomy's judgement table (``family, property, value, source``); ``measured``:
    ``properties.property_matrix`` output (``family, property, judgement, value, status,
    agrees, counted``). Cells are coloured yes / partial / no. Left, an asterisk marks our reading
    where the paper is silent. Right, each cell shows the number behind the verdict; hatched cells
    hold by construction; a thick frame marks a counted cell (measured, the paper's own statement)
    that differs from the paper, a dashed frame a differing cell that is not counted."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    props = list(PROPERTY_LABELS)
    fams = list(dict.fromkeys(measured["family"]))
    fig, axes = plt.subplots(
        1, 2, figsize=(9.6, 3.3), layout="constrained", gridspec_kw={"height_ratios": [1]}, sharey=False
    )
    for ax, title, rows in ((axes[0], "paper (arXiv 2512.22630)", ROWS), (axes[1], "measured here", fams)):
        for i, fam in enumerate(rows):
            for j, prop in enumerate(props):
                hatch, edge, lw, ls = None, "white", 1.0, "-"
                if ax is axes[0]:
                    cell = paper[(paper["family"] == fam) & (paper["property"] == prop)]
                    value = cell["value"].iloc[0] if len(cell) else "n/a"
                    ours = len(cell) and not str(cell["source"].iloc[0]).startswith("paper")
                    text = value + ("*" if ours else "")
                else:
                    cell = measured[(measured["family"] == fam) & (measured["property"] == prop)].iloc[0]
                    value, number = cell["judgement"], cell["value"]
                    text = value if pd.isna(number) else f"{value}\n{number:.3g}"
                    hatch = "////" if cell["status"] == "by construction" else None
                    if not cell["agrees"]:
                        edge, lw, ls = "black", 2.5 if cell["counted"] else 1.2, "-" if cell["counted"] else "--"
                ax.add_patch(
                    Rectangle(
                        (j, i), 1, 1, facecolor=JUDGEMENT_COLORS[value], edgecolor=edge, lw=lw, ls=ls, hatch=hatch
                    )
                )
                ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=7)
        ax.set_xlim(0, len(props))
        ax.set_ylim(len(rows), 0)
        ax.set_xticks(np.arange(len(props)) + 0.5, props)
        labels = [f"{f} ({MEASURED_ROW_LABEL[f]})" if f in MEASURED_ROW_LABEL else f for f in rows]
        ax.set_yticks(np.arange(len(rows)) + 0.5, labels, fontsize=7)
        ax.grid(False)
        ax.set_title(title, fontsize=9)
    handles = [Patch(color=c, label=k) for k, c in JUDGEMENT_COLORS.items() if k != "n/a"]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="////", label="holds by construction"))
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=4,
        fontsize=7,
        frameon=False,
        title="* our reading (the paper does not state it); thick frame: a counted cell that differs from the "
        "paper; dashed: differs, not counted",
        title_fontsize=6,
    )
    return fig


def plot_d1(recovery: pd.DataFrame, widths: pd.DataFrame, masked_gold: pd.DataFrame, min_count: int = 20):
    """D1 (figure ``02_d1_smooth_corruption``): (a) gold-token recovery against t per process /
    denoiser (``recovery``: ``curve, t, retained``); (b) the median width in t over which a
    single token's gold posterior falls from 0.9 to 0.1, against the chain's resolution n, with
    95% CIs over tokens and the jump share at the finest n in the legend (``widths``:
    ``properties.d1_width_summary``; a jump follows the 1/n line); (c) the masked denoiser's gold
    probability against distance to the nearest visible token, one line per t (``masked_gold``:
    ``t, distance, gold_prob``; points averaging fewer than ``min_count`` positions are left out)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.0), layout="constrained")
    styles = {"mask": "masked", "masked": "masked", "Gaussian": "continuous", "continuous": "continuous"}
    for curve, part in recovery.groupby("curve", sort=False):
        first = curve.split(":")[0].split(" ")[0]
        fam = styles.get(first, "uniform")
        axes[0].plot(
            part["t"], part["retained"], ls="-" if "denoiser" in curve else "--", color=family_color(fam), label=curve
        )
    axes[0].set_xlabel("noise level t")
    axes[0].set_ylabel("gold token recovered")
    axes[0].legend(fontsize=5.5)
    axes[0].set_title("(a) information left at t", fontsize=9)
    fam_of = {"mask": "masked", "gaussian": "continuous", "uniform": "uniform"}
    finest = widths["n_steps"].max()
    for process, part in widths.groupby("process", sort=False):
        part = part.sort_values("n_steps")
        err = np.vstack([part["width"] - part["width_lo"], part["width_hi"] - part["width"]]).clip(min=0)
        jump = part.loc[part["n_steps"] == finest, "jump_share"].iloc[0]
        axes[1].errorbar(
            part["n_steps"],
            part["width"],
            yerr=err,
            marker="o",
            ms=3,
            capsize=2,
            color=family_color(fam_of[process]),
            label=f"{process} (jump share at n={finest}: {jump:.2f})",
        )
    n = np.array(sorted(widths["n_steps"].unique()), dtype=float)
    axes[1].plot(n, 1 / n, color="black", lw=0.6, ls=":", label="one step (1/n): a jump")
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("forward chain resolution n (steps)")
    axes[1].set_ylabel("width of the 0.9 -> 0.1 fall in t")
    axes[1].legend(fontsize=5.5)
    axes[1].set_title("(b) one token: jump or glide", fontsize=9)
    mean = masked_gold.groupby(["t", "distance"], as_index=False)["gold_prob"].agg(["mean", "size"])
    mean = mean[mean["size"] >= min_count].rename(columns={"mean": "gold_prob"})
    cmap = plt.get_cmap("viridis")
    ts = sorted(mean["t"].unique())
    for i, t in enumerate(ts):
        part = mean[mean["t"] == t]
        axes[2].plot(
            part["distance"], part["gold_prob"], marker="o", ms=3, color=cmap(i / max(1, len(ts) - 1)), label=f"t={t:g}"
        )
    axes[2].set_xlabel("distance to nearest visible token (capped)")
    axes[2].set_ylabel("masked denoiser p(gold)")
    axes[2].legend(fontsize=6, ncol=2)
    axes[2].set_title("(c) same t, unequal information", fontsize=9)
    return fig


def plot_d2(table: pd.DataFrame, n_steps: int):
    """D2 (figure ``02_d2_tractable_states``): forward steps needed to sample x_t, closed form vs
    chain, and the statistic each gives (they agree when the closed form is right)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8.0, 2.8))
    data = table.dropna(subset=["chain_steps"])
    steps = data.groupby("t", as_index=False)[["chain_steps", "closed_form_steps"]].max()  # equal for every process
    axes[0].plot(steps["t"], steps["chain_steps"], color="black", label="Markov chain (mask, uniform, Gaussian)")
    axes[0].plot(steps["t"], steps["closed_form_steps"], color="black", ls="--", label="closed form (all three)")
    for process, part in data.groupby("process", sort=False):
        color = family_color({"mask": "masked", "gaussian": "continuous"}.get(process, "uniform"))
        norm = part["chain_stat"].abs().max() or 1.0
        axes[1].scatter(part["closed_form_stat"] / norm, part["chain_stat"] / norm, color=color, s=12, label=process)
    axes[0].set_xlabel("noise level t")
    axes[0].set_ylabel(f"steps to sample x_t (chain: {n_steps})")
    axes[0].legend(fontsize=6)
    axes[0].set_title("(a) cost; autoregressive: no x_t exists", fontsize=9)
    axes[1].plot([0, 1], [0, 1], color="black", lw=0.6)
    axes[1].set_xlabel("closed form statistic (scaled)")
    axes[1].set_ylabel("chain statistic (scaled)")
    axes[1].legend(fontsize=6)
    axes[1].set_title("(b) same distribution", fontsize=9)
    return fig


def plot_d3(d3: pd.DataFrame, per_step: pd.DataFrame):
    """D3 (figure ``02_d3_refinement``): (a) mean revisions per position (changes of a value after
    it was first set) per family with 95% CIs over prompts; (b) the log-likelihood per token of
    each family's answers under the autoregressive judge, with CIs (``d3``:
    ``properties.d3_revisions_and_quality``): revisions next to quality, so that a sampler that
    changes its mind without producing likely text is not read as refining; (c) the share of
    positions whose value changes at each forward pass (``per_step``: ``family, progress, changed``)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(10.5, 2.9), layout="constrained")
    x = np.arange(len(d3))
    colors = [family_color(f) for f in d3["family"]]
    for ax, col, lo, hi, label in (
        (axes[0], "revisions", "revisions_lo", "revisions_hi", "revisions per position"),
        (axes[1], "judge_loglik", "judge_lo", "judge_hi", "judge log-likelihood per token (nats)"),
    ):
        err = np.vstack([d3[col] - d3[lo], d3[hi] - d3[col]]).clip(min=0)
        ax.bar(x, d3[col], color=colors, yerr=err, capsize=3)
        ax.set_xticks(x, d3["family"], fontsize=7, rotation=20)
        ax.set_ylabel(label, fontsize=8)
    axes[0].set_title("(a) revisions (95% CI over prompts)", fontsize=9)
    axes[1].set_title("(b) quality: autoregressive judge", fontsize=9)
    for fam, part in per_step.groupby("family", sort=False):
        axes[2].plot(part["progress"], part["changed"], color=family_color(fam), label=fam)
    axes[2].set_xlabel("sampling progress (forward pass / passes)")
    axes[2].set_ylabel("share changed at this pass")
    axes[2].set_yscale("log")
    axes[2].legend(fontsize=7)
    axes[2].set_title("(c) when values change", fontsize=9)
    return fig


def plot_l1(lattice: pd.DataFrame, rounding: Mapping[str, np.ndarray]):
    """L1 (figure ``02_l1_discreteness``): (a) share of positions whose state is a token (or the
    mask) after each pass (``lattice``: ``family, progress, on_lattice``); (b) the cumulative
    distribution of the distance of the continuous sampler's final state to its rounded token, in
    embedding-spacing units, on a symlog axis (linear below :data:`ROUNDING_TOL`), with the count of
    positions above it in the legend."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8.0, 2.8))
    for fam, part in lattice.groupby("family", sort=False):
        axes[0].plot(
            part["progress"],
            part["on_lattice"],
            color=family_color(fam),
            label=fam,
            marker="." if len(part) < 40 else None,
        )
    axes[0].set_ylim(-0.05, 1.05)
    axes[0].set_xlabel("sampling progress")
    axes[0].set_ylabel("share of positions that are tokens")
    axes[0].legend(fontsize=7)
    axes[0].set_title("(a) states on the token lattice", fontsize=9)
    # (b) every position, not a histogram: the distances pile up at 0, so a histogram shows one bar;
    # the sorted distances on a symlog axis show the few that are not on a token, and how far off.
    for fam, values in rounding.items():
        v = np.sort(np.asarray(values, dtype=float))
        off = int((v > ROUNDING_TOL).sum())
        axes[1].step(
            v,
            np.arange(1, v.size + 1) / max(v.size, 1),
            where="post",
            color=family_color(fam),
            label=f"{fam}: {off} of {v.size} positions > {ROUNDING_TOL:g}",
        )
    axes[1].set_xscale("symlog", linthresh=ROUNDING_TOL)
    axes[1].set_xlim(left=0)
    axes[1].set_ylim(0, 1.02)
    axes[1].set_xlabel("final distance to nearest token / embedding spacing")
    axes[1].set_ylabel("share of positions at or below")
    axes[1].legend(fontsize=7, loc="lower right")
    axes[1].set_title("(b) rounding left at the end (cumulative)", fontsize=9)
    return fig


def plot_l2(rates: pd.DataFrame, area: pd.DataFrame | None = None):
    """L2 (figure ``02_l2_structural_dependency``): invalid-sequence rate against forward passes
    (NFE) on each toy language, one line per family, 95% Wilson intervals; with ``area``
    (``properties.l2_area``) each legend entry carries the family's mean invalid rate over the
    budgets up to L on that language."""
    import matplotlib.pyplot as plt

    langs = list(dict.fromkeys(rates["language"]))
    fig, axes = plt.subplots(1, len(langs), figsize=(3.2 * len(langs), 2.8), squeeze=False)
    for ax, lang in zip(axes[0], langs):
        part = rates[rates["language"] == lang]
        for fam, sub in part.groupby("family", sort=False):
            sub = sub.sort_values("nfe")
            err = np.vstack([sub["invalid"] - sub["ci_low"], sub["ci_high"] - sub["invalid"]]).clip(min=0)
            label = fam
            if area is not None:
                a = area[(area["language"] == lang) & (area["family"] == fam)]["area"]
                label = f"{fam} (area {a.iloc[0]:.2f})" if len(a) else fam
            ax.errorbar(
                sub["nfe"], sub["invalid"], yerr=err, color=family_color(fam), marker="o", ms=3, capsize=2, label=label
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("forward passes (NFE)")
        ax.set_title(lang, fontsize=9)
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("invalid sequences")
    return fig
