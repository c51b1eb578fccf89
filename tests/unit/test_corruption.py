"""Tests for dlmpaper.core.corruption: closed forms vs chains, schedules, rounding, tables."""

from __future__ import annotations

import math

import pytest
import torch

from dlmpaper.core.corruption import (
    GaussianSchedule,
    corruption_grid,
    embed,
    gaussian_chain,
    gaussian_closed_form,
    information_retained,
    linear_alpha,
    mask_chain,
    mask_closed_form,
    round_to_tokens,
    standardize_embedding,
    uniform_chain,
    uniform_closed_form,
)

MASK = 99


def _within(observed: float, expected: float, n: int, k: float = 5.0) -> bool:
    """|observed - expected| within k binomial standard errors (and a tiny floor for p in {0, 1})."""
    se = math.sqrt(max(expected * (1 - expected), 1e-12) / n)
    return abs(observed - expected) <= k * se + 1e-9


def _tokens(b: int, length: int, v: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(v, (b, length), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def emb() -> torch.Tensor:
    return torch.randn(6, 4, generator=torch.Generator().manual_seed(1))


# --------------------------------------------------------------------------- schedules


@pytest.mark.parametrize("name", ["cosine", "linear", "sqrt"])
def test_schedule_monotone_and_in_unit_interval(name):
    ab = GaussianSchedule(name).alpha_bar(torch.linspace(0, 1, 1001, dtype=torch.float64))
    assert (ab[1:] <= ab[:-1]).all()
    assert (ab >= 0).all() and (ab <= 1).all()
    assert ab[0] > ab[-1] + 0.9


def test_schedule_endpoints_known_by_hand():
    assert float(GaussianSchedule("cosine").alpha_bar(0.0)) == 1.0
    assert float(GaussianSchedule("cosine").alpha_bar(1.0)) < 1e-6
    assert float(GaussianSchedule("linear").alpha_bar(0.0)) == 1.0
    assert float(GaussianSchedule("linear").alpha_bar(1.0)) == pytest.approx(math.exp(-10.05))
    assert float(GaussianSchedule("sqrt").alpha_bar(0.0)) == pytest.approx(0.99)
    assert float(GaussianSchedule("sqrt").alpha_bar(0.25)) == pytest.approx(1 - math.sqrt(0.2501))
    assert float(GaussianSchedule("sqrt").alpha_bar(1.0)) == 0.0
    assert float(linear_alpha(0.3)) == pytest.approx(0.7)


@pytest.mark.parametrize("name", ["cosine", "linear", "sqrt"])
def test_betas_telescope_to_alpha_bar(name):
    sched = GaussianSchedule(name)
    betas = sched.betas(8)
    assert betas.shape == (8,) and (betas >= 0).all() and (betas <= 1).all()
    ab = sched.alpha_bar(torch.linspace(0, 1, 9, dtype=torch.float64))
    torch.testing.assert_close(torch.cumprod(1 - betas, 0), ab[1:] / ab[0])


def test_schedule_bad_arguments():
    with pytest.raises(ValueError, match="unknown schedule"):
        GaussianSchedule("exponential")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        GaussianSchedule().alpha_bar(1.5)
    with pytest.raises(ValueError, match="n_steps"):
        GaussianSchedule().betas(0)


# --------------------------------------------------------------------------- absorbing mask


def test_mask_endpoints_and_shape():
    x0 = _tokens(3, 7, 20)
    torch.testing.assert_close(mask_closed_form(x0, 0.0, MASK, 0), x0)
    assert (mask_closed_form(x0, 1.0, MASK, 0) == MASK).all()
    assert mask_closed_form(x0[0], 0.5, MASK, 0).shape == (7,)
    states = mask_chain(x0, 4, MASK, 0)
    assert len(states) == 5
    torch.testing.assert_close(states[0], x0)
    assert (states[-1] == MASK).all()


def test_mask_chain_matches_closed_form_in_distribution():
    x0 = _tokens(400, 50, 20)
    n, steps = x0.numel(), 4
    gen = torch.Generator().manual_seed(123)
    states = mask_chain(x0, steps, MASK, gen)
    for s in range(1, steps):
        t = s / steps
        chain_frac = float((states[s] == MASK).float().mean())
        closed_frac = float((mask_closed_form(x0, t, MASK, gen) == MASK).float().mean())
        assert _within(chain_frac, t, n), (s, chain_frac)
        assert _within(closed_frac, t, n), (s, closed_frac)
        # absorbing: once masked, always masked; visible tokens are the originals
        assert ((states[s - 1] == MASK) <= (states[s] == MASK)).all()
        visible = states[s] != MASK
        assert (states[s][visible] == x0[visible]).all()
        # the per-step conditional masking rate is (t_s - t_{s-1}) / (1 - t_{s-1})
        was_visible = states[s - 1] != MASK
        rate = float((states[s][was_visible] == MASK).float().mean())
        assert _within(rate, (1 / steps) / (1 - (s - 1) / steps), int(was_visible.sum()))


def test_mask_is_deterministic_given_seed():
    x0 = _tokens(2, 30, 20)
    torch.testing.assert_close(mask_closed_form(x0, 0.5, MASK, 7), mask_closed_form(x0, 0.5, MASK, 7))
    assert not torch.equal(mask_closed_form(x0, 0.5, MASK, 7), mask_closed_form(x0, 0.5, MASK, 8))


# --------------------------------------------------------------------------- uniform substitution


def _value_freqs(x: torch.Tensor, v: int) -> torch.Tensor:
    return torch.bincount(x.flatten(), minlength=v).double() / x.numel()


def test_uniform_endpoints():
    v = 5
    x0 = torch.full((4000,), 2)
    torch.testing.assert_close(uniform_closed_form(x0, 0.0, v, 0), x0)
    freqs = _value_freqs(uniform_closed_form(x0, 1.0, v, 0), v)
    for f in freqs.tolist():
        assert _within(f, 1 / v, x0.numel())


def test_uniform_chain_matches_closed_form_per_token_distribution():
    v, steps = 5, 4
    x0 = torch.full((2500, 4), 2)  # 10 000 draws of the same gold token
    n = x0.numel()
    gen = torch.Generator().manual_seed(5)
    states = uniform_chain(x0, steps, v, gen)
    assert len(states) == steps + 1
    for s in range(1, steps + 1):
        a = 1 - s / steps
        expected = torch.full((v,), (1 - a) / v, dtype=torch.float64)
        expected[2] += a
        for sample in (states[s], uniform_closed_form(x0, s / steps, v, gen)):
            freqs = _value_freqs(sample, v)
            for f, e in zip(freqs.tolist(), expected.tolist()):
                assert _within(f, e, n), (s, freqs, expected)


def test_uniform_vocab_ids_excludes_special_tokens():
    v, allowed = 10, [3, 4, 5]
    x0 = torch.full((3000,), 4)
    final = uniform_chain(x0, 3, v, 0, vocab_ids=allowed)[-1]
    assert set(final.unique().tolist()) == set(allowed)
    mid = uniform_closed_form(x0, 0.5, v, 0, vocab_ids=torch.tensor(allowed))
    assert set(mid.unique().tolist()) <= set(allowed)
    kept = float((mid == 4).float().mean())
    assert _within(kept, 0.5 + 0.5 / 3, x0.numel())
    with pytest.raises(ValueError, match="vocab_ids"):
        uniform_closed_form(x0, 0.5, v, 0, vocab_ids=[3, 12])


# --------------------------------------------------------------------------- Gaussian on embeddings


def test_gaussian_t0_is_the_embedding_and_rounds_back(emb):
    x0 = torch.tensor([[0, 3, 5], [1, 1, 2]])
    z = gaussian_closed_form(x0, 0.0, emb, 0)
    torch.testing.assert_close(z, emb[x0])
    ids, dist = round_to_tokens(z, emb)
    torch.testing.assert_close(ids, x0)
    assert dist.shape == x0.shape and float(dist.abs().max()) < 1e-5
    assert gaussian_chain(x0, 3, emb, 0)[0].equal(emb[x0])
    # Diffusion-LM's sqrt schedule is already noisy at t = 0 (abar_0 = 0.99): the chain starts there too
    many = torch.tensor([0, 3, 5]).repeat(2000, 1)
    z0 = gaussian_chain(many, 3, emb, 0, schedule="sqrt")[0]
    resid = z0 - math.sqrt(0.99) * emb[many]
    assert abs(float(resid.std()) - 0.1) < 0.005


def test_round_to_tokens_by_hand():
    E = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    ids, dist = round_to_tokens(torch.tensor([[0.6, 0.0], [0.1, 1.2], [-3.0, 0.0]]), E)
    assert ids.tolist() == [1, 2, 0]
    torch.testing.assert_close(dist, torch.tensor([0.4, math.hypot(0.1, 0.8), 3.0]))
    ids_small_chunks, _ = round_to_tokens(torch.tensor([[0.6, 0.0], [0.1, 1.2], [-3.0, 0.0]]), E, chunk_size=1)
    assert ids_small_chunks.tolist() == [1, 2, 0]


@pytest.mark.parametrize("name", ["cosine", "sqrt"])
def test_gaussian_chain_matches_closed_form_mean_and_variance(emb, name):
    sched = GaussianSchedule(name)
    x0 = torch.tensor([0, 3, 5]).repeat(4000, 1)
    n, steps = x0.shape[0], 5
    e0 = emb[x0[0]]
    gen = torch.Generator().manual_seed(11)
    chain = gaussian_chain(x0, steps, emb, gen, schedule=sched)
    assert len(chain) == steps + 1 and chain[-1].shape == (4000, 3, 4)
    for s in (2, steps):
        ab = float(sched.alpha_bar(s / steps))
        for z in (chain[s], gaussian_closed_form(x0, s / steps, emb, gen, schedule=sched)):
            mean, var = z.mean(0), z.var(0)
            assert (mean - math.sqrt(ab) * e0).abs().max() < 5 * math.sqrt((1 - ab) / n) + 1e-6
            assert (var - (1 - ab)).abs().max() < 5 * math.sqrt(2 / n) * (1 - ab) + 1e-6


def test_standardize_embedding(emb):
    big = emb * 50 + 3
    std = standardize_embedding(big)
    torch.testing.assert_close(std.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(std.std(0), torch.ones(4), atol=1e-5, rtol=0)
    assert embed(torch.tensor([1, 2]), big).shape == (2, 4)


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("t", [-0.1, 1.5, float("nan")])
def test_t_outside_unit_interval_raises(t, emb):
    x0 = _tokens(2, 5, 6)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mask_closed_form(x0, t, MASK, 0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        uniform_closed_form(x0, t, 6, 0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        gaussian_closed_form(x0, t, emb, 0)


def test_bad_shapes_and_types_raise(emb):
    with pytest.raises(ValueError, match=r"\(L,\) or \(B, L\)"):
        mask_closed_form(torch.zeros(2, 3, 4, dtype=torch.long), 0.5, MASK, 0)
    with pytest.raises(TypeError, match="integer token ids"):
        mask_closed_form(torch.zeros(5), 0.5, MASK, 0)
    with pytest.raises(ValueError, match="already contains mask_id"):
        mask_closed_form(torch.tensor([1, MASK]), 0.5, MASK, 0)
    with pytest.raises(ValueError, match="n_steps"):
        mask_chain(torch.tensor([1, 2]), 0, MASK, 0)
    with pytest.raises(ValueError, match="vocab_size"):
        uniform_closed_form(torch.tensor([1, 7]), 0.5, 5, 0)
    with pytest.raises(ValueError, match=r"\(V, d\)"):
        gaussian_closed_form(torch.tensor([1]), 0.5, torch.zeros(6), 0)
    with pytest.raises(ValueError, match="embedding width"):
        round_to_tokens(torch.zeros(3, 5), emb)
    with pytest.raises(TypeError, match="generator"):
        mask_closed_form(torch.tensor([1, 2]), 0.5, MASK, "seed")


# --------------------------------------------------------------------------- tables


def test_corruption_grid_mask_is_nested_and_labelled():
    x0 = torch.arange(40)
    levels = [0.0, 0.25, 0.5, 0.75, 1.0]
    df = corruption_grid(x0, levels, "mask", mask_id=MASK, generator=3)
    assert list(df.columns) == [
        "process",
        "level",
        "position",
        "token_id",
        "noisy_id",
        "state",
        "is_original",
        "distance",
    ]
    assert len(df) == len(levels) * 40
    assert (df[df.level == 0.0].state == "kept").all()
    assert (df[df.level == 1.0].state == "masked").all()
    masked = {t: set(df[(df.level == t) & (df.state == "masked")].position) for t in levels}
    for a, b in zip(levels, levels[1:]):
        assert masked[a] <= masked[b]
    assert (df[df.state == "masked"].noisy_id == MASK).all()


def test_corruption_grid_uniform_and_gaussian(emb):
    x0 = torch.tensor([0, 1, 2, 3, 4, 5] * 20)
    uni = corruption_grid(x0, [0.0, 1.0], "uniform", vocab_size=6, generator=0)
    assert (uni[uni.level == 0.0].state == "kept").all()
    last = uni[uni.level == 1.0]
    assert set(last.state) <= {"kept", "substituted"}
    assert _within(float((last.state == "substituted").mean()), 5 / 6, len(last))
    gau = corruption_grid(x0, [0.0, 0.9], "gaussian", embedding=emb, generator=0)
    first = gau[gau.level == 0.0]
    assert (first.state == "kept").all() and (first.noisy_id == first.token_id).all()
    assert gau.distance.notna().all() and uni.distance.isna().all()
    with pytest.raises(ValueError, match="mask_id"):
        corruption_grid(x0, [0.5], "mask")
    with pytest.raises(ValueError, match="one sequence"):
        corruption_grid(x0.reshape(2, -1), [0.5], "mask", mask_id=MASK)
    with pytest.raises(ValueError, match="unknown process"):
        corruption_grid(x0, [0.5], "blur")


def test_information_retained_exact_and_monte_carlo():
    E = standardize_embedding(torch.randn(50, 8, generator=torch.Generator().manual_seed(2)))
    levels = [0.0, 0.2, 0.5, 0.8, 1.0]
    df = information_retained(levels, vocab_size=50, embedding=E, n_samples=1000, generator=4)
    assert set(df.process) == {"mask", "uniform", "gaussian"}
    mask = df[df.process == "mask"].set_index("level").retained
    uni = df[df.process == "uniform"].set_index("level").retained
    gau = df[df.process == "gaussian"].set_index("level")
    for t in levels:
        assert mask[t] == pytest.approx(1 - t)
        assert uni[t] == pytest.approx((1 - t) + t / 50)
    assert gau.retained[0.0] == 1.0 and gau.stderr[0.0] == 0.0
    assert gau.retained[1.0] < 0.15  # pure noise: near chance
    assert gau.retained[0.2] > gau.retained[0.8] + 5 * gau.stderr[0.8]
    assert (df[df.process != "gaussian"].method == "exact").all()
    only_mask = information_retained([0.5])
    assert list(only_mask.process) == ["mask"]
    with pytest.raises(ValueError, match="needs vocab_size"):
        information_retained([0.5], processes=["uniform"])
