"""Tests for dlmpaper.core.strategies and their use by sampling.generate: each rule on a case
computed by hand, validation before any forward pass, the default path unchanged, determinism and
left-padded batch equivalence."""

from __future__ import annotations

import math

import pytest
import torch
from test_sampling import Boom, _one_thread, _sharpened  # noqa: F401 (_one_thread: module-wide fixture)

from dlmpaper.core import sampling as S
from dlmpaper.core import strategies as St
from dlmpaper.core.objectives import causal_attention_mask, left_padded_positions, masked_logits

PROMPTS = ["Can brain cells move ?", "Yes", "He likes the cells that can migrate in the brain"]


@pytest.fixture(scope="module")
def sharp(bert_mlm):
    """The BERT stand-in with weights redrawn at std 1 (context-dependent predictions)."""
    return _sharpened(bert_mlm)


@pytest.fixture(scope="module")
def prompts(sharp):
    ids = [sharp.encode_chat(p) for p in PROMPTS]
    assert len({len(i) for i in ids}) == 3  # left padding is exercised
    return ids


def ctx(conf, entropy=None, columns=None, k=1, step=0, steps=1, block_length=None):
    conf = torch.tensor(conf, dtype=torch.float64)
    ent = torch.zeros_like(conf) if entropy is None else torch.tensor(entropy, dtype=torch.float64)
    cols = torch.arange(conf.numel()) if columns is None else torch.tensor(columns)
    return St.StepContext(conf, ent, cols, k, step, steps, block_length or conf.numel())


def chosen(strategy, c):
    return sorted(strategy.select(c).tolist())


# --------------------------------------------------------------------------- rules by hand
def test_threshold_by_hand():
    rule = St.ConfidenceThreshold(0.9)
    assert chosen(rule, ctx([0.95, 0.5, 0.92])) == [0, 2]
    assert chosen(rule, ctx([0.3, 0.6, 0.5])) == [1]  # none passes: the most confident alone
    assert chosen(St.ConfidenceThreshold(1.0), ctx([1.0, 1.0, 0.2])) == [0, 1]


def test_factor_rule_by_hand():
    c = ctx([0.6, 0.99, 0.9])  # sorted 0.99, 0.9, 0.6: (n+1)(1-c_n) = 0.02, 0.3, 1.6
    assert chosen(St.FactorRule(1.0), c) == [1, 2]
    assert chosen(St.FactorRule(2.0), c) == [0, 1, 2]
    assert chosen(St.FactorRule(0.25), c) == [1]  # 0.3 >= 0.25
    assert chosen(St.FactorRule(0.01), c) == [1]  # no n qualifies: at least one


def test_entropy_bound_by_hand():
    ln2 = math.log(2)
    h = [0.1, 0.5, 0.2, 1.0]  # sorted 0.1, 0.2, 0.5, 1.0: sum - max = 0, 0.1, 0.3, 0.8
    assert chosen(St.EntropyBounded(0.35), ctx([0.5] * 4, h)) == [0, 1, 2]
    assert chosen(St.EntropyBounded(0.05), ctx([0.5] * 4, h)) == [0]
    assert chosen(St.EntropyBounded(0.8), ctx([0.5] * 4, h)) == [0, 1, 2, 3]
    # two fair coins: ln 2 each; the pair costs ln 2 beyond its largest member
    assert chosen(St.EntropyBounded(0.69), ctx([0.5, 0.5], [ln2, ln2])) == [0]
    assert chosen(St.EntropyBounded(0.70), ctx([0.5, 0.5], [ln2, ln2])) == [0, 1]


def test_dilated_groups_are_never_adjacent():
    rule = St.Dilated()
    assert chosen(rule, ctx([0.5] * 8, steps=4, step=1)) == [1, 5]
    # after groups 0 and 1 the masked columns are 2, 3, 6, 7: group 2 is columns 2 and 6
    assert chosen(rule, ctx([0.5] * 4, columns=[2, 3, 6, 7], steps=4, step=2, block_length=8)) == [0, 2]
    assert chosen(rule, ctx([0.5] * 2, columns=[3, 7], steps=4, step=3, block_length=8)) == [0, 1]


def test_remask_counts_and_choice():
    rule = St.Remask(0.25)
    assert rule.n_remask(4, 0, 3) == 1 and rule.n_remask(3, 1, 3) == 0 and rule.n_remask(8, 2, 3) == 0
    assert sorted(rule.remask(torch.tensor([0.9, 0.2, 0.5, 0.1], dtype=torch.float64), 2).tolist()) == [1, 3]


def test_verifier_proposes_the_leftmost():
    assert chosen(St.Verifier(3), ctx([0.1, 0.9, 0.5, 0.7])) == [0, 1, 2]
    assert chosen(St.Verifier(3), ctx([0.1])) == [0]


@pytest.mark.parametrize(
    "strategy, fragment",
    [
        (St.ConfidenceThreshold(0.0), "tau"),
        (St.ConfidenceThreshold(1.5), "tau"),
        (St.ConfidenceThreshold(float("nan")), "tau"),
        (St.FactorRule(0), "f must"),
        (St.EntropyBounded(-0.1), "gamma"),
        (St.Remask(1.0), "sigma"),
        (St.Verifier(0), "k "),
        (St.Verifier(2, acceptance="always"), "acceptance"),
        ("threshold", "unknown strategy"),
    ],
)
def test_invalid_settings_fail_before_any_forward_pass(strategy, fragment):
    with pytest.raises(ValueError, match=fragment) as info:
        S.generate(Boom(), [[1, 2]], gen_length=4, block_length=4, progress=False, strategy=strategy)
    assert "\n" not in str(info.value)


