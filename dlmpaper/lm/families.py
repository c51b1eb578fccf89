"""The other model families on the masked model's backbone: autoregressive, continuous, uniform.

The paper (§2-3) sorts language models into continuous diffusion (Gaussian noise on embeddings),
discrete diffusion (the masked model: ``dlmpaper.core.objectives``) and autoregressive models, the
reference. To measure the five properties on equal terms (notebook ``02_five_properties``) every
family here is trained on the same data with the same transformers backbone (ModernBERT for the
WordNet corpus, BERT for the toy languages) and the same size; only the objective, the attention
mask and the sampler differ:

* **autoregressive**: the backbone with a causal attention mask (a 4-D boolean mask handed to
  transformers), next-token cross-entropy on the response (:func:`ar_loss`), left-to-right
  sampling one token per forward pass (:func:`ar_generate`);
* **continuous**: :class:`EmbeddingDiffusionLM`, an embedding-space diffusion LM in the style of
  CDCD (Dieleman et al. 2022, arXiv 2211.15089): learned token embeddings L2-normalised to norm
  ``sqrt(d)``, Gaussian corruption z_t = sqrt(abar_t) e(x_0) + sqrt(1 - abar_t) eps
  (``corruption.GaussianSchedule``, cosine), a backbone that reads z_t (plus a noise-level
  embedding) and predicts x_0 as logits, trained with cross-entropy on x_0 (CDCD's loss; the
  rounding term of Diffusion-LM, Li et al. 2022, arXiv 2205.14217). Sampling is deterministic DDIM
  with CDCD's score interpolation x0_hat = softmax(logits) @ E, and a final rounding to tokens
  (:func:`continuous_generate`). Simplifications, stated: uniform t (no time warping), no
  self-conditioning.
* **uniform**: discrete diffusion with uniform substitution instead of masking, in the style of
  D3PM-uniform (Austin et al. 2021, arXiv 2107.03006): x_t keeps each response token w.p.
  a_t = 1 - t and otherwise draws it uniformly from the noise vocabulary (every id but the mask
  and pad ids, :func:`uniform_noise_ids`); :class:`UniformDiffusionLM` (the backbone plus a
  noise-level embedding: unlike masking, uniform noise does not show which tokens are corrupted,
  so p(x_0 | x_t) depends on t) predicts x_0 and is trained with cross-entropy on x_0 at every
  response position (D3PM's auxiliary x_0 loss, :func:`uniform_loss`). Sampling is ancestral:
  the exact per-token reverse step given the model's x_0 distribution (:func:`uniform_generate`),
  which may change a token it drew earlier. Simplification, stated: the x_0 loss alone (no
  variational-bound term).

Checkpoints are folders with ``family.json`` (the family and, for the continuous model, its
settings), the backbone's ``config.json``, ``model.safetensors`` and ``MANIFEST.sha256``
(:func:`save_family_model`, :func:`load_family_model`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_model as load_safetensors_model
from safetensors.torch import save_model as save_safetensors_model
from transformers import BertConfig, BertForMaskedLM, ModernBertConfig, ModernBertForMaskedLM

from dlmpaper.core.corruption import GaussianSchedule, round_to_tokens
from dlmpaper.core.objectives import causal_attention_mask, left_padded_positions, masked_logits
from dlmpaper.provenance import MANIFEST_NAME, ManifestError, verify_manifest

FAMILIES: tuple[str, ...] = ("masked", "continuous", "autoregressive", "uniform")
FAMILY_JSON = "family.json"
BACKBONES = {
    "ModernBertForMaskedLM": (ModernBertConfig, ModernBertForMaskedLM),
    "BertForMaskedLM": (BertConfig, BertForMaskedLM),
}


class FamilyModelError(ValueError):
    """A family checkpoint folder is missing, incomplete, corrupt or of another family."""


def check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; use one of {', '.join(FAMILIES)}")
    return family


# --------------------------------------------------------------------------- autoregressive


def next_token_logits(
    model, input_ids, attention_mask, position_ids, response_mask
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, targets) for every response token under the causal mask: position i predicts
    token i + 1 (EOS padding included, as the masked model's SFT)."""
    select = torch.zeros_like(response_mask, dtype=torch.bool)
    select[:, :-1] = response_mask[:, 1:].bool()
    logits = masked_logits(model, input_ids, causal_attention_mask(attention_mask), position_ids, select)
    return logits.float(), input_ids[:, 1:][response_mask[:, 1:].bool()]


