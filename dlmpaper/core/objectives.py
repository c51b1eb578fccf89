"""LLaDA's masked-diffusion SFT objective (paper §2; Nie et al. 2025, Eq. 5 / SFT Eq.).

For a prompt p0 and response r0, draw t ~ U(0, 1) per sequence, mask each response token
independently with probability p = (1 - eps) t + eps, never mask the prompt, and minimise

    L = E_t [ 1/|r0| * sum_{i in response, masked} -log p_theta(r0_i | p0, r_t) / p ]

where |r0| counts the response tokens *including* its EOS padding, which is trained on
(LLaDA's SFT: the model learns to predict ``<|endoftext|>`` in the tail, which is what makes the
probe's far positions turn into end-of-sequence in notebook 03).

Used by ``dlmpaper.train`` (the embedded model) and ``dlmpaper.core.trap`` (toy-language models).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: LLaDA's lower bound on the masking probability.
DEFAULT_EPS = 1e-3


@dataclass
class MaskedBatch:
    """One corrupted batch: ``noisy_ids`` with masks, which positions were masked, and p per sequence."""

    noisy_ids: torch.Tensor  # (B, L) long
    masked: torch.Tensor  # (B, L) bool, True where a response token was replaced by the mask id
    p_mask: torch.Tensor  # (B,) float, the masking probability used for each sequence


def mask_probability(t: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """p = (1 - eps) t + eps (LLaDA's forward process, linear schedule)."""
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be in [0, 1), got {eps}")
    return (1.0 - eps) * t + eps


def corrupt(
    input_ids: torch.Tensor,
    response_mask: torch.Tensor,
    mask_id: int,
    generator: torch.Generator | None = None,
    eps: float = DEFAULT_EPS,
    t: torch.Tensor | None = None,
) -> MaskedBatch:
    """Mask response tokens with p = (1 - eps) t + eps, t ~ U(0, 1) per sequence; the prompt is never masked."""
    if input_ids.shape != response_mask.shape:
        raise ValueError(
            f"input_ids {tuple(input_ids.shape)} and response_mask {tuple(response_mask.shape)} differ in shape"
        )
    batch = input_ids.shape[0]
    if t is None:
        t = torch.rand(batch, generator=generator, device=input_ids.device)
    p_mask = mask_probability(t, eps)
    draws = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    masked = (draws < p_mask[:, None]) & response_mask.bool()
    noisy = torch.where(masked, torch.full_like(input_ids, mask_id), input_ids)
    return MaskedBatch(noisy, masked, p_mask)


def scheduled_corrupt(
    input_ids: torch.Tensor,
    exponents: torch.Tensor,
    mask_id: int,
    t: torch.Tensor,
    generator: torch.Generator | None = None,
    eps: float = DEFAULT_EPS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A per-position forward process (paper §5, the remedy for §4 issue (i); GenMD4, arXiv 2406.04329, with one
    exponent per position instead of per token): position i is masked with probability
    ``m_i(t) = eps + (1 - eps) t ** w_i`` (``alpha_t = 1 - t^w``); ``w_i = 1`` everywhere is LLaDA's
    linear schedule, ``w_i > 1`` keeps position i longer, ``w_i < 1`` masks it sooner.

    Returns ``(noisy_ids, masked, weight)``: ``weight`` ``(B, L)`` is the continuous-time ELBO weight
    ``m_i'(t) / m_i(t) = (1 - eps) w_i t^(w_i - 1) / m_i(t)`` of each position, which for ``w = 1``
    is ``(1 - eps) / p``: LLaDA's ``1 / p`` up to the factor ``1 - eps``. Notebook 05, section 3.
    """
    w = torch.as_tensor(exponents, dtype=torch.float32, device=input_ids.device)
    if w.ndim != 1 or w.shape[0] != input_ids.shape[1] or not bool(torch.all(w > 0)):
        raise ValueError(
            f"exponents must be {input_ids.shape[1]} positive numbers (one per position), got {w.tolist()}"
        )
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be in [0, 1), got {eps}")
    tt = t.to(torch.float32)[:, None].clamp(min=1e-6)
    m = eps + (1.0 - eps) * tt**w
    draws = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    masked = draws < m
    noisy = torch.where(masked, torch.full_like(input_ids, mask_id), input_ids)
    weight = (1.0 - eps) * w * tt ** (w - 1.0) / m
    return noisy, masked, weight


def masked_logits(
    model: torch.nn.Module,
    input_ids,
    attention_mask,
    position_ids,
    select: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None = None,
) -> torch.Tensor:
    """Logits (N, V) at the positions where ``select`` is True (all positions, (B, L, V), if None).

    For ModernBERT-style models (``.model``, ``.head``, ``.decoder``) the vocabulary projection is
    applied only at the selected positions, which halves the cost of a training step on CPU.
    ``inputs_embeds`` replaces ``input_ids`` (the continuous family, ``dlmpaper.lm.families``);
    ``attention_mask`` may be 2-D (padding) or a prepared 4-D boolean mask (causal models).
    """
    inputs = {"input_ids": input_ids} if inputs_embeds is None else {"inputs_embeds": inputs_embeds}
    if all(hasattr(model, name) for name in ("model", "head", "decoder")):
        hidden = model.model(**inputs, attention_mask=attention_mask, position_ids=position_ids)[0]
        return model.decoder(model.head(hidden if select is None else hidden[select]))
    kwargs = {"position_ids": position_ids} if position_ids is not None else {}
    logits = model(**inputs, attention_mask=attention_mask, **kwargs).logits
    return logits if select is None else logits[select]


def sft_loss(
    logits_at_masked: torch.Tensor, batch: MaskedBatch, targets: torch.Tensor, response_mask: torch.Tensor
) -> torch.Tensor:
    """LLaDA's SFT loss from logits at the masked positions (in row-major order of ``batch.masked``).

    Each masked token's cross-entropy is divided by its sequence's p and by its response length
    (prompt excluded, EOS padding included); the sum is averaged over the batch.
    """
    token_ce = F.cross_entropy(logits_at_masked.float(), targets[batch.masked], reduction="none")
    response_lengths = response_mask.sum(dim=1).clamp(min=1).float()
    rows = batch.masked.nonzero(as_tuple=True)[0]
    weights = 1.0 / (batch.p_mask[rows] * response_lengths[rows])
    return (token_ce * weights).sum() / batch.masked.shape[0]


def left_padded_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 at each sequence's first real token (left padding)."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)


def causal_attention_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) padding mask -> (B, 1, L, L) boolean mask, True where query i may attend to key j:
    j <= i and j is a real token. A padded query row attends to itself only (no empty rows)."""
    B, L = attention_mask.shape
    keys = attention_mask.bool()[:, None, None, :]
    lower = torch.tril(torch.ones(L, L, dtype=torch.bool, device=attention_mask.device))[None, None]
    eye = torch.eye(L, dtype=torch.bool, device=attention_mask.device)[None, None]
    return (lower & keys) | eye