def test_generate_rejects_unsupported_combinations():
    with pytest.raises(ValueError, match="judge"):
        S.generate(Boom(), [[1, 2]], gen_length=4, progress=False, strategy=St.Verifier(2))
    with pytest.raises(ValueError, match="low_confidence"):
        S.generate(Boom(), [[1, 2]], gen_length=4, progress=False, remasking="random", strategy=St.Dilated())
    with pytest.raises(ValueError, match="record"):
        S.generate(Boom(), [[1, 2]], gen_length=4, progress=False, record=True, strategy=St.Dilated())


# --------------------------------------------------------------------------- in generate
KW = dict(gen_length=8, block_length=4, steps=4, progress=False)


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_low_confidence_strategy_equals_the_default_path(sharp, prompts, temperature):
    default = S.generate(sharp, prompts, temperature=temperature, seed=5, **KW)
    ours = S.generate(sharp, prompts, temperature=temperature, seed=5, strategy=St.LowConfidence(), **KW)
    assert torch.equal(default.tokens, ours.tokens)
    assert torch.equal(default.commit_step, ours.commit_step)
    assert torch.allclose(default.confidence, ours.confidence, rtol=0, atol=0)
    assert default.nfe_masked.tolist() == [4, 4, 4] and ours.nfe_masked.tolist() == [4, 4, 4]
    assert ours.nfe_ar.tolist() == [0, 0, 0] and default.disagreement is not None and ours.disagreement is None


def _judge(sharp):
    return St.CausalJudge(sharp.model)


STRATEGIES = {
    "threshold": St.ConfidenceThreshold(0.05),
    "factor": St.FactorRule(3.0),
    "entropy": St.EntropyBounded(2.0),
    "dilated": St.Dilated(),
    "remask": St.Remask(0.5),
    "verifier_ratio": "ratio",
    "verifier_greedy": "greedy",
}


def _strategy(name, sharp):
    s = STRATEGIES[name]
    return St.Verifier(3, judge=_judge(sharp), acceptance=s) if isinstance(s, str) else s


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_strategies_are_deterministic_and_batch_independent(sharp, prompts, name):
    strategy = _strategy(name, sharp)
    kw = dict(KW, temperature=0.7, seed=11, strategy=strategy)
    batched = S.generate(sharp, prompts, batch_size=3, **kw)
    again = S.generate(sharp, prompts, batch_size=3, **kw)
    alone = S.generate(sharp, prompts, batch_size=1, **kw)
    assert torch.equal(batched.tokens, again.tokens)
    assert torch.equal(batched.tokens, alone.tokens)
    assert batched.nfe_masked.tolist() == alone.nfe_masked.tolist()
    assert batched.nfe_ar.tolist() == alone.nfe_ar.tolist()
    assert not bool((batched.tokens == sharp.mask_id).any())
    assert bool((batched.commit_step >= 0).all())
    if name.startswith("verifier"):
        assert batched.nfe_ar.tolist() == batched.nfe_masked.tolist()
    else:
        assert batched.nfe_ar.tolist() == [0, 0, 0]
    if name in ("dilated", "remask"):
        assert batched.nfe_masked.tolist() == [4, 4, 4]


def test_threshold_passes_by_hand(sharp, prompts):
    # tau tiny: every masked position passes, one pass per block; tau = 1: one token per pass
    everything = S.generate(sharp, prompts, strategy=St.ConfidenceThreshold(1e-9), **KW)
    assert everything.nfe_masked.tolist() == [2, 2, 2]
    one = S.generate(sharp, prompts, strategy=St.ConfidenceThreshold(1.0), **KW)
    assert one.nfe_masked.tolist() == [8, 8, 8]
    assert sorted(one.commit_step[0].tolist()) == list(range(8))


def test_dilated_commits_its_groups(sharp, prompts):
    res = S.generate(sharp, prompts, strategy=St.Dilated(), **KW)
    # block of 4, 2 steps per block: columns 0, 2 then 1, 3 (steps 0, 1), then block 2 (steps 2, 3)
    assert res.commit_step.tolist() == [[0, 1, 0, 1, 2, 3, 2, 3]] * 3


def _greedy_ar(model, prompt, n, mask_id):
    ids = torch.tensor([prompt])
    for _ in range(n):
        att = torch.ones_like(ids)
        logits = masked_logits(model, ids, causal_attention_mask(att), left_padded_positions(att), None)[0, -1]
        logits[mask_id] = float("-inf")
        ids = torch.cat([ids, logits.argmax().reshape(1, 1)], 1)
    return ids[0, len(prompt) :].tolist()


def test_greedy_verifier_reproduces_the_judges_greedy_answer(sharp, prompts):
    """At T = 0 with greedy acceptance every committed token is the judge's argmax given what is
    before it, so the answer is the judge's own greedy decode, whatever the proposals."""
    res = S.generate(sharp, prompts, strategy=St.Verifier(3, judge=_judge(sharp), acceptance="greedy"), **KW)
    for row, prompt in zip(res.tokens.tolist(), prompts):
        assert row == _greedy_ar(sharp.model, prompt, 8, sharp.mask_id)
    ratio = S.generate(sharp, prompts, strategy=St.Verifier(3, judge=_judge(sharp)), **KW)
    assert torch.equal(ratio.tokens, res.tokens)  # at T = 0 the ratio test is the greedy one
    assert all(2 <= n <= 8 for n in res.nfe_masked.tolist())  # blocks of 4, >= 1 token per round
