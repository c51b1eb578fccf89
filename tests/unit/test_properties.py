"""Each property proxy of dlmpaper.analyses.properties on a case whose answer is known by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from dlmpaper.analyses import properties
from dlmpaper.core import trap

# D1 --------------------------------------------------------------------------------------------


def test_gaussian_gold_posterior_by_hand():
    E = torch.tensor([[1.0], [-1.0]])
    z = torch.tensor([[0.0], [0.5]])
    ab = 0.5
    post = properties.gold_posterior_gaussian(z, torch.tensor([0, 0]), E, ab)
    # two tokens at +-1: posterior of +1 is sigmoid(2 sqrt(ab) z / (1 - ab))
    expected = torch.sigmoid(2 * math.sqrt(ab) * z[:, 0] / (1 - ab))
    assert torch.allclose(post, expected, atol=1e-6)
    assert post[0].item() == pytest.approx(0.5)
    assert properties.gold_posterior_gaussian(E, torch.tensor([0, 1]), E, 1.0).tolist() == [1.0, 1.0]


def test_transition_width_of_a_jump_is_one_step():
    t = np.linspace(0, 1, 11)
    jump = np.array([1.0] * 4 + [0.01] * 7)
    ramp = np.clip(1 - t, 0, 1)
    assert properties.transition_width(jump, t) == pytest.approx(0.1)
    assert properties.transition_width(ramp, t) == pytest.approx(0.8)
    assert math.isnan(properties.transition_width(np.ones(11), t))


def test_single_token_paths_mask_jumps_gaussian_glides():
    E = torch.randn(50, 16, generator=torch.Generator().manual_seed(0))
    paths = properties.d1_single_token_paths(E, n_tokens=64, n_steps=100, seed=0)
    drop = paths.groupby("process")["max_drop"].mean()
    steps = paths.groupby("process")["fall_steps"].median()
    assert drop["mask"] == pytest.approx(1 - 1 / 50)  # every token is masked by t = 1, in one step
    assert steps["mask"] == 1 and steps["gaussian"] >= 3
    assert drop["gaussian"] < 0.5


# D2 --------------------------------------------------------------------------------------------


def test_tractability_counts_steps_and_closed_form_matches_chain():
    E = torch.randn(30, 8, generator=torch.Generator().manual_seed(0))
    x0 = torch.randint(30, (4000,), generator=torch.Generator().manual_seed(1))
    table = properties.d2_tractability(x0, E, [0.5], n_steps=100, seed=0)
    diff = table.dropna()
    assert set(diff["chain_steps"]) == {50} and set(diff["closed_form_steps"]) == {1}
    mask = diff.set_index("process").loc["mask"]
    assert mask["closed_form_stat"] == pytest.approx(0.5, abs=0.03)
    assert mask["chain_stat"] == pytest.approx(0.5, abs=0.03)
    assert np.allclose(diff["closed_form_stat"], diff["chain_stat"], rtol=0.08)
    assert table.set_index("family").loc["autoregressive", "process"] == "none"


# D3 --------------------------------------------------------------------------------------------


def test_changes_per_position_by_hand():
    M = 9
    masked = torch.tensor([[[M, M]], [[1, M]], [[1, 2]]])  # (S, B, L)
    refine = torch.tensor([[[4]], [[5]], [[4]]])
    a = properties.changes_per_position(masked, undecided=M)
    b = properties.changes_per_position(refine)
    assert a["changes"].tolist() == [1, 1] and a["revisions"].tolist() == [0, 0]
    assert b["changes"].tolist() == [2] and b["revisions"].tolist() == [2]


def test_commit_trajectory_and_order():
    final = torch.tensor([[7, 8, 9]])
    steps = torch.tensor([[2, 1, 3]])
    states = properties.commit_trajectory(final, steps, 3, undecided=0)
    assert states[:, 0].tolist() == [[0, 0, 0], [0, 8, 0], [7, 8, 0], [7, 8, 9]]
    assert properties.changes_per_position(states, undecided=0)["revisions"].sum() == 0
    assert properties.out_of_order_share(steps) == pytest.approx(1 / 3)
    assert properties.out_of_order_share(torch.tensor([[1, 2, 3]])) == 0.0


# L1 --------------------------------------------------------------------------------------------


def test_lattice_share_and_rounding_error_by_hand():
    E = torch.tensor([[0.0], [2.0], [4.0]])
    assert properties.embedding_spacing(E) == pytest.approx(2.0)
    assert properties.lattice_share(torch.tensor([0.0, 0.5, 0.0, 1e-4]), E) == pytest.approx(0.75)
    assert properties.relative_rounding_error(torch.tensor([0.5, 0.5]), E) == pytest.approx(0.25)


# L2 --------------------------------------------------------------------------------------------


def test_invalid_rate_by_hand_and_masked_nfe_bookkeeping():
    lang = trap.agreement_language()
    good = lang.sequences[:3]
    samples = np.concatenate([good, good])
    assert properties.invalid_rate(lang, samples)[0] == 0.0
    rate, low, high = properties.invalid_rate(lang, np.array([[0, 0, 0]] * 4 + list(good[:1])))
    assert rate == pytest.approx(float((~lang.valid_mask(np.array([[0, 0, 0]]))).sum()) * 4 / 5)
    assert low <= rate <= high
    table = properties.l2_invalid_rates(lang, {}, n_samples=500, marginal_fn=trap.exact_marginal_fn(lang))
    masked = table[table["family"] == "masked"].set_index("nfe")["invalid"]
    assert sorted(masked.index) == [1, 2, 3]
    assert masked[3] == 0.0  # one token per step with the exact marginals never fails
    assert masked[1] > 0.1  # all three at once: the marginal trap


# L2 whole curve -----------------------------------------------------------------------------------


def _rates() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "language": ["x"] * 6,
            "family": ["masked"] * 3 + ["continuous"] * 2 + ["autoregressive"],
            "nfe": [1, 2, 4, 2, 8, 4],
            "invalid": [0.9, 0.5, 0.0, 0.3, 0.1, 0.0],
        }
    )


def test_l2_budget_curve_uses_the_best_setting_that_fits_and_no_budget_below_the_minimum():
    curve = properties.l2_budget_curve(_rates(), {"x": 4})
    masked = curve[curve["family"] == "masked"].set_index("budget")["invalid"]
    assert masked[1] == 0.9 and masked[2] == 0.5 and masked[3] == 0.5 and masked[4] == 0.0 and masked[16] == 0.0
    cont = curve[curve["family"] == "continuous"].set_index("budget")["invalid"]
    assert 1 not in cont.index and cont[7] == 0.3 and cont[8] == 0.1
    ar = curve[curve["family"] == "autoregressive"]
    assert ar["budget"].min() == 4  # it cannot decode with fewer passes than tokens
    area = properties.l2_area(curve).set_index(["language", "family"])["area"]
    assert area[("x", "masked")] == pytest.approx((0.9 + 0.5 + 0.5 + 0.0) / 4)
    assert area[("x", "continuous")] == pytest.approx(0.3)  # budgets 2..4
    assert area[("x", "autoregressive")] == 0.0
    assert area[("mean", "masked")] == area[("x", "masked")]


# the matrix ------------------------------------------------------------------------------------


def test_rules_read_thresholds_both_ways_and_the_old_order_credit():
    up = properties.Rule("D3", "revisions", 0.1, 0.01)
    old = properties.Rule("D3", "revisions", 0.1, 0.01, order_counts=True)
    assert [up(0.5), up(0.05), up(0.0)] == ["yes", "partial", "no"]
    assert [old(0.0, 0.6), up(0.0, 0.6)] == ["partial", "no"]  # ordering alone earned "partial" before
    down = properties.Rule("L2", "area", 0.05, 0.2, low_is_yes=True)
    assert [down(0.01), down(0.1), down(0.5), down(float("nan"))] == ["yes", "partial", "no", "n/a"]
    assert properties.Rule("D1", "jump n=1000", 0.05, 0.95, low_is_yes=True)(float("nan")) == "no"
    assert "yes <= 0.05" in down.name
    for prop, rules in properties.RULE_GRID.items():
        assert rules and all(r.property == prop for r in rules) and len(set(rules)) == len(rules)


def _meas(**values) -> pd.DataFrame:
    rows = []
    for fam in properties.MEASURED_FAMILIES:
        for prop, rules in properties.RULE_GRID.items():
            for setting in dict.fromkeys(r.setting for r in rules):
                v = values.get(f"{fam}:{prop}:{setting}", values.get(f"{fam}:{prop}", 0.0))
                rows.append((fam, prop, setting, v, 0.0))
    return pd.DataFrame(rows, columns=["family", "property", "setting", "value", "extra"])


def test_matrix_counts_only_measured_paper_cells_and_sensitivity_counts_flips():
    paper = pd.DataFrame(
        [
            (fam, prop, "yes", "paper" if fam != "autoregressive" else "ours")
            for fam in ("continuous", "discrete", "autoregressive")
            for prop in properties.PROPERTIES
        ],
        columns=["family", "property", "value", "source"],
    )
    meas = _meas(**{"continuous:D3": 1.0, "uniform:D1:jump n=1000": 0.5, "uniform:D1:jump n=10": 1.0})
    table = properties.property_matrix(meas, paper).set_index(["family", "property"])
    assert len(table) == 4 * 5
    assert table.loc[("continuous", "D3"), "judgement"] == "yes" and table.loc[("continuous", "D3"), "counted"]
    assert table.loc[("masked", "D1"), "status"] == "by construction" and not table.loc[("masked", "D1"), "counted"]
    assert not table.loc[("autoregressive", "L2"), "counted"]  # measured, but the paper's cell is our reading
    assert table.loc[("uniform", "D1"), "judgement"] == "partial" and table.loc[("uniform", "D1"), "paper"] == "yes"
    sens = properties.sensitivity_table(meas)
    flips = properties.flip_summary(sens).set_index(["family", "property"])
    # uniform D1: jump share 1.0 at n = 10 reads "no" under both n = 10 rules; 0 elsewhere reads "yes"
    assert flips.loc[("uniform", "D1"), "flips"] >= 2
    assert flips.loc[("continuous", "D3"), "flips"] == 0
    assert set(sens.columns) >= {"property", "rule", "default", "family", "judgement", "flips"}


# D1, resolution-free -------------------------------------------------------------------------------


def test_uniform_gold_posterior_and_log_snr_by_hand():
    gold = torch.tensor([3, 3])
    post = properties.gold_posterior_uniform(torch.tensor([3, 5]), gold, keep=0.6, n_noise=10)
    assert post.tolist() == pytest.approx([0.6 + 0.4 / 10, 0.4 / 10])
    lam = properties.log_snr("mask", np.array([0.5, 0.0, 1.0]))
    assert lam[0] == pytest.approx(0.0) and lam[1] == np.inf and lam[2] == -np.inf
    gauss = properties.log_snr("gaussian", np.linspace(0, 1, 11))
    assert gauss[0] == np.inf and np.all(np.diff(gauss) < 0)


def test_fall_width_is_resolution_free_only_for_a_glide():
    E = torch.randn(40, 16, generator=torch.Generator().manual_seed(0)) * 3
    paths = properties.d1_paths_by_resolution(E, (10, 200), n_tokens=48, seed=0)
    d1 = properties.d1_width_summary(paths, n_boot=200).set_index(["process", "n_steps"])
    assert d1.loc[("mask", 10), "width"] == pytest.approx(0.1) and d1.loc[("mask", 200), "width"] == pytest.approx(
        0.005
    )
    assert d1.loc[("mask", 200), "jump_share"] == 1.0  # every masked token jumps at every resolution
    assert d1.loc[("gaussian", 200), "jump_share"] <= 0.1
    assert d1.loc[("gaussian", 200), "width"] > 4 * d1.loc[("mask", 200), "width"]
    assert 0.2 < d1.loc[("uniform", 200), "jump_share"] < 0.8  # survivors glide, replaced tokens jump
    for col in ("width", "logsnr"):
        assert (d1[f"{col}_lo"] <= d1[col] + 1e-12).all() and (d1[col] <= d1[f"{col}_hi"] + 1e-12).all()


def test_d3_counts_revisions_per_prompt_and_scores_answers_with_the_judge():
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    judge = BertForMaskedLM(
        BertConfig(vocab_size=10, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    ).eval()
    U = -1
    # prompt 0: position 0 is set, then revised twice; prompt 1: set once, never revised
    states = torch.tensor([[[U, U], [U, U]], [[3, 4], [5, U]], [[6, 4], [5, 7]], [[3, 4], [5, 7]]])
    trace = properties.SamplerTrace(
        "uniform",
        states,
        U,
        3,
        torch.ones(3, 2, 2, dtype=torch.bool),
        torch.zeros(2, 2),
        None,
        ["", ""],
        [[3, 4], [5, 7]],
    )
    d3 = properties.d3_revisions_and_quality({"uniform": trace}, judge, [[1, 2], [1, 2]], end_id=9, n_boot=200)
    row = d3.iloc[0]
    assert row["revisions"] == pytest.approx((2 / 2 + 0 / 2) / 2)  # mean over prompts of per-position means
    assert row["revisions_lo"] <= row["revisions"] <= row["revisions_hi"]
    assert np.isfinite(row["judge_loglik"]) and row["judge_loglik"] < 0
