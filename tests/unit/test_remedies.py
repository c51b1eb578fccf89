"""Tests for dlmpaper.analyses.remedies: the strategies' exact toy distributions on cases known by hand,
against trap's exact naive decoder, the total-correlation bound, the verifier's exactness, and
exact-vs-simulated agreement."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from test_sampling import _one_thread  # noqa: F401 (module-wide fixture: one torch thread)

from dlmpaper.analyses import remedies as R
from dlmpaper.core import strategies as St
from dlmpaper.core.trap import (
    ModelMarginalDecoder,
    ToyLanguage,
    agreement_language,
    brackets_language,
    copy_language,
    exact_marginal_fn,
)


def two_token() -> ToyLanguage:
    """{a b, b a}, uniform: both marginals are fair coins, the pair is fully dependent."""
    return ToyLanguage.from_sentences("two", ["a b", "b a"])


def dist(lang, strategy, steps=None, **kw):
    d = R.decoder_distribution(lang, strategy, steps, **kw)
    return d, R.invalid_mass(lang, d["final"]), R.kl_true_sampler(lang, d["final"])


def test_two_token_language_by_hand():
    lang = two_token()
    # one pass, both coins together: aa and bb get 1/2, q(ab) = q(ba) = 1/4, KL = log 2 = TC
    d, inv, kl = dist(lang, St.LowConfidence(), 1)
    assert inv == pytest.approx(0.5) and kl == pytest.approx(math.log(2)) and d["tc"] == pytest.approx(math.log(2))
    assert d["nfe_masked"] == pytest.approx(1.0)
    # threshold 0.9: no coin passes, so one token, then the other is certain: never invalid, 2 passes
    d, inv, kl = dist(lang, St.ConfidenceThreshold(0.9))
    assert inv == pytest.approx(0.0, abs=1e-12) and kl == pytest.approx(0.0, abs=1e-12)
    assert d["nfe_masked"] == pytest.approx(2.0)
    # factor rule: (n+1)(1 - 1/2) = 1, 1.5 for n = 1, 2
    assert dist(lang, St.FactorRule(1.5))[1] == pytest.approx(0.0, abs=1e-12)
    assert dist(lang, St.FactorRule(2.0))[1] == pytest.approx(0.5)
    # entropy bound: the pair costs ln 2 = 0.693 beyond its largest entropy
    assert dist(lang, St.EntropyBounded(0.69))[1] == pytest.approx(0.0, abs=1e-12)
    assert dist(lang, St.EntropyBounded(0.70))[1] == pytest.approx(0.5)


@dataclass(frozen=True)
class LeftToRight:
    """Test-only strategy: the leftmost k of the even schedule (trap's naive left-to-right decoder)."""

    name = "left_to_right"
    adaptive = False

    def validate(self):
        return self

    def select(self, ctx):
        return torch.arange(ctx.k)


@pytest.mark.parametrize(
    "lang, k",
    [(agreement_language(), 3), (copy_language(), 6), (brackets_language(), 2), (brackets_language(), 4)],
    ids=["agreement-3", "copy6-6", "brackets8-2", "brackets8-4"],
)
def test_enumeration_equals_traps_exact_naive_decoder(lang, k):
    """With k dividing L the even schedule commits k per step, as trap's decoder does."""
    steps = lang.length // k
    d, inv, _ = dist(lang, LeftToRight(), steps)
    assert inv == pytest.approx(ModelMarginalDecoder(lang).invalid_exact(k, "left_to_right"), abs=1e-12)
    assert inv > 0.05  # the naive trap is there at these k (left to right, copy6 falls in it only at k = L)
    assert d["nfe_masked"] == pytest.approx(steps)


@pytest.mark.parametrize("lang", [agreement_language(), copy_language()], ids=lambda language: language.name)
def test_total_correlation_bound_holds_with_exact_marginals(lang):
    """KL(true || sampler) <= E_true[sum of TC of the committed sets] (Li & Cai), with equality for
    schedules that do not look at the tokens."""
    for strategy, steps in [
        (St.LowConfidence(), 1),
        (St.LowConfidence(), 2),
        (St.Dilated(), 2),
        (St.ConfidenceThreshold(0.3), None),
        (St.FactorRule(4.0), None),
        (St.EntropyBounded(1.0), None),
    ]:
        _, _, kl = dist(lang, strategy, steps)
        bound = R.decoder_distribution(lang, strategy, steps, joint=True)["tc"]
        assert kl <= bound + 1e-9
        if isinstance(strategy, St.Dilated):
            assert kl == pytest.approx(bound, abs=1e-9)


def test_ratio_verifier_with_exact_judge_samples_the_language():
    """Speculative sampling's test keeps the judge's distribution: with the exact AR conditional as
    judge the sampler is the language itself, whatever the proposals."""
    for lang in (agreement_language(), copy_language()):
        d, inv, kl = dist(lang, St.Verifier(lang.length), ar_fn=R.exact_ar_fn(lang))
        assert inv == pytest.approx(0.0, abs=1e-12) and kl == pytest.approx(0.0, abs=1e-9)
        assert 1 - 1e-9 <= d["nfe_masked"] <= lang.length + 1e-9
        assert d["nfe_ar"] == d["nfe_masked"]
    # a judge that is uniform over the vocabulary gives invalid sequences: the test is not vacuous
    lang = agreement_language()
    uniform = lambda pre: np.full((len(pre), lang.vocab_size), 1 / lang.vocab_size)  # noqa: E731
    assert dist(lang, St.Verifier(2), ar_fn=uniform)[1] > 0.5


def test_ar_distribution_by_hand():
    lang = two_token()
    d = R.ar_distribution(lang, R.exact_ar_fn(lang))
    assert d["final"] == pytest.approx({(0, 1): 0.5, (1, 0): 0.5}) and d["invalid"] == 0
    coin = lambda pre: np.full((len(pre), 2), 0.5)  # noqa: E731
    assert R.ar_distribution(lang, coin)["invalid"] == pytest.approx(0.5)


def test_remasking_enumeration_sums_to_one_and_revises():
    lang = brackets_language()
    d = R.decoder_distribution(lang, St.Remask(0.25), 4)
    assert sum(d["final"].values()) == pytest.approx(1.0)  # no pruning when tokens can be revised
    assert d["nfe_masked"] == pytest.approx(4.0)
    plain = R.decoder_distribution(lang, St.LowConfidence(), 4)
    assert abs(R.invalid_mass(lang, d["final"]) - R.invalid_mass(lang, plain["final"])) > 0.01


def noisy_marginals(lang, mix=0.3):
    """Exact marginals mixed with uniform ones: a stand-in for an imperfect trained model."""
    exact = exact_marginal_fn(lang)
    return lambda batch: (1 - mix) * exact(batch) + mix / lang.vocab_size


@pytest.mark.parametrize(
    "name, strategy, steps, noisy",
    [
        ("agreement", St.LowConfidence(), 1, False),
        ("agreement", St.ConfidenceThreshold(0.5), None, True),
        ("agreement", St.EntropyBounded(3.0), None, False),
        ("copy6", St.Remask(0.5), 3, True),
        ("agreement", St.Verifier(2), None, False),
        ("copy6", St.Verifier(3), None, True),
    ],
)
def test_exact_and_simulated_agree(name, strategy, steps, noisy):
    lang = agreement_language() if name == "agreement" else copy_language()
    fn = noisy_marginals(lang) if noisy else None
    exact_ar = R.exact_ar_fn(lang)
    ar = lambda pre: 0.7 * exact_ar(pre) + 0.3 / lang.vocab_size  # noqa: E731 (an imperfect judge)
    d, inv, _ = dist(lang, strategy, steps, ar_fn=ar, marginal_fn=fn)
    assert 0.01 < inv < 0.99  # a case where both numbers carry information
    xs, passes = R.simulate_decoder(
        lang, strategy, steps, 20_000, rng=np.random.default_rng(3), ar_fn=ar, marginal_fn=fn
    )
    bad = int((~lang.valid_mask(xs)).sum())
    lo, hi = R.wilson(bad, xs.shape[0])
    assert lo <= inv <= hi
    if not isinstance(strategy, St.Verifier) and (fn is None or not strategy.adaptive):
        # the enumeration's NFE is exact here (pruned runs continue under uniform marginals)
        assert passes.mean() == pytest.approx(d["nfe_masked"], rel=0.03)


def test_remedy_table_is_tidy_and_deterministic():
    lang = two_token()
    grid = {
        "two": [
            ("lc s=1", St.LowConfidence(), 1),
            ("thr", St.ConfidenceThreshold(0.9), None),
            ("ver", St.Verifier(2), None),
        ]
    }
    a = R.remedy_table([lang], grid, judge="exact", n_samples=2000)
    b = R.remedy_table([lang], grid, judge="exact", n_samples=2000)
    assert a.equals(b)
    assert set(a["decoder"]) == {"low_confidence", "threshold", "verifier", "autoregressive", "naive left_to_right"}
    row = a.set_index("label").loc["lc s=1"]
    assert row["invalid"] == pytest.approx(0.5) and row["bound_holds"] and row["agrees"]
    assert a.set_index("label").loc["thr", "nfe"] == pytest.approx(2.0)
    best = R.best_at_nfe(a).set_index("decoder")  # budget ceil(2 / 2) = 1 pass: the threshold rule needs 2
    assert "threshold" not in best.index and best.loc["low_confidence", "cut"] == pytest.approx(0.0)


def goal_table():
    """A remedy_table-shaped frame with known answers: L = 4, budget 2."""
    import pandas as pd

    rows = [
        ("low_confidence", "lc s=2", 2, 2.0, 0.40),
        ("low_confidence", "lc s=1", 1, 1.0, 0.60),
        ("dilated", "dus s=2", 2, 2.0, 0.10),
        ("threshold", "thr", None, 2.0, 0.10 + 1e-15),
        ("threshold", "thr slow", None, 3.5, 0.0),
        ("verifier", "ver", None, 3.2, 0.011),
        ("autoregressive", "ar", 4, 4.0, 0.002),
        ("naive left_to_right", "naive k=1", 4, 4.0, 0.0),
    ]
    return pd.DataFrame(
        [
            dict(
                language="x",
                length=4,
                decoder=d,
                label=lab,
                steps=s,
                nfe=n,
                invalid=i,
                agrees=True if d == "dilated" else (False if d == "threshold" else None),
                bound_holds=True if d in ("dilated", "threshold") else None,
            )
            for d, lab, s, n, i in rows
        ]
    )


def test_budget_goal_ar_match_and_counts_on_a_known_table():
    g = R.budget_goal(goal_table()).iloc[0]
    # ties within noise go to the lower NFE, then the earlier row; references never win
    assert g["budget"] == 2 and g["naive_invalid"] == pytest.approx(0.40) and g["label"] == "dus s=2"
    assert g["cut"] == pytest.approx(0.75) and g["met"] == True  # noqa: E712
    assert R.budget_goal(goal_table(), min_cut=0.8).iloc[0]["met"] == False  # noqa: E712
    a = R.ar_match(goal_table()).iloc[0]  # the verifier is 0.009 above the AR rate: within 0.01
    assert a["ar_invalid"] == pytest.approx(0.002) and a["met"] and a["label"] == "ver"
    assert R.ar_match(goal_table(), tol=0.005).iloc[0]["label"] == "thr slow"  # the verifier is now too far
    assert not R.ar_match(goal_table(), tol=0.005, exclude=("threshold", *R.REFERENCES)).iloc[0]["met"]
    c = R.check_counts(goal_table()).set_index("language")
    assert c.loc["all", "n_simulated"] == 3 and c.loc["all", "n_agree"] == 1
    assert c.loc["all", "n_bound"] == 3 and c.loc["all", "n_bound_holds"] == 3
