"""Tests for dlmpaper.figures.trap: tables and figures of notebook 04_marginal_trap (paper §4, issue (ii))."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=True)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from dlmpaper.analyses import trap as AT  # noqa: E402
from dlmpaper.core import trap  # noqa: E402
from dlmpaper.figures import trap as ft  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --------------------------------------------------------------------------- figure 1
def test_plot_likes_exact_marks_every_invalid_cell_in_both_panels():
    table = trap.likes_example("tennis")
    fig = ft.plot_likes_exact(table)
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 2
    n_invalid = int((~table["valid"]).sum())
    assert n_invalid == 12  # 4 plural subjects x 2 singular verbs + 2 singular subjects x 2 plural verbs
    for ax in images:
        hatched = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch()]
        assert len(hatched) == n_invalid
        assert ax.images[0].get_array().shape == (6, 4)
    joint_ax, product_ax = images
    assert "0.000" in joint_ax.get_title() and "0.444" in product_ax.get_title()  # 4/9 on invalid pairs
    # cell (I, likes): joint 0, product 1/6 * 1/6 = 0.028
    assert joint_ax.images[0].get_array()[0, 2] == 0.0
    assert product_ax.images[0].get_array()[0, 2] == pytest.approx(1 / 36)


def test_plot_likes_exact_needs_its_columns():
    with pytest.raises(ValueError, match="needs columns"):
        ft.plot_likes_exact(pd.DataFrame({"subject": ["I"], "verb": ["like"]}))


# --------------------------------------------------------------------------- figure 2
def _rates():
    rows = []
    for lang in ("a", "b"):
        for order in ("left_to_right", "random"):
            for marg in ("exact", "trained"):
                for k in (1, 2, 4):
                    v = 0.0 if k == 1 and marg == "exact" else 0.1 * k
                    rows.append(
                        dict(
                            language=lang,
                            order=order,
                            marginals=marg,
                            tokens_per_step=k,
                            invalid_exact=v,
                            invalid_sim=v,
                            sim_ci_low=max(0, v - 0.02),
                            sim_ci_high=v + 0.02,
                        )
                    )
    return pd.DataFrame(rows)


def test_plot_invalid_rates_grid_and_series():
    fig = ft.plot_invalid_rates(_rates())
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 4
    titles = sorted(ax.get_title() for ax in axes)
    assert titles == ["a, left-to-right", "a, random", "b, left-to-right", "b, random"]
    for ax in axes:
        assert ax.get_xscale() == "log"
        assert len(ax.containers) == 2  # simulation error bars: exact and trained marginals
        solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-" and len(ln.get_xdata()) == 3]
        assert np.allclose(solid[0].get_ydata(), [0.0, 0.2, 0.4])


def test_plot_invalid_rates_skips_recursion_line_when_exact_is_nan():
    rates = _rates()
    rates.loc[rates["marginals"] == "trained", "invalid_exact"] = np.nan
    fig = ft.plot_invalid_rates(rates)
    ax = fig.axes[0]
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert dashed == []


# --------------------------------------------------------------------------- statistics
def test_bootstrap_ci_constant_nan_and_empty():
    assert AT.bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5, 3)
    mean, lo, hi, n = AT.bootstrap_ci([1.0, np.nan, 3.0], n_boot=200, seed=1)
    assert (mean, n) == (2.0, 2) and 1.0 <= lo <= mean <= hi <= 3.0
    mean, lo, hi, n = AT.bootstrap_ci([np.nan])
    assert n == 0 and np.isnan(mean) and np.isnan(lo)
    assert AT.bootstrap_ci([1, 2, 5, 9], seed=3) == AT.bootstrap_ci([1, 2, 5, 9], seed=3)


def test_wilson_interval_matches_the_formula():
    lo, hi = AT.wilson_interval(0.5, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    with pytest.raises(ValueError):
        AT.wilson_interval(1.5, 10)


def _sweep():
    rows = []
    for b in (16, 32):
        for k in (1, 4, 16):
            for p in range(3):
                rows.append(
                    dict(
                        prompt=p,
                        block_length=b,
                        tokens_per_step=k,
                        adjacent_duplicate_rate=0.1 * p + 0.01 * k,
                        distinct_ratio=0.1 * p + 0.01 * k,
                        answer_length=32 - (k if b == 32 else 0),
                        seq_loglik_per_token=-1.0 - 0.1 * k + (0.05 * p if b == 32 else 0.0),
                        text=f"answer of prompt {p} at k={k} " + "word " * 20,
                    )
                )
    return pd.DataFrame(rows)


def test_summarize_over_prompts_means_and_counts():
    s = AT.summarize_over_prompts(_sweep(), ["block_length", "tokens_per_step"], ["distinct_ratio", "answer_length"])
    assert list(s.columns) == ["block_length", "tokens_per_step", "metric", "mean", "ci_low", "ci_high", "n"]
    assert len(s) == 2 * 3 * 2
    row = s[(s["block_length"] == 32) & (s["tokens_per_step"] == 16) & (s["metric"] == "answer_length")].iloc[0]
    assert (row["mean"], row["ci_low"], row["ci_high"], row["n"]) == (16.0, 16.0, 16.0, 3)
    row = s[(s["block_length"] == 16) & (s["tokens_per_step"] == 4) & (s["metric"] == "distinct_ratio")].iloc[0]
    assert row["mean"] == pytest.approx(0.14)  # (0.04 + 0.14 + 0.24) / 3
    with pytest.raises(ValueError, match="needs columns"):
        AT.summarize_over_prompts(_sweep(), ["nope"], ["distinct_ratio"])


def test_paired_change_direction_and_verdict():
    sweep = _sweep()
    up = AT.paired_change(sweep, "adjacent_duplicate_rate", baseline=1, compare=16).set_index("block_length")
    assert up.loc[16, "diff"] == pytest.approx(0.15) and up.loc[16, "ci_low"] == pytest.approx(0.15)
    assert up.loc[16, "agrees"] is True  # duplicates should rise
    down = AT.paired_change(sweep, "distinct_ratio", baseline=1, compare=16).set_index("block_length")
    assert down.loc[16, "agrees"] is False  # distinct ratio should fall but rises
    ll = AT.paired_change(sweep, "seq_loglik_per_token", baseline=1, compare=16).set_index("block_length")
    assert ll.loc[32, "diff"] == pytest.approx(-1.5) and ll.loc[32, "agrees"] is True
    length = AT.paired_change(sweep, "answer_length", baseline=1, compare=16).set_index("block_length")
    assert length.loc[32, "diff"] == pytest.approx(-15.0) and length.loc[32, "agrees"] is None  # no prediction


def test_paired_change_ci_covering_zero_gives_none_and_missing_setting_raises():
    frame = pd.DataFrame(
        dict(
            prompt=[0, 1, 2, 0, 1, 2],
            block_length=16,
            tokens_per_step=[1, 1, 1, 8, 8, 8],
            distinct_ratio=[0.5, 0.5, 0.5, 0.6, 0.4, 0.5],
        )
    )
    out = AT.paired_change(frame, "distinct_ratio", baseline=1, compare=8)
    assert out.iloc[0]["ci_low"] < 0 < out.iloc[0]["ci_high"] and out.iloc[0]["agrees"] is None
    with pytest.raises(ValueError, match="missing"):
        AT.paired_change(frame, "distinct_ratio", baseline=1, compare=4)


# --------------------------------------------------------------------------- figure 3
def test_plot_sweep_one_panel_per_metric_one_line_per_block():
    metrics = ["adjacent_duplicate_rate", "distinct_ratio", "seq_loglik_per_token"]
    s = AT.summarize_over_prompts(_sweep(), ["block_length", "tokens_per_step"], metrics, n_boot=50)
    fig = ft.plot_sweep(s, metrics, hue_labels={32: "one block"})
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3
    for ax, m in zip(visible, metrics):
        assert len(ax.get_lines()) == 2
        assert ax.get_ylabel() == ft.METRIC_LABELS[m]
        assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["block length 16", "one block"]


def test_example_answers_side_by_side_and_shortened():
    wide = AT.example_answers(_sweep(), (1, 16), prompts=[0, 2], width=30)
    assert list(wide.columns) == ["k=1", "k=16"]
    assert list(wide.index) == [(0, 16), (0, 32), (2, 16), (2, 32)]
    assert all(len(t) <= 30 for t in wide.to_numpy().ravel())
    assert wide.loc[(2, 32), "k=16"].startswith("answer of prompt 2 at k=16")
    with pytest.raises(ValueError, match="no row"):
        AT.example_answers(_sweep(), (2,))


def test_end_fill_by_step_counts_and_positions():
    tokens = pd.DataFrame(dict(step=[0, 0, 1, 1, 1], position=[0, 7, 1, 5, 6], token_id=[11, 2, 12, 2, 0]))
    out = AT.end_fill_by_step(tokens, end_ids=(0, 2)).set_index("step")
    assert out.loc[0, "committed"] == 2 and out.loc[0, "end_tokens"] == 1
    assert out.loc[1, "end_share"] == pytest.approx(2 / 3)
    assert out.loc[1, "mean_end_position"] == pytest.approx(5.5)
    assert out.loc[0, "mean_other_position"] == 0.0


# --------------------------------------------------------------------------- figure 4
def _checks():
    # 2 prompts; k=1: 4 steps; prompt 0 revises only its step-3 token, prompt 1 nothing
    return pd.DataFrame(
        dict(
            prompt=[0, 0, 0, 0, 1, 1, 1, 1],
            step=[0, 1, 2, 3, 0, 1, 2, 3],
            would_revise=[False, False, False, True, False, False, False, False],
            tokens_per_step=1,
        )
    )


def test_commit_phase_splits_steps_in_halves():
    out = AT.commit_phase(_checks(), steps=4)
    assert list(out["phase"].astype(str)) == ["early", "early", "late", "late"] * 2
    thirds = AT.commit_phase(_checks(), steps=4, labels=("a", "b", "c"))
    assert list(thirds["phase"].astype(str))[:4] == ["a", "a", "b", "c"]  # floor(s * 3 / 4)
    with pytest.raises(ValueError, match="0..2"):
        AT.commit_phase(_checks(), steps=3)


def test_revision_rates_per_prompt_and_phase():
    per_prompt = AT.revision_rates(_checks())
    assert per_prompt["would_revise"].tolist() == [0.25, 0.0]
    assert per_prompt["n_tokens"].tolist() == [4, 4]
    per_phase = AT.revision_rates(AT.commit_phase(_checks(), 4), by=["tokens_per_step", "phase"])
    late = per_phase[per_phase["phase"].astype(str) == "late"]
    assert late["would_revise"].tolist() == [0.5, 0.0]


def test_plot_committed_states_panels_and_axis_from_zero():
    checks = pd.concat([AT.commit_phase(_checks(), 4), AT.commit_phase(_checks(), 4).assign(tokens_per_step=4)])
    by_k = AT.summarize_over_prompts(AT.revision_rates(checks), ["tokens_per_step"], ["would_revise"], n_boot=50)
    by_phase = AT.summarize_over_prompts(
        AT.revision_rates(checks, ["tokens_per_step", "phase"]),
        ["tokens_per_step", "phase"],
        ["would_revise"],
        n_boot=50,
    )
    fig = ft.plot_committed_states(by_k, by_phase)
    left, right = fig.axes[:2]
    assert left.get_ylim()[0] == 0.0 and right.get_ylim() == left.get_ylim()
    bars = [p for p in right.patches if isinstance(p, Rectangle)]
    assert len(bars) == 2 * 2  # two tokens-per-step values x early/late
    assert ft.plot_committed_states(by_k).axes[0].get_title() == "all committed tokens"
