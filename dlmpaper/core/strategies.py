"""Commit strategies for :func:`dlmpaper.core.sampling.generate`: *which* and *how many* masked
positions one step commits, and optionally which committed tokens it revises (paper
§5 "decoding that models the dependencies between tokens committed together").

Each strategy is a small frozen dataclass with ``validate()`` (a one-line ``ValueError``, raised
before any forward pass) and ``select(ctx)``, a pure function of one row's :class:`StepContext`
returning the indices (into the masked positions of the current block) to commit. The same
``select`` serves :func:`generate` and the exact toy evaluation of ``dlmpaper.analyses.remedies``.

Costs in forward passes (NFE) are per prompt; ``GenerationResult.nfe_masked`` / ``nfe_ar`` count them.

* :class:`LowConfidence` -- LLaDA's default (Nie et al. 2025): the ``k`` most confident of a fixed
  even schedule; ``steps`` passes, nothing extra.
* :class:`ConfidenceThreshold` -- Fast-dLLM (Wu et al., arXiv 2505.22618), threshold rule.
* :class:`FactorRule` -- Fast-dLLM's factor rule.
* :class:`EntropyBounded` -- EB-Sampler (Ben-Hamu et al., arXiv 2505.24857).
* :class:`Dilated` -- DUS (Luxembourg et al., arXiv 2506.19037), non-adjacent groups.
* :class:`Remask` -- revision of committed tokens in the spirit of ReMDM (Wang et al., arXiv 2503.00307).
* :class:`Verifier` -- propose-and-verify with an autoregressive judge (in the spirit of APD,
  Israel et al., arXiv 2506.00413); judges are :class:`CausalJudge`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "ACCEPTANCE",
    "CausalJudge",
    "ConfidenceThreshold",
    "Dilated",
    "EntropyBounded",
    "FactorRule",
    "LowConfidence",
    "Remask",
    "StepContext",
    "Verifier",
    "check_strategy",
]

#: Acceptance tests of :class:`Verifier`.
ACCEPTANCE = ("ratio", "greedy")


@dataclass
class StepContext:
    """What a strategy sees for one row at one step (all tensors 1-D over the ``m`` masked
    positions of the current block, in position order).

    ``confidence``: probability of the candidate token (LLaDA's ``p(x0)``; the toy evaluation
    uses the marginal's maximum); ``entropy``: entropy (nats) of the position's distribution;
    ``columns``: block-relative positions; ``k``: tokens the fixed even schedule would commit now
    (``sampling.transfer_schedule``); ``step`` / ``steps``: index of this step in the block and the
    block's fixed step count; ``block_length``.
    """

    confidence: torch.Tensor
    entropy: torch.Tensor
    columns: torch.Tensor
    k: int
    step: int
    steps: int
    block_length: int


def _top(confidence: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the ``n`` (at least 1) highest confidences; ties go to the leftmost."""
    n = max(1, min(int(n), confidence.numel()))
    return torch.sort(confidence, descending=True, stable=True).indices[:n]


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


@dataclass(frozen=True)
class LowConfidence:
    """LLaDA's low-confidence remasking (the default of :func:`sampling.generate`): commit the
    ``ctx.k`` most confident masked positions of the fixed even schedule. Cost: ``steps`` passes."""

    name = "low_confidence"
    adaptive = False

    def validate(self) -> "LowConfidence":
        return self

    def select(self, ctx: StepContext) -> torch.Tensor:
        return ctx.confidence.topk(ctx.k, dim=-1).indices


@dataclass(frozen=True)
class ConfidenceThreshold:
    """Fast-dLLM's threshold rule (arXiv 2505.22618, §3.3): commit every masked position whose
    confidence is ``>= tau``, and the most confident one when none is. The step count adapts
    (between ``ceil(block / ...)`` and ``block_length`` passes per block); no extra pass."""

    tau: float = 0.9
    name = "threshold"
    adaptive = True

    def validate(self) -> "ConfidenceThreshold":
        tau = _number("tau", self.tau)
        if not 0 < tau <= 1:
            raise ValueError(f"tau must lie in (0, 1], got {tau}")
        return self

    def select(self, ctx: StepContext) -> torch.Tensor:
        hit = torch.nonzero(ctx.confidence >= self.tau).reshape(-1)
        return hit if hit.numel() else _top(ctx.confidence, 1)


@dataclass(frozen=True)
class FactorRule:
    """Fast-dLLM's factor rule (arXiv 2505.22618, §3.3): with confidences sorted descending
    ``c_1 >= c_2 >= ...``, commit the top ``n`` for the largest ``n`` with
    ``(n + 1) (1 - c_n) < f``; at least one. Adaptive step count, no extra pass."""

    f: float = 1.0
    name = "factor"
    adaptive = True

    def validate(self) -> "FactorRule":
        if _number("f", self.f) <= 0:
            raise ValueError(f"f must be > 0, got {self.f}")
        return self

    def select(self, ctx: StepContext) -> torch.Tensor:
        order = torch.sort(ctx.confidence, descending=True, stable=True)
        n = torch.arange(1, order.values.numel() + 1, dtype=torch.float64)
        ok = torch.nonzero((n + 1) * (1 - order.values) < self.f).reshape(-1)
        count = int(ok.max()) + 1 if ok.numel() else 1
        return order.indices[:count]


@dataclass(frozen=True)
class EntropyBounded:
    """EB-Sampler (arXiv 2505.24857, §3): sort the masked positions by entropy (ascending) and
    commit the largest prefix ``U`` with ``sum_{i in U} H_i - max_{i in U} H_i <= gamma``; at least
    one. ``gamma = 0`` commits only zero-entropy ties beyond the first. Adaptive, no extra pass."""

    gamma: float = 0.1
    name = "entropy_bounded"
    adaptive = True

    def validate(self) -> "EntropyBounded":
        if _number("gamma", self.gamma) < 0:
            raise ValueError(f"gamma must be >= 0, got {self.gamma}")
        return self

    def select(self, ctx: StepContext) -> torch.Tensor:
        order = torch.sort(ctx.entropy, stable=True)
        h = order.values.clamp(min=0)
        excess = torch.cumsum(h, 0) - torch.cummax(h, 0).values
        count = int((excess <= self.gamma + 1e-12).sum())  # non-decreasing: a prefix
        return order.indices[: max(1, count)]


@dataclass(frozen=True)
class Dilated:
    """DUS, dilated unmasking (arXiv 2506.19037): a fixed, data-independent partition of the block
    into ``s = steps per block`` groups ``{j : j mod s = g}``, committed group by group, so tokens
    committed together are ``s`` positions apart (never adjacent when ``s >= 2``). The paper's
    schedule is dyadic (``s = log2(block)``); this is the same dilation with any ``s``. Cost:
    ``steps`` passes, no extra."""

    name = "dilated"
    adaptive = False

    def validate(self) -> "Dilated":
        return self

    def select(self, ctx: StepContext) -> torch.Tensor:
        group = torch.nonzero(ctx.columns % ctx.steps == ctx.step % ctx.steps).reshape(-1)
        if ctx.step == ctx.steps - 1:  # last step: whatever is still masked
            return torch.arange(ctx.columns.numel())
        return group if group.numel() else _top(ctx.confidence, 1)


@dataclass(frozen=True)
class Remask:
    """Revision of committed tokens, in the spirit of ReMDM (arXiv 2503.00307): at every step but a
    block's last, after the pass, re-mask ``floor(sigma * c)`` of the ``c`` tokens committed at
    earlier steps of the block, those with the lowest confidence at commit (a deterministic
    version of ReMDM-conf, whose remasking probability grows as the confidence falls; ReMDM draws it
    per token with a capped sigma_t). The commit count becomes ``ceil((m + r) / steps left)`` so the
    block still finishes within its ``steps`` passes: the same NFE as the default, no extra pass."""

    sigma: float = 0.25
    name = "remask"
    adaptive = False

    def validate(self) -> "Remask":
        sigma = _number("sigma", self.sigma)
        if not 0 <= sigma < 1:
            raise ValueError(f"sigma must lie in [0, 1), got {sigma}")
        return self

    def n_remask(self, n_committed: int, step: int, steps: int) -> int:
        return 0 if step >= steps - 1 else int(math.floor(self.sigma * n_committed + 1e-12))

    def select(self, ctx: StepContext) -> torch.Tensor:
        return _top(ctx.confidence, ctx.k)

    def remask(self, stored_confidence: torch.Tensor, n: int) -> torch.Tensor:
        """Indices (into the earlier-committed tokens) of the ``n`` lowest stored confidences."""
        if n <= 0:
            return torch.zeros(0, dtype=torch.long)
        return (-stored_confidence).topk(min(n, stored_confidence.numel())).indices


@dataclass(frozen=True)
class Verifier:
    """Propose-and-verify with an autoregressive judge (in the spirit of APD, arXiv 2506.00413):
    propose the leftmost ``k`` masked positions of the block from one masked pass (left to right,
    tokens drawn independently from the marginals), run the judge once over prompt + committed +
    proposal, keep the longest accepted prefix and commit one correction token at the first
    rejection. ``acceptance="ratio"``: speculative sampling's test, accept ``y`` with probability
    ``min(1, p_AR(y) / q(y))``, on rejection draw from ``max(0, p_AR - q)`` normalised (the output
    then follows the judge's distribution at the sampling temperature); ``"greedy"``: accept while
    the proposal equals the judge's argmax, then commit that argmax. Cost: one masked + one AR pass
    per round, at least one token per round. ``judge`` is a :class:`CausalJudge` (or any object with
    its ``conditionals``); the toy evaluation takes an ``ar_fn`` instead and ignores it."""

    k: int = 2
    judge: Any = None
    acceptance: str = "ratio"
    name = "verifier"
    adaptive = True

    def validate(self) -> "Verifier":
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k (tokens proposed per round) must be an int >= 1, got {self.k!r}")
        if self.acceptance not in ACCEPTANCE:
            raise ValueError(f"unknown acceptance {self.acceptance!r}; use one of {', '.join(ACCEPTANCE)}")
        return self

    def select(self, ctx: StepContext) -> torch.Tensor:
        return torch.arange(min(self.k, ctx.columns.numel()))


STRATEGIES = (LowConfidence, ConfidenceThreshold, FactorRule, EntropyBounded, Dilated, Remask, Verifier)


def check_strategy(strategy) -> Any:
    """``None`` -> :class:`LowConfidence`; a strategy instance is validated and returned."""
    if strategy is None:
        return LowConfidence()
    if not isinstance(strategy, STRATEGIES):
        names = ", ".join(s.__name__ for s in STRATEGIES)
        raise ValueError(f"unknown strategy {strategy!r}; pass an instance of one of {names}")
    return strategy.validate()


class CausalJudge:
    """An autoregressive judge for :class:`Verifier`: a transformers MLM backbone run under a causal
    mask (``dlmpaper.lm.families``, the shipped ``data/family_models/<language>-autoregressive``).

    ``conditionals(x, attention)`` returns logits ``(B, L, V)`` where row ``j`` is the judge's
    distribution of token ``j`` given the real tokens before it (left padding allowed). With
    ``start_id`` (the toy AR models read the mask id as a start token, ``dlmpaper.lm.toymodels.toy_loss``) a start
    token is put before each row's first real token, so token 0 is judged too; without it, column
    ``j`` is read from position ``j - 1`` (column 0 is undefined and returned as zeros)."""

    def __init__(self, model, start_id: int | None = None):
        self.model, self.start_id = model, start_id

    @torch.no_grad()
    def conditionals(self, x: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        from dlmpaper.core.objectives import causal_attention_mask, left_padded_positions, masked_logits

        B, L = x.shape
        device = next(self.model.parameters()).device
        if self.start_id is not None:
            pad = torch.zeros((B, 1), dtype=x.dtype, device=x.device)
            xs, att = torch.cat([pad, x], 1), torch.cat([torch.zeros_like(pad), attention.to(x.dtype)], 1)
            first = att.argmax(1)  # first real column (after the new one); all-pad rows: 0
            rows = torch.arange(B, device=x.device)
            start_col = (first - 1).clamp(min=0)
            xs[rows, start_col] = self.start_id
            att[rows, start_col] = 1
        else:
            xs, att = x, attention
        pos = left_padded_positions(att)
        out = masked_logits(
            self.model, xs.to(device), causal_attention_mask(att.to(device)), pos.to(device), None
        ).float()
        if self.start_id is not None:
            return out[:, :-1].to(x.device)  # position i of xs (= column i-1 of x's start) predicts column i
        return torch.cat([torch.zeros_like(out[:, :1]), out[:, :-1]], 1).to(x.device)