def ar_loss(model, input_ids, attention_mask, position_ids, response_mask) -> torch.Tensor:
    """Next-token cross-entropy averaged over response tokens (:func:`next_token_logits`)."""
    return F.cross_entropy(*next_token_logits(model, input_ids, attention_mask, position_ids, response_mask))


@torch.no_grad()
def ar_generate(
    model,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    n_tokens: int,
    generator: torch.Generator | None = None,
    temperature: float = 0.0,
) -> torch.Tensor:
    """Sample ``n_tokens`` left to right after left-padded prompts, one forward pass per token
    (no KV cache: the backbone is an encoder). ``temperature`` 0 is greedy. Returns (B, n_tokens)."""
    ids, attn = prompt_ids.clone(), prompt_mask.clone()
    out = []
    for _ in range(n_tokens):
        pos = left_padded_positions(attn)
        last = torch.zeros_like(ids, dtype=torch.bool)
        last[:, -1] = True  # project only the last position onto the vocabulary
        logits = masked_logits(model, ids, causal_attention_mask(attn), pos, last).float()
        if temperature > 0:
            probs = torch.softmax(logits / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)[:, 0]
        else:
            nxt = logits.argmax(-1)
        out.append(nxt)
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        attn = torch.cat([attn, torch.ones_like(nxt)[:, None]], dim=1)
    return torch.stack(out, dim=1)


# --------------------------------------------------------------------------- continuous


