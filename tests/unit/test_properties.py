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


# the matrix ------------------------------------------------------------------------------------


def test_judgements_follow_the_stated_rules():
    j = properties.judge_property
    assert [j("D1", 1), j("D1", 6), j("D1", 2), j("D1", float("nan"))] == ["no", "yes", "partial", "no"]
    assert [j("D2", 1), j("D2", 50), j("D2", 5)] == ["yes", "no", "partial"]
    assert [j("D3", 3.0, 0.0), j("D3", 0.0, 0.4), j("D3", 0.0, 0.0)] == ["yes", "partial", "no"]
    assert [j("L1", 1.0), j("L1", 0.0), j("L1", 0.5)] == ["yes", "no", "partial"]
    assert [j("L2", 0.01), j("L2", 0.5), j("L2", 0.1)] == ["yes", "no", "partial"]
    with pytest.raises(ValueError, match="unknown property"):
        j("L3", 0.1)
    summary = pd.DataFrame({"family": ["masked"], "property": ["L1"], "value": [1.0]})
    paper = pd.DataFrame({"family": ["discrete"], "property": ["L1"], "value": ["yes"], "source": ["paper"]})
    table = properties.agreement_table(properties.measured_matrix(summary), paper)
    assert table.loc[0, "judgement"] == "yes" and bool(table.loc[0, "agrees"])


def test_l2_budget_reads_half_the_passes_and_ar_at_its_length():
    rates = pd.DataFrame(
        {
            "language": ["x"] * 6,
            "family": ["masked"] * 3 + ["continuous"] * 2 + ["autoregressive"],
            "nfe": [1, 2, 4, 2, 8, 4],
            "invalid": [0.9, 0.5, 0.0, 0.3, 0.1, 0.0],
        }
    )
    picked = properties.l2_at_budget(rates, {"x": 4}).set_index("family")
    assert picked.loc["masked", "nfe"] == 2 and picked.loc["masked", "invalid"] == 0.5
    assert picked.loc["continuous", "nfe"] == 2 and picked.loc["continuous", "invalid"] == 0.3
    assert picked.loc["autoregressive", "nfe"] == 4
