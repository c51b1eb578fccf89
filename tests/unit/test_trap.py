"""Tests for dlmpaper.core.trap: the marginal trap (paper §4, issue (ii)), exact and simulated."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pandas as pd
import pytest

from dlmpaper.core import trap as T

LANGS = {
    "agreement": T.agreement_language,
    "brackets": T.brackets_language,
    "copy": T.copy_language,
}


@pytest.fixture(scope="module", params=list(LANGS))
def lang(request):
    return LANGS[request.param]()


def _partials(lang):
    """Fully masked, plus one partial with a visible token, for every language."""
    L = lang.length
    full = [None] * L
    part = list(lang.decode(lang.sequences[0]))
    for i in range(L):
        if i not in (1, L - 1):
            part[i] = None  # keep positions 1 and L-1 visible
    return [full, part]


# ------------------------------------------------------------------------- languages


def test_language_supports_and_validity():
    agr, br, cp = T.agreement_language(), T.brackets_language(), T.copy_language()
    assert agr.sequences.shape == (36, 3)
    assert br.sequences.shape == (224, 8)  # Catalan(4) * 2^4
    assert cp.sequences.shape == (48, 6)  # 3 attributes * 2^4 fillers
    for lg in (agr, br, cp):
        assert math.isclose(lg.probs.sum(), 1.0)
        assert lg.mask_id == lg.vocab_size == len(lg.vocab)
        assert lg.full_vocab[-1] == "[MASK]"
    assert agr.is_valid("I like tennis") and agr.is_valid("he likes music")
    assert not agr.is_valid("I likes tennis") and not agr.is_valid("he like chess")
    assert math.isclose(agr.prob("I like tennis"), 1 / 36) and agr.prob("I likes tennis") == 0.0
    assert br.is_valid("( [ ] ) [ ] ( )") and not br.is_valid("( [ ) ] [ ] ( )")
    assert not br.is_valid("( ( ( ( ) ) ) ]")
    assert cp.is_valid("A x y x x A") and not cp.is_valid("A x y x x B")


def test_encode_decode_roundtrip_and_mask_layout():
    agr = T.agreement_language()
    ids = agr.encode(["_", None, "tennis"])
    assert list(ids[:2]) == [agr.mask_id, agr.mask_id]
    assert agr.decode(ids) == ["[MASK]", "[MASK]", "tennis"]
    assert agr.decode(agr.encode("she plays chess")) == ["she", "plays", "chess"]
    with pytest.raises(ValueError, match="unknown token"):
        agr.encode(["I", "liek", "tennis"])


def test_sample_is_valid_and_follows_joint():
    br = T.brackets_language()
    x = br.sample(50_000, rng=0)
    assert br.valid_mask(x).all()
    idx = br._lookup(x)
    freq = np.bincount(idx, minlength=len(br.probs)) / len(x)
    assert np.abs(freq - br.probs).max() < 0.005  # uniform 1/224 ~ 0.0045, sd ~ 0.0003
    assert np.array_equal(br.sample(10, rng=3), br.sample(10, rng=3))


def test_invalid_language_definitions_raise():
    with pytest.raises(ValueError, match="same length"):
        T.ToyLanguage.from_sentences("bad", ["a b", "a"])
    with pytest.raises(ValueError, match="duplicate sequences"):
        T.ToyLanguage.from_sentences("bad", ["a b", "a b"])
    with pytest.raises(ValueError, match="even"):
        T.brackets_language(length=5)


# -------------------------------------------------------------- one parallel step


def _enumerate_invalid(lang, partial, positions=None):
    """Brute force: every outcome of the chosen masked positions, weighted by the
    product of marginals; invalid iff no support sequence agrees with it (the remaining
    masked positions are then filled from the exact conditional)."""
    ids = T.parse_partial(lang, partial)
    masked = np.flatnonzero(ids == lang.mask_id)
    S = masked if positions is None else np.asarray(sorted(positions))
    margs = dict(zip(masked.tolist(), T.marginals(lang, ids, positions=masked)))
    fixed = np.flatnonzero(ids != lang.mask_id).tolist() + S.tolist()
    reachable = {tuple(s[fixed]) for s in lang.sequences}
    bad = 0.0
    for a in itertools.product(range(lang.vocab_size), repeat=len(S)):
        q = np.prod([margs[int(p)][v] for p, v in zip(S, a)])
        full = ids.copy()
        full[S] = a
        if tuple(full[fixed]) not in reachable:
            bad += q
    return bad


def test_closed_form_equals_exhaustive_enumeration(lang):
    for partial in _partials(lang):
        assert T.parallel_invalid_probability(lang, partial) == pytest.approx(
            _enumerate_invalid(lang, partial), abs=1e-12
        )
    # a subset of the masked positions, the rest filled exactly afterwards
    pos = [0, lang.length - 1]
    assert T.parallel_invalid_probability(lang, [None] * lang.length, positions=pos) == pytest.approx(
        _enumerate_invalid(lang, [None] * lang.length, positions=pos), abs=1e-12
    )


def test_closed_form_equals_simulation(lang):
    cases = [(p, None) for p in _partials(lang)] + [([None] * lang.length, [0, lang.length - 1])]
    for i, (partial, pos) in enumerate(cases):
        closed = T.parallel_invalid_probability(lang, partial, positions=pos)
        sim = T.simulate_parallel_decoding(lang, partial, n_samples=100_000, rng=i, positions=pos)
        assert abs(closed - sim) < 0.01, (partial, pos, closed, sim)


def test_hand_computed_likes_case():
    agr = T.agreement_language()
    partial = "_ _ tennis"
    # Given "tennis", (subject, verb) is uniform over 12 valid pairs: 4 plural subjects x
    # {like, play} and 2 singular x {likes, plays}. Marginals: each subject 2/12 = 1/6, so
    # P(plural subject) = 2/3, P(singular) = 1/3; verbs like, play 4/12 = 1/3 each, likes,
    # plays 2/12 = 1/6 each, so P(plural verb) = 2/3, P(singular verb) = 1/3.
    # Invalid = P(pl subj) P(sg verb) + P(sg subj) P(pl verb) = 2/3*1/3 + 1/3*2/3 = 4/9.
    assert T.parallel_invalid_probability(agr, partial) == pytest.approx(4 / 9, abs=1e-12)
    m_subj, m_verb = T.marginals(agr, partial)
    assert m_subj[agr.vocab.index("I")] == pytest.approx(1 / 6)
    assert m_verb[agr.vocab.index("likes")] == pytest.approx(1 / 6)
    # Total correlation: joint 1/12 per pair; plural pairs have product 1/6*1/3 = 1/18,
    # singular pairs 1/6*1/6 = 1/36: TC = 8/12 ln(18/12) + 4/12 ln(36/12)
    # = 2/3 ln 1.5 + 1/3 ln 3 = H(2/3, 1/3) (the number bit shared by subject and verb).
    tc = 2 / 3 * math.log(1.5) + 1 / 3 * math.log(3)
    assert tc == pytest.approx(-(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)))
    assert T.total_correlation(agr, partial) == pytest.approx(tc, abs=1e-12)
    comps, probs = T.conditional_joint(agr, partial)
    assert comps.shape == (12, 2) and np.allclose(probs, 1 / 12)


def test_total_correlation_zero_for_independent_positions():
    agr = T.agreement_language()
    # a single masked position: nothing to factorise
    assert T.total_correlation(agr, "I _ tennis") == pytest.approx(0.0, abs=1e-12)
    assert T.parallel_invalid_probability(agr, "I _ tennis") == pytest.approx(0.0, abs=1e-12)
    # subject + object (verb visible, or verb marginalised out): independent in this language
    assert T.total_correlation(agr, "_ likes _") == pytest.approx(0.0, abs=1e-12)
    assert T.total_correlation(agr, "_ _ _", positions=[0, 2]) == pytest.approx(0.0, abs=1e-12)
    assert T.parallel_invalid_probability(agr, "_ _ _", positions=[0, 2]) == pytest.approx(0.0, abs=1e-12)
    # subject + verb: dependent
    assert T.total_correlation(agr, "_ _ _", positions=[0, 1]) > 0.5


def test_hand_computed_copy_and_brackets():
    cp = T.copy_language()
    # first and last masked, fillers visible: joint uniform on the 3 diagonal pairs, each
    # marginal uniform 1/3; valid product mass 3 * 1/9 = 1/3 -> invalid 2/3, TC = ln 3.
    assert T.parallel_invalid_probability(cp, "_ x y x y _") == pytest.approx(2 / 3)
    assert T.total_correlation(cp, "_ x y x y _") == pytest.approx(math.log(3))
    br2 = T.brackets_language(length=2)
    # support {"()", "[]"}: marginals (1/2, 1/2) at each end, valid mass 2 * 1/4 -> 1/2.
    assert T.parallel_invalid_probability(br2, "_ _") == pytest.approx(0.5)


def test_zero_probability_context_raises():
    agr = T.agreement_language()
    for fn in (T.conditional_joint, T.marginals, T.parallel_invalid_probability, T.total_correlation):
        with pytest.raises(T.ZeroProbabilityContextError, match="probability 0"):
            fn(agr, "I likes _")
    with pytest.raises(ValueError, match="probability 0"):
        T.simulate_parallel_decoding(agr, ["he", "like", None], n_samples=10, rng=0)
    with pytest.raises(ValueError, match="length"):
        T.marginals(agr, "_ _")


# ------------------------------------------------------------------- full decoding


def _brute_decoder(lang, k, order, marginal_fn=None):
    """Independent recursion over every committed outcome (all V^k assignments)."""
    fn = marginal_fn or T.exact_marginal_fn(lang)
    mask = lang.mask_id
    support = {tuple(s) for s in lang.sequences}

    @functools.lru_cache(maxsize=None)
    def f(state):
        st = np.array(state)
        free = np.flatnonzero(st == mask)
        if free.size == 0:
            return 0.0 if state in support else 1.0
        M = fn(st[None])[0]
        M = M[:, : lang.vocab_size] / M[:, : lang.vocab_size].sum(1, keepdims=True)
        kk = min(k, free.size)
        subsets = [tuple(free[:kk])] if order == "left_to_right" else list(itertools.combinations(free, kk))
        total = 0.0
        for S in subsets:
            for a in itertools.product(range(lang.vocab_size), repeat=kk):
                q = np.prod([M[s, v] for s, v in zip(S, a)])
                if q > 0:
                    ns = st.copy()
                    ns[list(S)] = a
                    total += q * f(tuple(int(v) for v in ns)) / len(subsets)
        return total

    return f(tuple([mask] * lang.length))


@pytest.mark.parametrize(
    "name,k,order",
    [
        ("agreement", 2, "random"),
        ("agreement", 2, "left_to_right"),
        ("copy", 3, "random"),
        ("brackets", 3, "left_to_right"),
    ],
)
def test_exact_decoder_matches_brute_force(name, k, order):
    lg = LANGS[name]()
    assert T.ModelMarginalDecoder(lg).invalid_exact(k, order) == pytest.approx(_brute_decoder(lg, k, order), abs=1e-12)


def test_k1_is_exactly_zero_and_k_length_is_one_step_closed_form(lang):
    orders = ["left_to_right"] if lang.name.startswith("brackets") else list(T.ORDERS)
    for order in orders:
        df = T.invalid_rate_by_tokens_per_step(lang, [1, lang.length], order=order, n_samples=5_000, seed=0)
        assert list(df.columns[:4]) == ["language", "order", "marginals", "tokens_per_step"]
        r1, rL = df.iloc[0], df.iloc[1]
        assert r1.invalid_exact == 0.0 and r1.invalid_sim == 0.0 and r1.n_steps == lang.length
        closed = T.parallel_invalid_probability(lang, [None] * lang.length)
        assert rL.invalid_exact == pytest.approx(closed, abs=1e-12) and rL.n_steps == 1
        assert rL.sim_ci_low <= closed <= rL.sim_ci_high or abs(rL.invalid_sim - closed) < 0.02


def test_hand_computed_multi_step_rates():
    agr, cp = T.agreement_language(), T.copy_language()
    dec_a, dec_c = T.ModelMarginalDecoder(agr), T.ModelMarginalDecoder(cp)
    # agreement, left to right, k=2: step 1 commits (subject, verb) from the fully masked
    # state with the same marginals as given any object -> 4/9; the object is then exact.
    assert dec_a.invalid_exact(2, "left_to_right") == pytest.approx(4 / 9)
    # random k=2: the first pair is {subj,verb}, {subj,obj} or {verb,obj} with prob 1/3
    # each; only the first can fail (4/9): 4/27.
    assert dec_a.invalid_exact(2, "random") == pytest.approx(4 / 27)
    # copy6, left to right with k<6: position 0 is committed before position 5 -> 0.
    assert dec_c.invalid_exact(3, "left_to_right") == 0.0
    # random k=2: positions 0 and 5 share a step with prob 1/5, then fail with prob 2/3.
    assert dec_c.invalid_exact(2, "random") == pytest.approx(2 / 15)
    sim, lo, hi = dec_c.invalid_sim(100_000, 2, "random", rng=0)
    assert abs(sim - 2 / 15) < 0.01 and lo < sim < hi


def test_invalid_rate_table_is_deterministic_and_consistent():
    cp = T.copy_language()
    a = T.invalid_rate_by_tokens_per_step(cp, [1, 2, 3, 6], order="random", n_samples=20_000, seed=7)
    b = T.invalid_rate_by_tokens_per_step(cp, [1, 2, 3, 6], order="random", n_samples=20_000, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.n_steps) == [6, 3, 2, 1]
    assert (a.invalid_exact.diff().dropna() > 0).all()  # the trap grows with k here
    assert (abs(a.invalid_exact - a.invalid_sim) < 0.015).all()
    with pytest.raises(ValueError, match="tokens_per_step"):
        T.invalid_rate_by_tokens_per_step(cp, [0])
    with pytest.raises(ValueError, match="order"):
        T.invalid_rate_by_tokens_per_step(cp, [1], order="confidence")


# ---------------------------------------------------------------------- model hook


def test_model_hook_with_exact_logits_reproduces_exact_decoder():
    torch = pytest.importorskip("torch")
    agr = T.agreement_language()
    exact = T.exact_marginal_fn(agr)

    def logits_fn(ids):  # a "model" returning torch logits with an extra mask column
        p = exact(ids)
        logits = np.concatenate([np.log(np.maximum(p, 1e-300)), np.full(p.shape[:2] + (1,), 5.0)], axis=2)
        return torch.tensor(logits)

    fn = T.marginal_fn_from_logits(logits_fn, agr)
    dec = T.ModelMarginalDecoder(agr, fn)
    ref = T.ModelMarginalDecoder(agr)
    for k, order in [(2, "left_to_right"), (2, "random"), (3, "random")]:
        assert dec.invalid_exact(k, order) == pytest.approx(ref.invalid_exact(k, order), abs=1e-9)


def test_model_hook_with_context_blind_model():
    agr = T.agreement_language()
    prior = np.stack(T.marginals(agr, "_ _ _"))  # (L, V): ignores every visible token

    def blind(ids):
        return np.broadcast_to(prior, (len(ids),) + prior.shape).copy()

    df = T.invalid_rate_by_tokens_per_step(
        agr, [1, 3], n_samples=50_000, seed=1, marginal_fn=blind, marginals_label="blind"
    )
    assert (df.marginals == "blind").all()
    # a context-blind model samples subject and verb independently even one at a time:
    # the one-token-per-step rate equals the parallel one, 4/9 (= the hand value).
    assert df.invalid_exact.tolist() == pytest.approx([4 / 9, 4 / 9])
    assert (abs(df.invalid_sim - 4 / 9) < 0.01).all()
    assert _brute_decoder(agr, 1, "left_to_right", blind) == pytest.approx(4 / 9)


def test_model_hook_rejects_bad_shapes():
    agr = T.agreement_language()
    dec = T.ModelMarginalDecoder(agr, lambda ids: np.ones((len(ids), agr.length, 3)))
    with pytest.raises(ValueError, match="marginal_fn must return"):
        dec.invalid_exact(1)


# ------------------------------------------------------------------ paper example


def test_likes_example_table():
    df = T.likes_example()
    assert list(df.columns) == ["subject", "verb", "joint", "product", "valid"]
    assert len(df) == 24
    assert df.joint.sum() == pytest.approx(1.0) and df["product"].sum() == pytest.approx(1.0)
    row = df[(df.subject == "I") & (df.verb == "likes")].iloc[0]
    assert not row.valid and row.joint == 0.0 and row["product"] == pytest.approx(1 / 36)
    assert df.attrs["invalid_mass"] == pytest.approx(4 / 9)
    assert df.loc[~df.valid, "product"].sum() == pytest.approx(4 / 9)
    assert (df.loc[df.valid, "joint"] > 0).all() and (df.loc[~df.valid, "joint"] == 0).all()