def _timestep_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of the noise level t in [0, 1] (DDPM's timestep embedding of 1000 t)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=-1)


class EmbeddingDiffusionLM(torch.nn.Module):
    """A continuous (embedding-space) diffusion LM on a transformers MLM backbone (CDCD-style).

    The diffusion space is ``token_embedding`` rows L2-normalised to norm ``sqrt(embed_dim)``
    (:meth:`diffusion_embeddings`), so each coordinate has unit scale as DDPM assumes. The
    backbone reads ``in_proj(z) + time_mlp(t) + clean_embedding(clean)`` through
    ``inputs_embeds``; ``clean`` marks prompt positions, whose z is the exact embedding.
    """

    family = "continuous"

    def __init__(self, backbone, embed_dim: int = 64, schedule: str = "cosine", time_dim: int = 64):
        super().__init__()
        hidden, vocab = backbone.config.hidden_size, backbone.config.vocab_size
        self.backbone, self.config = backbone, backbone.config
        self.embed_dim, self.time_dim, self.schedule_name = embed_dim, time_dim, schedule
        self.schedule = GaussianSchedule(schedule)
        self.token_embedding = torch.nn.Embedding(vocab, embed_dim)
        torch.nn.init.normal_(self.token_embedding.weight)
        self.in_proj = torch.nn.Linear(embed_dim, hidden)
        self.time_mlp = torch.nn.Sequential(
            torch.nn.Linear(time_dim, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, hidden)
        )
        self.clean_embedding = torch.nn.Embedding(2, hidden)

    def settings(self) -> dict:
        return {
            "family": self.family,
            "embed_dim": self.embed_dim,
            "time_dim": self.time_dim,
            "schedule": self.schedule_name,
            "backbone_class": type(self.backbone).__name__,
        }

    def diffusion_embeddings(self) -> torch.Tensor:
        """E (V, d): the token embeddings on the sphere of radius sqrt(d)."""
        return F.normalize(self.token_embedding.weight, dim=-1) * math.sqrt(self.embed_dim)

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        return self.schedule.alpha_bar(t.detach().cpu().clamp(0, 1)).float().to(t.device)

    def noisy(self, ids: torch.Tensor, noisy_mask: torch.Tensor, t: torch.Tensor, generator=None) -> torch.Tensor:
        """z: E[ids] with Gaussian noise of level t (per row) where ``noisy_mask``; exact elsewhere."""
        e0 = self.diffusion_embeddings()[ids]
        ab = self.alpha_bar(t)[:, None, None]
        eps = torch.randn(e0.shape, generator=generator, device=e0.device)
        zt = ab.sqrt() * e0 + (1 - ab).sqrt() * eps
        return torch.where(noisy_mask.bool()[..., None], zt, e0)

    def forward(self, z, t, clean, attention_mask, position_ids, select=None) -> torch.Tensor:
        """Logits of x_0: (N, V) at ``select`` (True positions, row-major) or (B, L, V) if None."""
        h = (
            self.in_proj(z)
            + self.time_mlp(_timestep_features(t, self.time_dim))[:, None]
            + self.clean_embedding(clean.long())
        )
        return masked_logits(self.backbone, None, attention_mask, position_ids, select, inputs_embeds=h)


def continuous_loss(
    model: EmbeddingDiffusionLM,
    input_ids,
    attention_mask,
    position_ids,
    response_mask,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """CDCD's objective: cross-entropy of x_0 at every response position from z_t, t ~ U(0, 1) per
    row stratified over the batch (t_b = (b + u_b) / B); the prompt stays clean."""
    B = input_ids.shape[0]
    t = ((torch.arange(B, dtype=torch.float32) + torch.rand(B, generator=generator)) / B).to(input_ids.device)
    resp = response_mask.bool()
    z = model.noisy(input_ids, resp, t, generator)
    logits = model(z, t, ~resp, attention_mask, position_ids, select=resp)
    return F.cross_entropy(logits.float(), input_ids[resp])


@dataclass
class ContinuousTrace:
    """One run of the continuous sampler: final tokens and what happened on the way (D3, L1).

    ``tokens`` (B, L) the final rounded tokens at the noisy positions; ``step_tokens`` (S, B, L) the
    denoiser's argmax after each step; ``step_snap_distance`` (S, B, L) the distance from z_t to its
    nearest embedding after each step (``corruption.round_to_tokens``).
    """

    tokens: torch.Tensor
    step_tokens: torch.Tensor
    step_snap_distance: torch.Tensor

    @property
    def final_rounding_distance(self) -> torch.Tensor:
        """(B, L) distance from the final z_0 to its nearest embedding, before rounding."""
        return self.step_snap_distance[-1]


@torch.no_grad()
def continuous_generate(
    model: EmbeddingDiffusionLM,
    clean_ids: torch.Tensor,
    noisy_mask: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    steps: int,
    generator: torch.Generator | None = None,
) -> ContinuousTrace:
    """Deterministic DDIM (eta = 0) from z_1 ~ N(0, I) at the ``noisy_mask`` positions, with the
    other positions held at their exact embeddings; ``steps`` forward passes on t = 1, 1 - 1/S, ...
    Each step: x0_hat = softmax(logits) @ E, eps_hat = (z - sqrt(abar_t) x0_hat) / sqrt(1 - abar_t),
    z <- sqrt(abar_s) x0_hat + sqrt(1 - abar_s) eps_hat. The answer is the argmax of the last
    step's logits (equal to nearest-embedding rounding of z_0 when the model is confident)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    E = model.diffusion_embeddings()
    noisy = noisy_mask.bool()
    B = clean_ids.shape[0]
    z = torch.where(noisy[..., None], torch.randn((*clean_ids.shape, E.shape[1]), generator=generator), E[clean_ids])
    grid = torch.linspace(1.0, 0.0, steps + 1)
    toks, dists = [], []
    for i in range(steps):
        t, s = grid[i], grid[i + 1]
        logits = torch.zeros((*clean_ids.shape, E.shape[0]))
        logits[noisy] = model(z, t.expand(B), ~noisy, attention_mask, position_ids, select=noisy).float()
        x0 = torch.softmax(logits, dim=-1) @ E
        ab_t, ab_s = float(model.schedule.alpha_bar(t)), float(model.schedule.alpha_bar(s))
        eps = (z - math.sqrt(ab_t) * x0) / math.sqrt(max(1.0 - ab_t, 1e-12))
        z_new = math.sqrt(ab_s) * x0 + math.sqrt(max(1.0 - ab_s, 0.0)) * eps
        z = torch.where(noisy[..., None], z_new, z)
        toks.append(torch.where(noisy, logits.argmax(-1), clean_ids))
        dists.append(round_to_tokens(z, E)[1])
    return ContinuousTrace(tokens=toks[-1], step_tokens=torch.stack(toks), step_snap_distance=torch.stack(dists))


# --------------------------------------------------------------------------- uniform substitution


def uniform_noise_ids(vocab_size: int, exclude: tuple[int, ...] | list[int] = ()) -> torch.Tensor:
    """The ids uniform substitution draws from: ``0 .. vocab_size - 1`` without ``exclude`` (the
    mask and pad ids: the uniform family never sees a mask)."""
    keep = torch.ones(vocab_size, dtype=torch.bool)
    keep[[i for i in exclude if 0 <= i < vocab_size]] = False
    if not keep.any():
        raise ValueError(f"no noise ids left: every id of a vocabulary of {vocab_size} is excluded")
    return keep.nonzero()[:, 0]


def uniform_corrupt(
    ids: torch.Tensor, noisy_mask: torch.Tensor, t: torch.Tensor, noise_ids: torch.Tensor, generator=None
) -> torch.Tensor:
    """x_t: each ``noisy_mask`` token kept w.p. 1 - t (t per row) and otherwise replaced by a
    uniform draw from ``noise_ids`` (possibly itself); the other tokens stay (D3PM-uniform forward)."""
    u = torch.rand(ids.shape, generator=generator, device=ids.device)
    draw = noise_ids.to(ids.device)[torch.randint(noise_ids.numel(), ids.shape, generator=generator, device=ids.device)]
    return torch.where(noisy_mask.bool() & (u < t[:, None]), draw, ids)


class UniformDiffusionLM(torch.nn.Module):
    """A uniform-substitution diffusion LM: a transformers MLM backbone that reads token ids plus a
    noise-level embedding (``time_mlp`` of sinusoidal features of t, added to every token
    embedding through ``inputs_embeds``) and returns x_0 logits."""

    family = "uniform"

    def __init__(self, backbone, time_dim: int = 64):
        super().__init__()
        hidden = backbone.config.hidden_size
        self.backbone, self.config, self.time_dim = backbone, backbone.config, time_dim
        self.time_mlp = torch.nn.Sequential(
            torch.nn.Linear(time_dim, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, hidden)
        )

    def settings(self) -> dict:
        return {"family": self.family, "time_dim": self.time_dim, "backbone_class": type(self.backbone).__name__}

    def forward(self, ids, t, attention_mask, position_ids, select=None) -> torch.Tensor:
        """Logits of x_0 from x_t = ``ids`` at noise level ``t`` (B,): (N, V) at ``select`` or (B, L, V)."""
        h = self.backbone.get_input_embeddings()(ids) + self.time_mlp(_timestep_features(t, self.time_dim))[:, None]
        return masked_logits(self.backbone, None, attention_mask, position_ids, select, inputs_embeds=h)


def uniform_loss(
    model: UniformDiffusionLM,
    input_ids,
    attention_mask,
    position_ids,
    response_mask,
    noise_ids: torch.Tensor,
    generator=None,
) -> torch.Tensor:
    """Cross-entropy of x_0 at every response position from x_t (:func:`uniform_corrupt`), t ~ U(0, 1)
    per row stratified over the batch (t_b = (b + u_b) / B); the prompt stays clean."""
    B = input_ids.shape[0]
    t = ((torch.arange(B, dtype=torch.float32) + torch.rand(B, generator=generator)) / B).to(input_ids.device)
    resp = response_mask.bool()
    noisy = uniform_corrupt(input_ids, resp, t, noise_ids, generator)
    logits = model(noisy, t, attention_mask, position_ids, select=resp)
    return F.cross_entropy(logits.float(), input_ids[resp])


def uniform_reverse_terms(
    x0_probs: torch.Tensor, x_t: torch.Tensor, a_t: float, a_s: float, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One reverse step s < t of uniform substitution, per token: p(x_s | x_t) = sum over x_0 of
    p(x_0 | x_t) q(x_s | x_t, x_0), with the forward posterior q(x_s | x_t, x_0) = q(x_t | x_s)
    q(x_s | x_0) / q(x_t | x_0) of D3PM (arXiv 2107.03006, eq. 3) and the model's x_0 distribution
    ``x0_probs`` (restricted to the noise ids, a boolean (V,) mask ``noise``; u is uniform on them).

    With ``k_v = a_ts [v = x_t] + (1 - a_ts) u_v`` (q(x_t | x_s = v), a_ts = a_t / a_s) and
    ``pi'_w = pi_w / q(x_t | x_0 = w)`` the step distribution is proportional to
    ``k_v (a_s pi'_v + (1 - a_s) u_v sum_w pi'_w)``. (Plugging the model's x_0 distribution into
    ``q(x_t | x_s) q(x_s | x_0)`` without the division, as D3PM's eq. 4 reads when x_0 is the
    posterior, counts the evidence x_0 = x_t twice: even an exact denoiser then keeps noise tokens
    too often; a unit test shows both.)

    Returns ``(model_term, noise_term, model_share)``: the normalised distributions of the two
    terms (..., V) and the weight of the first, so that
    ``p = model_share * model_term + (1 - model_share) * noise_term``. A value drawn from the
    model term is one the model proposed; one from the noise term is still noise."""
    u = noise.to(x0_probs.dtype) / noise.sum()
    pi = x0_probs * noise
    pi = pi / pi.sum(-1, keepdim=True).clamp_min(1e-30)
    at_x_t = F.one_hot(x_t, u.numel()).to(x0_probs.dtype)
    pi = pi / (a_t * at_x_t + (1 - a_t) * u[x_t][..., None])  # pi' = pi / q(x_t | x_0)
    a_ts = a_t / a_s
    keep = a_ts * at_x_t + (1 - a_ts) * u
    model_term = keep * (a_s * pi)
    noise_term = keep * ((1 - a_s) * u) * pi.sum(-1, keepdim=True)
    m, n = model_term.sum(-1), noise_term.sum(-1)
    share = m / (m + n)
    return model_term / m.clamp_min(1e-30)[..., None], noise_term / n.clamp_min(1e-30)[..., None], share


def uniform_reverse_draw(
    pi: torch.Tensor,
    x_t: torch.Tensor,
    a_t: float,
    a_s: float,
    noise_ids: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw x_s from the step distribution of :func:`uniform_reverse_terms` without building it:
    ``(value (N,), from_model (N,))``. ``pi`` (N, len(noise_ids)): the model's x_0 distribution
    over the sorted ``noise_ids``. Both terms are a "keep x_t" part plus a spread part
    (k_v = a_ts [v = x_t] + (1 - a_ts) u_v), so a draw needs only pi(x_t) and one inverse-CDF draw
    from pi without x_t: the same distribution as the dense form (a unit test compares them) at a
    fraction of its cost for a large vocabulary."""
    n_noise = noise_ids.numel()
    slot = torch.searchsorted(noise_ids, x_t)  # x_t's column (x_t is always a noise id here)
    cdf = pi.cumsum(-1)
    total = cdf[:, -1].double()
    pi_xt = pi.gather(1, slot[:, None])[:, 0]
    p_xt = pi_xt.double() / total
    c, d = (1 - a_t) / n_noise, a_t + (1 - a_t) / n_noise  # q(x_t | x_0) for x_0 != x_t and = x_t
    a_ts = a_t / a_s
    keep_k = a_ts + (1 - a_ts) / n_noise
    model_keep = p_xt / d * keep_k
    model_move = (1 - a_ts) / n_noise * (1 - p_xt) / c
    m = a_s * (model_keep + model_move)
    n = (1 - a_s) * ((1 - p_xt) / c + p_xt / d) / n_noise
    u = torch.rand((4, x_t.numel()), generator=generator, dtype=torch.float64)
    from_model = u[0] < m / (m + n)
    keep = torch.where(from_model, u[1] < model_keep / (model_keep + model_move).clamp_min(1e-300), u[1] < keep_k)
    # model term, moving: pi without x_t by inverse CDF (skip x_t's mass); noise term: uniform on the others
    target = u[2] * (1 - p_xt) * total
    before = (cdf.gather(1, slot[:, None])[:, 0] - pi_xt).double()
    target = torch.where(target < before, target, target + p_xt * total).to(cdf.dtype)
    pick = torch.searchsorted(cdf, target[:, None])[:, 0].clamp_max(n_noise - 1)
    pick = torch.where(pick == slot, (slot + 1) % n_noise, pick)  # rounding at x_t's edge only
    other = (slot + 1 + (u[3] * (n_noise - 1)).long().clamp_max(n_noise - 2)) % n_noise
    value = torch.where(keep, x_t, noise_ids[torch.where(from_model, pick, other)])
    return value, from_model


@dataclass
class UniformTrace:
    """One run of the uniform sampler: ``tokens`` (B, L) the final sequence; ``step_tokens`` (S, B, L)
    the state after each pass; ``step_decided`` (S, B, L) True where the position's current value was
    drawn from the model's term at some pass (and kept since), False where it is still noise."""

    tokens: torch.Tensor
    step_tokens: torch.Tensor
    step_decided: torch.Tensor


@torch.no_grad()
def uniform_generate(
    model: UniformDiffusionLM,
    clean_ids: torch.Tensor,
    noisy_mask: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    steps: int,
    noise_ids: torch.Tensor,
    generator: torch.Generator | None = None,
) -> UniformTrace:
    """Ancestral D3PM-uniform sampling from x_1 ~ uniform noise at the ``noisy_mask`` positions
    (the others held at ``clean_ids``), ``steps`` forward passes on t = 1, 1 - 1/S, ..., 0 with
    a_t = 1 - t (:func:`uniform_reverse_terms`, drawn by :func:`uniform_reverse_draw`, temperature
    1). Each pass draws, per position, the term (model or noise) and then the value within it,
    which samples the step distribution exactly and makes ``step_decided`` exact. At the last pass
    (a_s = 1) every value comes from the model. A position may change value at any pass (a
    revision), unlike the masked sampler's."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    noise_ids = torch.sort(noise_ids).values
    noisy = noisy_mask.bool()
    draw = noise_ids[torch.randint(noise_ids.numel(), clean_ids.shape, generator=generator)]
    x, decided = torch.where(noisy, draw, clean_ids), ~noisy
    toks, flags = [], []
    for i in range(steps):
        a_t, a_s = i / steps, (i + 1) / steps
        old = x[noisy]
        t = torch.full((x.shape[0],), 1.0 - a_t)
        logits = model(x, t, attention_mask, position_ids, select=noisy).float()
        pi = torch.softmax(logits.index_select(1, noise_ids), -1)
        value, use_model = uniform_reverse_draw(pi, old, a_t, a_s, noise_ids, generator)
        x, decided = x.clone(), decided.clone()
        decided[noisy] = torch.where(value == old, decided[noisy] | use_model, use_model)
        x[noisy] = value
        toks.append(x)
        flags.append(decided)
    return UniformTrace(tokens=toks[-1], step_tokens=torch.stack(toks), step_decided=torch.stack(flags))


# --------------------------------------------------------------------------- checkpoints


def save_family_model(model, directory: Path, family: str, extra: dict | None = None) -> Path:
    """Write ``family.json``, the backbone ``config.json`` and ``model.safetensors`` into
    ``directory`` (a masked or autoregressive model is a plain transformers MLM)."""
    check_family(family)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(model, (EmbeddingDiffusionLM, UniformDiffusionLM)):
        model.config.save_pretrained(directory)
        save_safetensors_model(model, str(directory / "model.safetensors"))
        info = model.settings()
    else:
        model.save_pretrained(directory)
        info = {"family": family, "backbone_class": type(model).__name__}
    info.update(extra or {})
    (directory / FAMILY_JSON).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return directory


def load_family_model(
    directory: Path, *, check_manifest: bool = True, fix: str = "retrain it"
) -> tuple[str, torch.nn.Module]:
    """``(family, model)`` from a folder written by :func:`save_family_model` (eval mode, CPU,
    float32), after checking ``MANIFEST.sha256`` when ``check_manifest``."""
    directory = Path(directory)
    if not (directory / FAMILY_JSON).exists():
        raise FamilyModelError(f"{directory} holds no family model ({FAMILY_JSON} missing); {fix}")
    if check_manifest:
        if not (directory / MANIFEST_NAME).exists():
            raise FamilyModelError(f"{directory / MANIFEST_NAME} is missing; {fix}")
        try:
            verify_manifest(directory, fix=fix)
        except ManifestError as exc:
            raise FamilyModelError(str(exc)) from exc
    info = json.loads((directory / FAMILY_JSON).read_text())
    family = check_family(info.get("family", ""))
    config_cls, model_cls = BACKBONES[info["backbone_class"]]
    if family in ("continuous", "uniform"):
        config = config_cls.from_pretrained(directory)
        with torch.random.fork_rng(devices=[]):
            if family == "continuous":
                model = EmbeddingDiffusionLM(model_cls(config), info["embed_dim"], info["schedule"], info["time_dim"])
            else:
                model = UniformDiffusionLM(model_cls(config), info["time_dim"])
        try:
            load_safetensors_model(model, str(directory / "model.safetensors"))
        except Exception as exc:  # safetensors raises several types for a damaged file
            raise FamilyModelError(f"cannot read {directory / 'model.safetensors'} ({exc}); {fix}") from exc
    else:
        model = model_cls.from_pretrained(directory, dtype=torch.float32)
    return family, model.eval()
