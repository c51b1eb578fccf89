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
#: Distances (in embedding-spacing units) below which a final state counts as on its token in figure L1 (b).
ROUNDING_TOL = 1e-3


def family_color(family: str) -> str:
    return FAMILY_COLORS[PALETTE_FAMILY[family]]


def plot_property_matrices(paper: pd.DataFrame, measured: pd.DataFrame):
    """Paper's family x property judgement next to ours (figure ``02_property_matrices``).

    ``paper``: taxonomy's judgement table (``family, property, value, source``); ``measured``:
    ``properties.agreement_table`` output (``paper_family, property, judgement, value, agrees``).
    Cells are coloured yes / partial / no; measured cells show the number behind the judgement
    and a thick frame where it differs from the paper's."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    props = list(PROPERTY_LABELS)
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 2.9), sharey=True, layout="constrained")
    for ax, title, table in ((axes[0], "paper (arXiv 2512.22630)", paper), (axes[1], "measured here", measured)):
        for i, fam in enumerate(ROWS):
            for j, prop in enumerate(props):
                if table is paper:
                    cell = table[(table["family"] == fam) & (table["property"] == prop)]
                    value = cell["value"].iloc[0] if len(cell) else "n/a"
                    text = value + ("" if not len(cell) or str(cell["source"].iloc[0]).startswith("paper") else "*")
                    differs = False
                else:
                    cell = table[(table["paper_family"] == fam) & (table["property"] == prop)]
                    value = cell["judgement"].iloc[0] if len(cell) else "n/a"
                    number = cell["value"].iloc[0] if len(cell) else np.nan
                    text = value if pd.isna(number) else f"{value}\n{number:.3g}"
                    differs = bool(len(cell)) and not bool(cell["agrees"].iloc[0])
                ax.add_patch(
                    Rectangle(
                        (j, i),
                        1,
                        1,
                        facecolor=JUDGEMENT_COLORS[value],
                        edgecolor="black" if differs else "white",
                        lw=2.5 if differs else 1,
                    )
                )
                ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=7)
        ax.set_xlim(0, len(props))
        ax.set_ylim(len(ROWS), 0)
        ax.set_xticks(np.arange(len(props)) + 0.5, props)
        ax.set_yticks(np.arange(len(ROWS)) + 0.5, ROWS)
        ax.grid(False)
        ax.set_title(title, fontsize=9)
    handles = [Patch(color=c, label=k) for k, c in JUDGEMENT_COLORS.items() if k != "n/a"]
    # below the tick labels: constrained layout keeps the legend (the note is its title) clear of the axes
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=3,
        fontsize=7,
        frameon=False,
        title="* our reading (the paper does not state it); framed: measured differs from the paper",
        title_fontsize=6,
    )
    return fig


def plot_d1(recovery: pd.DataFrame, paths: pd.DataFrame, masked_gold: pd.DataFrame, min_count: int = 20):
    """D1 (figure ``02_d1_smooth_corruption``): (a) gold-token recovery against t per process /
    denoiser (``recovery``: ``curve, t, retained``); (b) over how many steps of a 100-step chain a
    single token's gold posterior falls from 0.9 to 0.1 (``paths``: ``process, fall_steps``);
    (c) the masked denoiser's gold probability against distance to the nearest visible token, one
    line per t (``masked_gold``: ``t, distance, gold_prob``; points averaging fewer than
    ``min_count`` positions are left out)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(10.0, 2.9))
    styles = {
        "mask: token visible (1 - t)": ("masked", "--"),
        "masked denoiser p(gold)": ("masked", "-"),
        "Gaussian: nearest-embedding rounding": ("continuous", "--"),
        "continuous denoiser p(gold)": ("continuous", "-"),
    }
    for curve, part in recovery.groupby("curve", sort=False):
        fam, ls = styles.get(curve, ("autoregressive", ":"))
        axes[0].plot(part["t"], part["retained"], ls=ls, color=family_color(fam), label=curve)
    axes[0].set_xlabel("noise level t")
    axes[0].set_ylabel("gold token recovered")
    axes[0].legend(fontsize=6)
    axes[0].set_title("(a) information left at t", fontsize=9)
    steps = np.arange(1, int(paths["fall_steps"].max()) + 1)
    width = 0.4
    for k, (process, part) in enumerate(paths.groupby("process")):
        counts = part["fall_steps"].value_counts(normalize=True).reindex(steps, fill_value=0)
        axes[1].bar(
            steps + (k - 0.5) * width,
            counts.values,
            width,
            color=family_color("masked" if process == "mask" else "continuous"),
            label=process,
        )
    axes[1].set_xlabel("chain steps for p(gold | own state) to fall 0.9 -> 0.1")
    axes[1].set_ylabel("share of tokens")
    axes[1].legend(fontsize=7)
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


def plot_d3(changes: pd.DataFrame, per_step: pd.DataFrame):
    """D3 (figure ``02_d3_refinement``): (a) distribution of value changes per position during
    reverse sampling, per family (``changes``: ``family, changes``); (b) share of positions whose
    value changes at each forward pass (``per_step``: ``family, progress, changed``)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8.4, 2.8))
    top = int(min(changes["changes"].max(), 12))
    bins = np.arange(1, top + 2)
    fams = list(dict.fromkeys(changes["family"]))
    width = 0.8 / len(fams)
    for k, fam in enumerate(fams):
        vals = changes.loc[changes["family"] == fam, "changes"].clip(upper=top)
        share = vals.value_counts(normalize=True).reindex(bins[:-1], fill_value=0)
        axes[0].bar(
            bins[:-1] + (k - (len(fams) - 1) / 2) * width, share.values, width, color=family_color(fam), label=fam
        )
    axes[0].set_xlabel(f"value changes per position ({top} = {top} or more)")
    axes[0].set_ylabel("share of positions")
    axes[0].legend(fontsize=7)
    axes[0].set_title("(a) how often a position changes", fontsize=9)
    for fam, part in per_step.groupby("family", sort=False):
        axes[1].plot(part["progress"], part["changed"], color=family_color(fam), label=fam)
    axes[1].set_xlabel("sampling progress (forward pass / passes)")
    axes[1].set_ylabel("share changed at this pass")
    axes[1].set_yscale("log")
    axes[1].legend(fontsize=7)
    axes[1].set_title("(b) when they change", fontsize=9)
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


def plot_l2(rates: pd.DataFrame):
    """L2 (figure ``02_l2_structural_dependency``): invalid-sequence rate against forward passes
    (NFE) on each toy language, one line per family, 95% Wilson intervals."""
    import matplotlib.pyplot as plt

    langs = list(dict.fromkeys(rates["language"]))
    fig, axes = plt.subplots(1, len(langs), figsize=(3.2 * len(langs), 2.8), squeeze=False)
    for ax, lang in zip(axes[0], langs):
        part = rates[rates["language"] == lang]
        for fam, sub in part.groupby("family", sort=False):
            sub = sub.sort_values("nfe")
            err = np.vstack([sub["invalid"] - sub["ci_low"], sub["ci_high"] - sub["invalid"]]).clip(min=0)
            ax.errorbar(
                sub["nfe"], sub["invalid"], yerr=err, color=family_color(fam), marker="o", ms=3, capsize=2, label=fam
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("forward passes (NFE)")
        ax.set_title(lang, fontsize=9)
    axes[0][0].set_ylabel("invalid sequences")
    axes[0][0].legend(fontsize=7)
    return fig
