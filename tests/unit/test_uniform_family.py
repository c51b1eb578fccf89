"""The uniform-substitution family (dlmpaper.lm.families): its forward corruption and its reverse
step on cases known by hand, and its sampler with an exact denoiser of a toy language."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dlmpaper.core import trap
from dlmpaper.lm import families


class ExactUniformDenoiser(torch.nn.Module):
    """p(x_0 | x_t, t) of a toy language under uniform substitution, by enumeration of its support:
    the Bayes-optimal model the sampler assumes (ids 0..N-1 are tokens, N and N+1 mask and pad)."""

    def __init__(self, lang: trap.ToyLanguage):
        super().__init__()
        self.n = len(lang.vocab)
        self.config = SimpleNamespace(vocab_size=self.n + 2)
        self.seqs = torch.from_numpy(lang.sequences)
        self.probs = torch.from_numpy(lang.probs)

    def forward(self, ids, t, attention_mask, position_ids, select=None):
        a = (1 - t.double())[:, None, None]
        lik = (a * (ids[:, None, :] == self.seqs[None]) + (1 - a) / self.n).prod(-1) * self.probs[None]
        post = lik / lik.sum(-1, keepdim=True)
        onehot = torch.nn.functional.one_hot(self.seqs, self.config.vocab_size).double()
        logits = torch.einsum("bn,nlv->blv", post, onehot).clamp_min(1e-12).log().float()
        return logits if select is None else logits[select]


def _sample(model, lang, steps, n=4000, seed=0):
    L = lang.length
    ones = torch.ones(n, L, dtype=torch.long)
    noise = families.uniform_noise_ids(model.config.vocab_size, (model.n, model.n + 1))
    pos = torch.arange(L)[None].expand(n, -1)
    return families.uniform_generate(
        model, torch.zeros_like(ones), ones.bool(), ones, pos, steps, noise, torch.Generator().manual_seed(seed)
    )


def test_noise_ids_and_corruption_rate():
    noise = families.uniform_noise_ids(6, (4, 5))
    assert noise.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="no noise ids"):
        families.uniform_noise_ids(2, (0, 1))
    ids = torch.zeros(2, 20000, dtype=torch.long)
    region = torch.ones_like(ids, dtype=torch.bool)
    region[1] = False
    x = families.uniform_corrupt(ids, region, torch.tensor([0.5, 0.9]), noise, torch.Generator().manual_seed(0))
    # replaced w.p. t, and a replacement is itself w.p. 1/4: changed w.p. 0.5 * 3/4
    assert (x[0] != 0).float().mean().item() == pytest.approx(0.375, abs=0.015)
    assert (x[1] == 0).all()  # outside the noisy region nothing changes
    assert set(x[0].tolist()) <= set(noise.tolist())


def test_reverse_step_by_hand():
    noise = torch.tensor([True, True, False])
    pi = torch.tensor([[1.0, 0.0, 0.0]])
    # last step (a_s = 1): everything comes from the model; a certain denoiser gives its token
    model_term, noise_term, share = families.uniform_reverse_terms(pi, torch.tensor([1]), 0.5, 1.0, noise)
    assert share.item() == pytest.approx(1.0) and model_term[0].tolist() == pytest.approx([1.0, 0.0, 0.0])
    # first step (a_t = 0): x_t carries no evidence; the step is a_s pi + (1 - a_s) u
    pi = torch.tensor([[0.75, 0.25, 0.0]])
    model_term, noise_term, share = families.uniform_reverse_terms(pi, torch.tensor([0]), 0.0, 0.25, noise)
    p = share[:, None] * model_term + (1 - share[:, None]) * noise_term
    assert p[0].tolist() == pytest.approx([0.25 * 0.75 + 0.75 * 0.5, 0.25 * 0.25 + 0.75 * 0.5, 0.0])
    assert share.item() == pytest.approx(0.25) and noise_term[0].tolist() == pytest.approx([0.5, 0.5, 0.0])


def test_sampler_with_the_exact_denoiser_reaches_the_language_as_steps_grow():
    lang = trap.agreement_language()
    model = ExactUniformDenoiser(lang)
    one = _sample(model, lang, 1)
    many = _sample(model, lang, 64)
    invalid = [float((~lang.valid_mask(tr.tokens.numpy())).mean()) for tr in (one, many)]
    assert invalid[0] > 0.2  # one pass draws every token from its marginal: the product misses agreement
    assert invalid[1] < 0.02
    assert many.step_decided[-1].all()  # the last pass draws every value from the model
    assert many.step_decided.float().mean(dim=(1, 2)).diff().min() > -0.05  # decided share grows (noise aside)
    # the sampler's distribution over the support approaches the language's
    codes = {tuple(s): p for s, p in zip(lang.sequences.tolist(), lang.probs)}
    seqs, counts = np.unique(many.tokens.numpy(), axis=0, return_counts=True)
    freq = {tuple(s): c / counts.sum() for s, c in zip(seqs.tolist(), counts)}
    tv = 0.5 * sum(abs(freq.get(s, 0.0) - p) for s, p in codes.items()) + 0.5 * sum(
        f for s, f in freq.items() if s not in codes
    )
    assert tv < 0.06


def test_sampler_is_deterministic_given_the_seed_and_rejects_zero_steps():
    lang = trap.agreement_language()
    model = ExactUniformDenoiser(lang)
    a, b = _sample(model, lang, 4, n=64, seed=3), _sample(model, lang, 4, n=64, seed=3)
    assert torch.equal(a.step_tokens, b.step_tokens) and torch.equal(a.step_decided, b.step_decided)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        _sample(model, lang, 0, n=4)


def test_reverse_step_equals_bayes_on_one_token_and_the_plug_in_form_does_not():
    """One token, two noise ids, uniform prior: p(x_s | x_t) by enumeration of (x_0, x_s, x_t)."""
    a_s, a_t = 0.6, 0.3
    a_ts = a_t / a_s
    u = 0.5

    def q(keep, b, a):  # q(b | a) for one substitution step that keeps w.p. keep
        return keep * (a == b) + (1 - keep) * u

    x_t = 1
    joint = np.array([[0.5 * q(a_s, s, x0) * q(a_ts, x_t, s) for s in (0, 1)] for x0 in (0, 1)])  # [x0, x_s]
    truth = joint.sum(0) / joint.sum()
    pi = joint.sum(1) / joint.sum()  # p(x_0 | x_t): the exact denoiser
    noise = torch.tensor([True, True])
    m, n, share = families.uniform_reverse_terms(torch.tensor(pi[None]), torch.tensor([x_t]), a_t, a_s, noise)
    p = (share[:, None] * m + (1 - share[:, None]) * n)[0].double().numpy()
    assert p == pytest.approx(truth, abs=1e-6)
    keep = np.array([q(a_ts, x_t, s) for s in (0, 1)])
    plug_in = keep * (a_s * pi + (1 - a_s) * u)
    plug_in /= plug_in.sum()
    assert plug_in[x_t] > truth[x_t] + 0.02  # counts the evidence x_0 = x_t twice: keeps noise too often


@pytest.mark.parametrize("a_t, a_s", [(0.0, 0.25), (0.5, 0.75), (0.9, 1.0)])
def test_fast_reverse_draw_has_the_dense_step_distribution(a_t, a_s):
    V, n = 7, 60000
    noise_ids = torch.tensor([0, 1, 2, 3, 5])
    noise = torch.zeros(V, dtype=torch.bool)
    noise[noise_ids] = True
    x0 = torch.tensor([0.05, 0.4, 0.1, 0.3, 0.05, 0.05, 0.05])[None].expand(n, -1)
    x_t = torch.full((n,), 3)
    m, nt, share = families.uniform_reverse_terms(x0[:1], x_t[:1], a_t, a_s, noise)
    dense = (share[:, None] * m + (1 - share[:, None]) * nt)[0]
    pi = x0[:, noise_ids] / x0[:, noise_ids].sum(-1, keepdim=True)
    value, from_model = families.uniform_reverse_draw(pi, x_t, a_t, a_s, noise_ids, torch.Generator().manual_seed(0))
    freq = torch.bincount(value, minlength=V).double() / n
    assert freq.numpy() == pytest.approx(dense.double().numpy(), abs=0.008)
    assert from_model.double().mean().item() == pytest.approx(share.item(), abs=0.008)
