"""Information-aware corruption (dlmpaper.analyses.schedules, dlmpaper.core.objectives.scheduled_corrupt):
the exact any-order NLL, the conditional entropies and the per-position schedule, on cases known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dlmpaper.analyses import schedules as S
from dlmpaper.core.objectives import DEFAULT_EPS, scheduled_corrupt
from dlmpaper.core.trap import agreement_language, brackets_language, copy_language


@pytest.mark.parametrize("lang", [agreement_language(), copy_language(), brackets_language()], ids=lambda g: g.name)
def test_exact_marginals_give_the_entropy(lang):
    entropy = float(-(lang.probs * np.log(lang.probs)).sum())
    assert S.any_order_nll(None, lang) == pytest.approx(entropy, rel=1e-9)
    assert S.conditional_entropies(lang).sum() == pytest.approx(entropy, rel=1e-9)


def test_uniform_marginals_give_L_log_V():
    """A model that predicts every token uniformly pays log V at every position, in every order."""
    lang = copy_language()

    def uniform(states):
        return np.full((len(states), lang.length, lang.vocab_size), 1.0 / lang.vocab_size)

    assert S.any_order_nll(uniform, lang) == pytest.approx(lang.length * math.log(lang.vocab_size))


def test_conditional_entropy_of_copy_by_hand():
    """copy6: a first token of 3, four free fillers of 2 each, the last position repeats the first."""
    h = S.conditional_entropies(copy_language())
    assert np.allclose(h, [math.log(3)] + [math.log(2)] * 4 + [0.0])


def test_schedule_exponents():
    lang = copy_language()
    assert S.schedule_exponents(lang, "uniform").tolist() == [1.0] * 6
    pos = S.schedule_exponents(lang, "position")
    assert pos[0] == pytest.approx(2.0) and pos[-1] == pytest.approx(0.5) and (np.diff(pos) < 0).all()
    ent, inv = S.schedule_exponents(lang, "entropy"), S.schedule_exponents(lang, "entropy_inverse")
    assert ent[0] < ent[1] < 1 < ent[5] and np.allclose(ent[1:5], ent[1]) and np.allclose(ent * inv, 1.0)
    with pytest.raises(ValueError, match="unknown schedule"):
        S.schedule_exponents(lang, "zigzag")


def test_scheduled_corrupt_rates_and_weights():
    ids = torch.zeros((20000, 2), dtype=torch.long)
    t = torch.full((20000,), 0.5)
    w = torch.tensor([1.0, 2.0])
    noisy, masked, weight = scheduled_corrupt(ids, w, 9, t, torch.Generator().manual_seed(0))
    m = DEFAULT_EPS + (1 - DEFAULT_EPS) * torch.tensor([0.5, 0.25])
    assert masked.float().mean(0).tolist() == pytest.approx(m.tolist(), abs=0.015)
    assert (noisy[masked] == 9).all() and (noisy[~masked] == 0).all()
    expected = (1 - DEFAULT_EPS) * w * 0.5 ** (w - 1) / m  # m'(t) / m(t)
    assert weight[0].tolist() == pytest.approx(expected.tolist())
    with pytest.raises(ValueError, match="positive"):
        scheduled_corrupt(ids, torch.tensor([1.0, 0.0]), 9, t)
    with pytest.raises(ValueError, match="one per position"):
        scheduled_corrupt(ids, torch.tensor([1.0]), 9, t)


def _table():
    import pandas as pd

    rows = []
    for seed, (u, a, b) in enumerate([(0.10, 0.01, 0.09), (0.12, 0.02, 0.20), (0.11, 0.03, 0.05)]):
        rows += [
            {"language": "L", "schedule": "uniform", "seed": seed, "nll_gap": u},
            {"language": "L", "schedule": "entropy", "seed": seed, "nll_gap": a},  # every seed below uniform
            {"language": "L", "schedule": "position", "seed": seed, "nll_gap": b},  # overlapping
        ]
    return pd.DataFrame(rows)


def test_schedule_summary_separates_only_on_non_overlapping_seeds():
    out = S.schedule_summary(_table(), metrics=["nll_gap"]).set_index("schedule")
    assert out.loc["uniform", "vs_uniform"] == "baseline"
    assert out.loc["entropy", "vs_uniform"] == "better" and out.loc["entropy", "mean"] == pytest.approx(0.02)
    assert out.loc["position", "vs_uniform"] == "not separable"
    assert (out.loc["position", "min"], out.loc["position", "max"]) == (0.05, 0.20)
    worse = _table().assign(nll_gap=lambda d: d["nll_gap"].where(d["schedule"] != "entropy", 1.0))
    assert S.schedule_summary(worse, metrics=["nll_gap"]).set_index("schedule").loc["entropy", "vs_uniform"] == "worse"


def test_plot_schedules_one_panel_per_metric():
    import matplotlib

    matplotlib.use("Agg")
    from dlmpaper.figures.remedies import plot_schedules

    table = _table().assign(invalid_k1_random=0.0, invalid_k1_left_to_right=0.0, invalid_budget_random=0.1)
    fig = plot_schedules(table, S.METRICS)
    assert len(fig.axes) == 4 and [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["L"]
    with pytest.raises(ValueError, match="plot_schedules needs columns"):
        plot_schedules(table.drop(columns="seed"), S.METRICS)


def test_uniform_schedule_is_llada_objective_times_one_minus_eps():
    """With w = 1 the scheduled loss draws the same t and masks as LLaDA's and weights each masked
    token by (1 - eps) / p instead of 1 / p: the two losses differ by exactly the factor 1 - eps."""
    from transformers import BertForMaskedLM

    from dlmpaper.lm.toymodels import toy_loss, toy_model_config

    lang = copy_language()
    torch.manual_seed(0)
    model = BertForMaskedLM(toy_model_config(lang)).eval()
    ids = torch.from_numpy(lang.sample(64, np.random.default_rng(0)))
    eps = DEFAULT_EPS
    llada = toy_loss(model, ids, lang.mask_id, torch.Generator().manual_seed(5), eps)
    scheduled = toy_loss(model, ids, lang.mask_id, torch.Generator().manual_seed(5), eps, exponents=[1.0] * lang.length)
    assert float(scheduled) == pytest.approx((1 - eps) * float(llada), rel=1e-5)
    with pytest.raises(ValueError, match="masked family"):
        toy_loss(model, ids, lang.mask_id, torch.Generator(), eps, family="autoregressive", exponents=[1.0] * 6)
