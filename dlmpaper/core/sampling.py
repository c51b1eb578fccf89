"""Parallel decoders for masked diffusion LMs and the metrics of the marginal trap (paper §4, issue (ii)).

:func:`generate` is LLaDA's semi-autoregressive sampler with remasking (Nie et al. 2025,
Algorithm "low-confidence remasking"; docs/ARCHITECTURE.md "Facts the code relies on"), batched over prompts with left
padding. It records, per generated position, the step at which the token was committed and
how confident the model was, and at every step whether the model would now prefer another
token at positions it committed earlier ("committed states are never revised").

:func:`sweep` runs it over tokens-per-step x block length x remasking and scores each answer
with the incoherence metrics :func:`adjacent_duplicate_rate`, :func:`distinct_ratio`,
:func:`answer_length` and :func:`sequential_log_likelihood`: committing more tokens per step
samples from a product of marginals (the marginal trap), which these numbers make visible.
Notebook 04_marginal_trap uses everything here.

Randomness contract (same seed -> same tokens, whatever the batch size): prompt ``i`` of a
call gets its own ``torch.Generator`` (:func:`row_generator`, seeded from ``(seed, i)``).
At every step, for the masked positions of the current block in position order, a row
draws first the Gumbel uniforms ``(m, V)`` (only when ``temperature > 0``), then the
remasking uniforms ``(m,)`` (only for ``remasking="random"``).
With a :mod:`dlmpaper.core.strategies` object the same draws happen in the passes where the row still
has masks in the block, followed by a verifier's acceptance uniforms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from dlmpaper.core.logits import sliceable_head, tail_logits

if TYPE_CHECKING:  # the protocol is a type only; core never imports dlmpaper.lm at run time
    from dlmpaper.lm.protocol import MaskedDiffusionLM

__all__ = [
    "REMASKING",
    "GenerationResult",
    "SamplerSettings",
    "adjacent_duplicate_rate",
    "answer_length",
    "answer_tokens",
    "check_settings",
    "distinct_ratio",
    "generate",
    "gumbel_argmax",
    "remask_check",
    "remasking_scores",
    "row_generator",
    "sequential_log_likelihood",
    "sweep",
    "transfer_schedule",
]

#: Remasking strategies: which masked positions a step commits (highest score first).
REMASKING = ("low_confidence", "random", "margin", "entropy")

#: Bound on the float64 elements scored at once (rows are chunked above it): 2**25 = 256 MiB.
_MAX_F64_ELEMS = 2**25


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class SamplerSettings:
    """Validated sampler settings (see :func:`check_settings`)."""

    gen_length: int
    block_length: int
    steps: int
    temperature: float
    remasking: str
    cfg_scale: float

    @property
    def n_blocks(self) -> int:
        return self.gen_length // self.block_length

    @property
    def steps_per_block(self) -> int:
        return self.steps // self.n_blocks


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_settings(
    *,
    gen_length: int = 128,
    block_length: int | None = 32,
    steps: int | None = None,
    tokens_per_step: int | None = None,
    temperature: float = 0.0,
    remasking: str = "low_confidence",
    cfg_scale: float = 0.0,
) -> SamplerSettings:
    """Validate :func:`generate`'s settings without touching a model (fail before any forward pass).

    ``block_length=None`` means one block (``gen_length``). ``steps`` and ``tokens_per_step``
    are alternatives; neither means one token per step (``steps = gen_length``).
    ``tokens_per_step=t`` gives ``ceil(block_length / t)`` steps per block, i.e.
    ``steps = ceil(gen_length / t)`` whenever ``t`` divides ``block_length``, and never
    more than ``t`` tokens in one step.
    """
    gen_length = _positive_int("gen_length", gen_length)
    block_length = gen_length if block_length is None else _positive_int("block_length", block_length)
    if block_length > gen_length or gen_length % block_length:
        raise ValueError(
            f"gen_length={gen_length} must be a multiple of block_length={block_length}; "
            f"pick block_length among the divisors of {gen_length} (or block_length=None for one block)"
        )
    n_blocks = gen_length // block_length
    if steps is not None and tokens_per_step is not None:
        raise ValueError("pass steps or tokens_per_step, not both")
    if tokens_per_step is not None:
        tokens_per_step = _positive_int("tokens_per_step", tokens_per_step)
        steps = n_blocks * math.ceil(block_length / tokens_per_step)
    elif steps is None:
        steps = gen_length
    steps = _positive_int("steps", steps)
    if steps % n_blocks:
        raise ValueError(
            f"steps={steps} must be divisible by the number of blocks ({n_blocks} = {gen_length} / "
            f"{block_length}); use a multiple of {n_blocks}, or tokens_per_step"
        )
    if steps // n_blocks > block_length:
        raise ValueError(
            f"{steps // n_blocks} steps per block exceed block_length={block_length}: some steps would "
            f"commit nothing; use steps <= gen_length ({gen_length})"
        )
    if remasking not in REMASKING:
        raise ValueError(f"unknown remasking {remasking!r}; use one of {', '.join(REMASKING)}")
    temperature, cfg_scale = float(temperature), float(cfg_scale)
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature}")
    if not (math.isfinite(cfg_scale) and cfg_scale >= 0):
        raise ValueError(f"cfg_scale must be a finite number >= 0 (0 = no guidance), got {cfg_scale}")
    return SamplerSettings(gen_length, block_length, steps, temperature, remasking, cfg_scale)


def transfer_schedule(n_masked: int, steps: int) -> list[int]:
    """Tokens committed at each of ``steps`` steps for a block holding ``n_masked`` masks.

    LLaDA's even split: ``base = n // s`` everywhere, the first ``n % s`` steps one more
    (e.g. 10 masks in 4 steps -> [3, 3, 2, 2]).
    """
    if steps < 1 or n_masked < 0:
        raise ValueError(f"need steps >= 1 and n_masked >= 0, got steps={steps}, n_masked={n_masked}")
    base, extra = divmod(n_masked, steps)
    return [base + (1 if i < extra else 0) for i in range(steps)]


def row_generator(seed: int, index: int, device: str | torch.device = "cpu") -> torch.Generator:
    """The ``torch.Generator`` of prompt ``index`` in a call with ``seed`` (module docstring)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]).generate_state(2, dtype=np.uint32)
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed((int(state[0]) << 31) ^ int(state[1]))
    return gen


# --------------------------------------------------------------------------- scoring
def gumbel_argmax(
    logits: torch.Tensor, temperature: float, generators: Sequence[torch.Generator] | None = None
) -> torch.Tensor:
    """Sampled token ids ``(..., )`` from ``logits (rows, m, V)`` by the Gumbel-max trick in float64.

    LLaDA perturbs ``exp(l) / (-log U)**T`` and takes the argmax; we take the argmax of its
    logarithm, ``l - T * log(-log U)`` (= T x (l/T + Gumbel)), the same token without
    overflow of ``exp``. ``T = 0`` is the plain argmax. One generator per row.
    """
    if temperature == 0:
        return logits.argmax(-1)
    if generators is None or len(generators) != logits.shape[0]:
        raise ValueError("temperature > 0 needs one torch.Generator per row")
    uniforms = torch.stack(
        [torch.rand(logits.shape[1:], generator=g, dtype=torch.float64, device=logits.device) for g in generators]
    )
    return (logits.double() - temperature * torch.log(-torch.log(uniforms))).argmax(-1)


def remasking_scores(
    probs: torch.Tensor,
    x0: torch.Tensor,
    remasking: str,
    generators: Sequence[torch.Generator] | None = None,
) -> torch.Tensor:
    """Score of each candidate ``x0`` given ``probs (rows, m, V)`` (float64): high = commit first.

    ``low_confidence``: p(x0) (LLaDA); ``random``: U(0, 1) (LLaDA); ``margin``: top-1 minus
    top-2 probability; ``entropy``: minus the entropy of the position's distribution.
    """
    if remasking == "low_confidence":
        return probs.gather(-1, x0[..., None]).squeeze(-1)
    if remasking == "random":
        if generators is None or len(generators) != probs.shape[0]:
            raise ValueError("remasking='random' needs one torch.Generator per row")
        return torch.stack(
            [torch.rand(probs.shape[1:-1], generator=g, dtype=torch.float64, device=probs.device) for g in generators]
        )
    if remasking == "margin":
        top = probs.topk(2, dim=-1).values
        return top[..., 0] - top[..., 1]
    if remasking == "entropy":
        return torch.special.xlogy(probs, probs).sum(-1)
    raise ValueError(f"unknown remasking {remasking!r}; use one of {', '.join(REMASKING)}")


def _score_rows(
    logits: torch.Tensor, settings: SamplerSettings, generators: Sequence[torch.Generator]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x0, p(x0), score)`` for ``logits (B, m, V)``, chunked over rows to bound float64 memory."""
    rows, m, vocab = logits.shape
    chunk = max(1, _MAX_F64_ELEMS // max(1, m * vocab))
    outs = []
    for r0 in range(0, rows, chunk):
        part, gens = logits[r0 : r0 + chunk], list(generators[r0 : r0 + chunk])
        x0 = gumbel_argmax(part, settings.temperature, gens)
        probs = torch.softmax(part.double(), dim=-1)
        prob_x0 = probs.gather(-1, x0[..., None]).squeeze(-1)
        score = (
            prob_x0 if settings.remasking == "low_confidence" else remasking_scores(probs, x0, settings.remasking, gens)
        )
        outs.append((x0, prob_x0, score))
        del probs
    return tuple(torch.cat(t) for t in zip(*outs))  # type: ignore[return-value]


# --------------------------------------------------------------------------- result
@dataclass
class GenerationResult:
    """What :func:`generate` returns (notebook 04_marginal_trap).

    ``tokens`` (B, G) generated ids; ``texts`` answers decoded up to the first end id;
    ``commit_step`` (B, G) global step (0 .. steps-1) at which each position was committed;
    ``confidence`` (B, G) float64 softmax probability of the committed token at that step;
    ``committed_value`` (B, G) float64 remasking score that ranked it (equals ``confidence``
    for low_confidence); ``disagreement`` (B, steps + 1, G) bool or None: at forward pass
    ``s`` (``s = steps`` is one extra pass on the finished answer), True where a position
    committed at an earlier step holds a token other than the model's current argmax there.
    That argmax is read from the same forward pass, at a position the model *sees*; LLaDA is
    trained only on masked positions, so its output there is untrained (on the embedded model
    it disagrees ~90% of the time). :func:`remask_check` asks the trained question instead:
    mask the position alone in the finished answer and read the prediction.
    ``nfe_masked`` / ``nfe_ar`` (B,) int: forward passes of the masked model and of an
    autoregressive judge spent on each prompt (the record pass not counted); ``strategy`` the
    :mod:`dlmpaper.core.strategies` object that decoded (None: the default path). With a strategy,
    ``commit_step`` counts the prompt's own passes (adaptive strategies differ per prompt).
    """

    tokens: torch.Tensor
    texts: list[str]
    commit_step: torch.Tensor
    confidence: torch.Tensor
    committed_value: torch.Tensor
    disagreement: torch.Tensor | None
    prompt_ids: list[list[int]]
    settings: SamplerSettings
    end_ids: tuple[int, ...]
    seed: int
    token_text: Callable[[Any], list[str]] | None = field(default=None, repr=False)
    nfe_masked: np.ndarray | None = None
    nfe_ar: np.ndarray | None = None
    strategy: Any = None

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def answer_lengths(self) -> np.ndarray:
        """Tokens before the first end id, per prompt."""
        return answer_length(self.tokens, self.end_ids)

    def to_frame(self) -> pd.DataFrame:
        """Tidy table, one row per (prompt, position): block, step, token id and text, confidence,
        score, ``in_answer`` (before the first end id) and ``n_later_disagreements`` (steps after
        the commit at which the model preferred another token there; NaN without a record)."""
        B, G = self.tokens.shape
        lengths = self.answer_lengths()
        ids = self.tokens.reshape(-1)
        texts = self.token_text(ids) if self.token_text is not None else [None] * ids.numel()
        if self.disagreement is not None:
            later = self.disagreement.sum(1).reshape(-1).numpy().astype(float)
        else:
            later = np.full(B * G, np.nan)
        position = np.tile(np.arange(G), B)
        return pd.DataFrame(
            {
                "prompt": np.repeat(np.arange(B), G),
                "position": position,
                "block": position // self.settings.block_length,
                "step": self.commit_step.reshape(-1).numpy(),
                "token_id": ids.numpy(),
                "token": texts,
                "confidence": self.confidence.reshape(-1).numpy(),
                "score": self.committed_value.reshape(-1).numpy(),
                "in_answer": position < np.repeat(lengths, G),
                "n_later_disagreements": later,
            }
        )

    def disagreement_frame(self) -> pd.DataFrame:
        """One row per (prompt, forward pass): ``n_committed`` positions committed before it,
        ``n_disagree`` of them where the model's argmax is now another token, and ``rate``.
        The pass ``step == steps`` (``final`` True) reads the finished answer. Needs ``record=True``."""
        if self.disagreement is None:
            raise ValueError("no disagreement record: call generate(..., record=True)")
        B, S1, _ = self.disagreement.shape
        steps = torch.arange(S1)
        n_committed = (self.commit_step[:, None, :] < steps[None, :, None]).sum(-1)
        n_disagree = self.disagreement.sum(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = n_disagree.numpy() / n_committed.numpy()
        return pd.DataFrame(
            {
                "prompt": np.repeat(np.arange(B), S1),
                "step": np.tile(np.arange(S1), B),
                "final": np.tile(np.arange(S1) == S1 - 1, B),
                "n_committed": n_committed.reshape(-1).numpy(),
                "n_disagree": n_disagree.reshape(-1).numpy(),
                "rate": rate.reshape(-1),
            }
        )


# --------------------------------------------------------------------------- generate
def _prompt_ids(model, prompts) -> list[list[int]]:
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Iterable):
        raise TypeError(
            "prompts must be a list of strings or a list of token-id lists; wrap a single prompt as [prompt]"
        )
    if isinstance(prompts, torch.Tensor) and prompts.dim() != 2:
        raise TypeError("a tensor of prompts must be 2-D (one row of token ids per prompt)")
    prompts = list(prompts)  # lists, tuples, pandas Series, rows of a 2-D tensor
    if len(prompts) == 0:
        raise ValueError("prompts is empty: pass at least one prompt")
    out = []
    for i, p in enumerate(prompts):
        if isinstance(p, str):
            ids = model.encode_chat(p)
        elif isinstance(p, torch.Tensor):
            ids = [int(t) for t in p.reshape(-1).tolist()]
        elif isinstance(p, Iterable):
            ids = [int(t) for t in p]
        else:
            raise TypeError(f"prompt {i} is a {type(p).__name__}; use a str or a list of token ids")
        if model.mask_id in ids:
            raise ValueError(
                f"prompt {i} contains the mask id {model.mask_id}; prompts must be fully visible "
                "(the sampler appends the masks itself)"
            )
        out.append(ids)
    return out


@torch.no_grad()
def generate(
    model: MaskedDiffusionLM,
    prompts: Sequence[str] | Sequence[Sequence[int]],
    *,
    gen_length: int = 128,
    block_length: int | None = 32,
    steps: int | None = None,
    tokens_per_step: int | None = None,
    temperature: float = 0.0,
    remasking: str = "low_confidence",
    cfg_scale: float = 0.0,
    seed: int = 0,
    batch_size: int = 16,
    record: bool | None = None,
    progress: bool = True,
    strategy=None,
) -> GenerationResult:
    """LLaDA's parallel decoder with remasking (paper §4, issue (ii); Nie et al. 2025), batched with left padding.

    Each prompt (chat-encoded when a str) gets ``gen_length`` masks. The generated region is
    decoded in blocks of ``block_length`` from left to right, each with ``steps / n_blocks``
    steps; a block's masks are committed at an even rate (:func:`transfer_schedule`). At each
    step: logits (with classifier-free guidance ``un + (cfg+1)(cond - un)``, the
    unconditional pass seeing the prompt replaced by masks), ``x0`` by Gumbel-max at
    ``temperature`` (:func:`gumbel_argmax`), then the masked positions of the current block
    with the highest :func:`remasking_scores` are committed; committed tokens are never
    revised. One deliberate difference from LLaDA's code: the mask token is never a candidate
    (its logit is set to -inf; LLaDA's trained model gives it no mass, random stand-ins may).
    ``record`` keeps the disagreement record (one extra forward pass per batch).
    Deterministic given ``seed`` and independent of ``batch_size`` (module docstring) in float32.
    Softmax, confidences and Gumbel noise are float64 whatever the model's dtype (as in LLaDA's
    March-2025 ``generate()``; its current version computes them in the model dtype, so bf16
    samples from it can differ). In bfloat16 the logits themselves change in the last bits with
    left padding, so batched and one-at-a-time samples can differ: pass ``batch_size=1`` for bf16
    samples that do not depend on batch composition.

    ``strategy`` (a :mod:`dlmpaper.core.strategies` object; None = the path above, unchanged) decides
    which and how many masked positions of the block each pass commits, and may revise committed
    ones (:class:`~dlmpaper.core.strategies.Remask`) or verify proposals with an autoregressive judge
    (:class:`~dlmpaper.core.strategies.Verifier`). Fixed strategies use ``steps``; adaptive ones run
    until the block is committed (at most ``block_length`` passes per block) and the passes are
    counted per prompt in ``nfe_masked`` / ``nfe_ar``. Strategies rank by ``p(x0)`` and need
    ``remasking="low_confidence"``; ``record`` (default: True without a strategy) is not kept with one.
    """
    if strategy is not None:
        from dlmpaper.core.strategies import Verifier, check_strategy

        strategy = check_strategy(strategy)
        if remasking != "low_confidence":
            raise ValueError(f"a strategy ranks by confidence: use remasking='low_confidence', not {remasking!r}")
        if record:
            raise ValueError("record=True is kept by the default decoder only; pass record=False with a strategy")
        if isinstance(strategy, Verifier) and strategy.judge is None:
            raise ValueError("Verifier needs an autoregressive judge in generate: Verifier(k, judge=CausalJudge(...))")
        record = False
    elif record is None:
        record = True
    settings = check_settings(
        gen_length=gen_length,
        block_length=block_length,
        steps=steps,
        tokens_per_step=tokens_per_step,
        temperature=temperature,
        remasking=remasking,
        cfg_scale=cfg_scale,
    )
    batch_size = _positive_int("batch_size", batch_size)
    ids_list = _prompt_ids(model, prompts)
    longest = max(len(p) for p in ids_list) + settings.gen_length
    if model.max_length is not None and longest > model.max_length:
        raise ValueError(
            f"the longest prompt plus gen_length={settings.gen_length} is {longest} tokens, beyond "
            f"{model.name}'s context of {model.max_length}; use a smaller gen_length or shorter prompts"
        )

    from tqdm.auto import tqdm

    n_batches = math.ceil(len(ids_list) / batch_size)
    parts: list[dict[str, torch.Tensor]] = []
    with tqdm(total=n_batches * settings.steps, desc="generate", disable=not progress, leave=False) as bar:
        for start in range(0, len(ids_list), batch_size):
            chunk = ids_list[start : start + batch_size]
            gens = [row_generator(seed, start + i, model.device) for i in range(len(chunk))]
            if strategy is None:
                part = _generate_batch(model, chunk, settings, gens, record, bar)
                part["nfe_masked"] = torch.full((len(chunk),), settings.steps, dtype=torch.long)
                part["nfe_ar"] = torch.zeros(len(chunk), dtype=torch.long)
            else:
                part = _generate_batch_strategy(model, chunk, settings, gens, strategy, bar)
            parts.append(part)

    tokens = torch.cat([p["tokens"] for p in parts])
    end_ids = tuple(model.end_ids)
    return GenerationResult(
        tokens=tokens,
        texts=[model.decode(answer_tokens(row, end_ids)) for row in tokens.tolist()],
        commit_step=torch.cat([p["commit_step"] for p in parts]),
        confidence=torch.cat([p["confidence"] for p in parts]),
        committed_value=torch.cat([p["value"] for p in parts]),
        disagreement=torch.cat([p["disagreement"] for p in parts]) if record else None,
        prompt_ids=ids_list,
        settings=settings,
        end_ids=end_ids,
        seed=int(seed),
        token_text=model.token_text,
        nfe_masked=torch.cat([p["nfe_masked"] for p in parts]).numpy(),
        nfe_ar=torch.cat([p["nfe_ar"] for p in parts]).numpy(),
        strategy=strategy,
    )


def _generate_batch(model, ids_list, settings: SamplerSettings, gens, record: bool, bar) -> dict[str, torch.Tensor]:
    """One left-padded batch of :func:`generate` (all rows share the schedule: no prompt holds masks)."""
    G, bl, mask_id = settings.gen_length, settings.block_length, model.mask_id
    x, attention = model.batch(ids_list, n_masks=G)
    B, L = x.shape
    p0 = L - G  # first generated column, the same for every row (left padding)
    device = x.device
    prompt_cols = attention.bool().clone()
    prompt_cols[:, p0:] = False
    guided = settings.cfg_scale > 0
    if guided:
        attention_in = torch.cat([attention, attention])

    commit_step = torch.full((B, G), -1, dtype=torch.long, device=device)
    confidence = torch.zeros((B, G), dtype=torch.float64, device=device)
    value = torch.zeros((B, G), dtype=torch.float64, device=device)
    disagreement = torch.zeros((B, settings.steps + 1, G), dtype=torch.bool) if record else None

    head = sliceable_head(model)

    def region_logits() -> torch.Tensor:
        if not guided:
            return tail_logits(model, x, attention, G, head)
        un_x = x.masked_fill(prompt_cols, mask_id)
        both = tail_logits(model, torch.cat([x, un_x]), attention_in, G, head)
        cond, un = both[:B], both[B:]
        return un + (settings.cfg_scale + 1.0) * (cond - un)

    def note_disagreement(logits: torch.Tensor, step: int, upto: int) -> None:
        # committed positions lie before ``upto`` (end of the current block); argmax over a view
        committed = commit_step[:, :upto] >= 0
        if bool(committed.any()):
            differs = logits[:, :upto].argmax(-1) != x[:, p0 : p0 + upto]
            disagreement[:, step, :upto] = (committed & differs).cpu()

    rows = torch.arange(B, device=device)[:, None]
    step = 0
    for block in range(settings.n_blocks):
        lo = block * bl  # in generated-region coordinates
        region = x[:, p0 + lo : p0 + lo + bl]
        schedule = transfer_schedule(int((region[0] == mask_id).sum()), settings.steps_per_block)
        for k in schedule:
            logits = region_logits()
            if record:
                note_disagreement(logits, step, lo + bl)
            masked = x[:, p0 + lo : p0 + lo + bl] == mask_id  # (B, bl), same count in every row
            m = int(masked[0].sum())
            cols = torch.arange(bl, device=device).expand(B, bl)[masked].view(B, m)
            candidates = logits[:, lo : lo + bl].gather(1, cols[..., None].expand(B, m, logits.shape[-1]))
            candidates[..., mask_id] = float("-inf")  # a copy; committing a mask would commit nothing
            x0, prob, score = _score_rows(candidates, settings, gens)
            if k > 0:
                chosen = score.topk(k, dim=-1).indices  # (B, k) into the m candidates
                pos = lo + cols.gather(1, chosen)  # generated-region coordinates
                x[rows, p0 + pos] = x0.gather(1, chosen)
                commit_step[rows, pos] = step
                confidence[rows, pos] = prob.gather(1, chosen)
                value[rows, pos] = score.gather(1, chosen)
            step += 1
            bar.update(1)
    if record:
        note_disagreement(region_logits(), step, G)
    return {
        "tokens": x[:, p0:].cpu(),
        "commit_step": commit_step.cpu(),
        "confidence": confidence.cpu(),
        "value": value.cpu(),
        "disagreement": disagreement,
    }


def _strategy_logits(model, x, attention, start: int, settings: SamplerSettings, prompt_cols, head) -> torch.Tensor:
    """Logits from column ``start`` on (the vocabulary projection there only: :func:`tail_logits`), with
    classifier-free guidance as in :func:`_generate_batch`."""
    n = x.shape[1] - start
    if settings.cfg_scale <= 0:
        return tail_logits(model, x, attention, n, head)
    un_x = x.masked_fill(prompt_cols, model.mask_id)
    both = tail_logits(model, torch.cat([x, un_x]), torch.cat([attention, attention]), n, head)
    cond, un = both[: x.shape[0]], both[x.shape[0] :]
    return un + (settings.cfg_scale + 1.0) * (cond - un)


def _verify(
    strategy, judge_logits: torch.Tensor, cand: torch.Tensor, x0: torch.Tensor, temperature: float, gen: torch.Generator
) -> tuple[int, int | None]:
    """``(accepted, correction)`` for one row's proposal ``x0 (kk,)`` (:class:`strategies.Verifier`).

    ``judge_logits`` and ``cand`` are ``(kk, V)`` (judge and masked model at the proposed positions,
    mask id already -inf). At temperature 0 both distributions are one-hot (their argmaxes); the
    ratio test then equals the greedy one. Draws ``2 kk`` uniforms only when ``temperature > 0``."""
    kk = x0.numel()
    a = judge_logits.double()
    if temperature > 0:
        p = torch.softmax(a / temperature, -1)
        q = torch.softmax(cand.double() / temperature, -1)
        u = torch.rand(2 * kk, generator=gen, dtype=torch.float64, device=a.device)
    else:
        p = torch.nn.functional.one_hot(a.argmax(-1), a.shape[-1]).double()
        q = torch.nn.functional.one_hot(x0, a.shape[-1]).double()
        u = torch.full((2 * kk,), 0.5, dtype=torch.float64, device=a.device)  # unused: ratios are 0 or 1
    for j in range(kk):
        y = int(x0[j])
        if strategy.acceptance == "greedy":
            best = int(a[j].argmax())
            if y != best:
                return j, best
            continue
        if float(u[j]) * float(q[j, y]) < float(p[j, y]):  # u < p / q without dividing
            continue
        resid = (p[j] - q[j]).clamp(min=0)
        total = float(resid.sum())
        if total <= 0:  # p == q up to rounding: nothing to correct
            return j, int(p[j].argmax())
        cdf = torch.cumsum(resid / total, 0)
        z = int(torch.searchsorted(cdf, u[kk + j].clamp(max=float(cdf[-1]) * (1 - 1e-12)).reshape(1), right=True))
        return j, min(z, a.shape[-1] - 1)
    return kk, None


def _generate_batch_strategy(
    model, ids_list, settings: SamplerSettings, gens, strategy, bar
) -> dict[str, torch.Tensor]:
    """One left-padded batch of :func:`generate` under a :mod:`dlmpaper.core.strategies` object.

    The forward pass is batched; every decision is taken per row from that row's logits and
    generator only (Gumbel uniforms ``(m, V)`` when ``temperature > 0``, then the verifier's
    ``2 kk`` uniforms), and only in passes where the row still has masks in the block, so a row's
    answer does not depend on the others."""
    from dlmpaper.core.strategies import Remask, StepContext, Verifier

    G, bl, mask_id = settings.gen_length, settings.block_length, model.mask_id
    x, attention = model.batch(ids_list, n_masks=G)
    B, L = x.shape
    p0 = L - G
    device = x.device
    prompt_cols = attention.bool().clone()
    prompt_cols[:, p0:] = False
    spb = settings.steps_per_block
    commit_step = torch.full((B, G), -1, dtype=torch.long, device=device)
    confidence = torch.zeros((B, G), dtype=torch.float64, device=device)
    nfe_m = torch.zeros(B, dtype=torch.long)
    nfe_a = torch.zeros(B, dtype=torch.long)
    row_step = [0] * B
    verifier, remask = isinstance(strategy, Verifier), isinstance(strategy, Remask)
    head = sliceable_head(model)
    for block in range(settings.n_blocks):
        lo = block * bl
        schedule = transfer_schedule(bl, spb)
        it = 0
        while True:
            masked = x[:, p0 + lo : p0 + lo + bl] == mask_id
            active = torch.nonzero(masked.any(1)).reshape(-1).tolist()
            if not active:
                break
            if it >= (bl if strategy.adaptive else spb):
                raise RuntimeError(f"strategy {strategy.name} left masks after {it} passes in block {block}")
            logits = _strategy_logits(model, x, attention, p0 + lo, settings, prompt_cols, head)[:, :bl]
            plans = {}
            for r in active:
                nfe_m[r] += 1
                cols = torch.nonzero(masked[r]).reshape(-1)
                cand = logits[r, cols].clone()
                cand[:, mask_id] = float("-inf")
                x0 = gumbel_argmax(cand[None], settings.temperature, [gens[r]])[0]
                probs = torch.softmax(cand.double(), dim=-1)
                prob = probs.gather(-1, x0[:, None]).squeeze(-1)
                ent = -torch.special.xlogy(probs, probs).sum(-1)
                m = cols.numel()
                k = schedule[it] if it < len(schedule) else m
                undo = torch.zeros(0, dtype=torch.long, device=device)
                if remask:
                    earlier = torch.nonzero(~masked[r]).reshape(-1)  # committed at earlier passes
                    n_back = strategy.n_remask(earlier.numel(), it, spb)
                    k = min(m, math.ceil((m + n_back) / (spb - it)))
                    undo = earlier[strategy.remask(confidence[r, lo + earlier], n_back)]
                ctx = StepContext(prob, ent, cols, k, it, spb, bl)
                plans[r] = (cols, cand, x0, prob, probs, strategy.select(ctx), undo)
            if verifier:
                rows = list(plans)
                xp = x[rows].clone()
                for i, r in enumerate(rows):
                    cols, _, x0, _, _, chosen, _ = plans[r]
                    xp[i, p0 + lo + cols[chosen]] = x0[chosen]
                judged = strategy.judge.conditionals(xp, attention[rows])
                for i, r in enumerate(rows):
                    nfe_a[r] += 1
                    cols, cand, x0, prob, probs, chosen, undo = plans[r]
                    jl = judged[i, p0 + lo + cols[chosen]].clone()
                    V = min(jl.shape[-1], cand.shape[-1])
                    jl, cd = jl[:, :V], cand[:, :V]
                    jl[:, mask_id] = float("-inf")
                    n_ok, fix = _verify(strategy, jl, cd, x0[chosen], settings.temperature, gens[r])
                    x0 = x0.clone()
                    if fix is not None:
                        x0[chosen[n_ok]] = fix
                        prob = prob.clone()
                        prob[chosen[n_ok]] = probs[chosen[n_ok], fix]
                        n_ok += 1
                    plans[r] = (cols, cand, x0, prob, probs, chosen[:n_ok], undo)
            for r, (cols, _, x0, prob, _, chosen, undo) in plans.items():
                pos = lo + cols[chosen]
                x[r, p0 + pos] = x0[chosen]
                commit_step[r, pos] = row_step[r]
                confidence[r, pos] = prob[chosen]
                if undo.numel():
                    x[r, p0 + lo + undo] = mask_id
                    commit_step[r, lo + undo] = -1
                    confidence[r, lo + undo] = 0.0
                row_step[r] += 1
            it += 1
            bar.update(1)
    return {
        "tokens": x[:, p0:].cpu(),
        "commit_step": commit_step.cpu(),
        "confidence": confidence.cpu(),
        "value": confidence.cpu(),
        "disagreement": None,
        "nfe_masked": nfe_m,
        "nfe_ar": nfe_a,
    }


# --------------------------------------------------------------------------- metrics
def answer_tokens(row: Sequence[int], end_ids: Iterable[int]) -> list[int]:
    """``row`` up to (excluding) its first end id: the answer a decoder produced (notebooks 02, 04, 05)."""
    ends = set(int(e) for e in end_ids)
    out = []
    for t in row:
        if int(t) in ends:
            break
        out.append(int(t))
    return out


def _rows(tokens) -> tuple[list[list[int]], bool]:
    """``(rows, single)``: a 1-D sequence is one row; a 2-D tensor / array / list of lists, many."""
    if isinstance(tokens, (torch.Tensor, np.ndarray)):
        arr = tokens.tolist()
        if np.ndim(tokens) == 1:
            return [arr], True
        if np.ndim(tokens) == 2:
            return arr, False
        raise ValueError(f"tokens must be 1-D or 2-D, got shape {tuple(tokens.shape)}")
    tokens = list(tokens)
    if tokens and isinstance(tokens[0], (Sequence, torch.Tensor, np.ndarray)) and not isinstance(tokens[0], str):
        return [list(np.asarray(r).tolist()) for r in tokens], False
    return [tokens], True


def _per_row(tokens, end_ids, fn, dtype=float):
    rows, single = _rows(tokens)
    values = np.array([fn(answer_tokens(r, end_ids)) for r in rows], dtype=dtype)
    return values[0].item() if single else values


def adjacent_duplicate_rate(tokens, end_ids: Iterable[int] = ()) -> float | np.ndarray:
    """Share of adjacent pairs ``(t_i, t_{i+1})`` with ``t_i == t_{i+1}`` before the first end id
    (NaN with fewer than two tokens). A 1-D input gives a float, 2-D one value per row (notebook 04)."""

    def rate(r):
        if len(r) < 2:
            return math.nan
        return sum(a == b for a, b in zip(r, r[1:])) / (len(r) - 1)

    return _per_row(tokens, end_ids, rate)


def distinct_ratio(tokens, end_ids: Iterable[int] = ()) -> float | np.ndarray:
    """Distinct tokens / tokens before the first end id (NaN for an empty answer); notebook 04."""
    return _per_row(tokens, end_ids, lambda r: len(set(r)) / len(r) if r else math.nan)


def answer_length(tokens, end_ids: Iterable[int] = ()) -> int | np.ndarray:
    """Number of tokens before the first end id; notebook 04."""
    return _per_row(tokens, end_ids, len, dtype=np.int64)


@torch.no_grad()
def sequential_log_likelihood(
    model: MaskedDiffusionLM,
    prompt_ids: Sequence[int],
    answer_ids: Sequence[int],
    *,
    region_length: int | None = None,
    batch_size: int = 16,
    per_token: bool = False,
) -> float | np.ndarray:
    """Log-likelihood of ``answer_ids`` scored left to right under the same masked LM (paper §4, issue (ii)).

    For token ``j``: the answer region (``region_length`` positions after the prompt, default
    ``len(answer_ids)``) holds ``answer[:j]`` and masks from ``j`` on; read ``log p(answer[j])``
    at position ``j``. This is the autoregressive score a one-token-per-step decoder would
    assign, against which parallel commits are judged. The ``len(answer_ids)`` passes are
    batched (no padding: all rows share one length). As in :func:`generate`, probabilities are
    over the real tokens (the mask id's logit is dropped). Returns the sum, or the per-token
    log-probs with ``per_token=True`` (notebook 04_marginal_trap).
    """
    prompt = [int(t) for t in prompt_ids]
    answer = [int(t) for t in answer_ids]
    n = len(answer)
    region = n if region_length is None else int(region_length)
    if region < n:
        raise ValueError(f"region_length={region} is shorter than the answer ({n} tokens); use >= {n}")
    if model.mask_id in answer:
        raise ValueError("answer_ids contain the mask id: score a fully decoded answer")
    batch_size = _positive_int("batch_size", batch_size)
    logps = np.zeros(n, dtype=np.float64)
    if n == 0:
        return logps if per_token else 0.0
    base = torch.tensor(prompt + answer + [model.mask_id] * (region - n), dtype=torch.long)
    p0 = len(prompt)
    gold = torch.tensor(answer, dtype=torch.long)
    for j0 in range(0, n, batch_size):
        js = torch.arange(j0, min(n, j0 + batch_size))
        x = base.repeat(len(js), 1)
        cols = torch.arange(region)[None, :]
        x[:, p0:][cols >= js[:, None]] = model.mask_id
        logits = tail_logits(model, x.to(model.device), None, region)  # (b, region, V) float32
        picked = logits[torch.arange(len(js)), js.to(logits.device)].double()
        picked[:, model.mask_id] = float("-inf")  # as in generate: the mask token is no candidate
        lp = torch.log_softmax(picked, dim=-1).gather(-1, gold[js].to(logits.device)[:, None]).squeeze(-1)
        logps[j0 : j0 + len(js)] = lp.cpu().numpy()
    return logps if per_token else float(logps.sum())


# --------------------------------------------------------------------------- revisions
@torch.no_grad()
def remask_check(
    model: MaskedDiffusionLM, result: GenerationResult, *, answer_only: bool = True, batch_size: int = 16
) -> pd.DataFrame:
    """Would the model revise a committed token if asked again? (paper §4, issue (ii), notebook 04).

    For each prompt and generated position ``i`` (up to and including the first end id with
    ``answer_only``), mask position ``i`` alone in the finished sequence and read the model's
    prediction there. Unlike :attr:`GenerationResult.disagreement` (read at visible positions,
    where LLaDA-style models are not trained), this asks the question the model was trained
    on. Columns: ``prompt``, ``position``, ``step``, ``token_id``, ``argmax_id``,
    ``would_revise`` (argmax differs from the committed token), ``p_committed``, ``p_argmax``.
    Costs one forward pass per checked position, batched ``batch_size`` at a time per prompt.
    """
    batch_size = _positive_int("batch_size", batch_size)
    G = result.tokens.shape[1]
    lengths = result.answer_lengths()
    frames = []
    for b, prompt in enumerate(result.prompt_ids):
        answer = result.tokens[b].tolist()
        seq = torch.tensor(list(prompt) + answer, dtype=torch.long)
        p0 = len(prompt)
        n = min(G, int(lengths[b]) + 1) if answer_only else G
        for j0 in range(0, n, batch_size):
            js = torch.arange(j0, min(n, j0 + batch_size))
            x = seq.repeat(len(js), 1)
            x[torch.arange(len(js)), p0 + js] = model.mask_id
            logits = tail_logits(model, x.to(model.device), None, G)[
                torch.arange(len(js)), js.to(model.device)
            ].double()
            logits[:, model.mask_id] = float("-inf")
            probs = torch.softmax(logits, dim=-1).cpu()
            top = probs.argmax(-1)
            gold = result.tokens[b, js]
            frames.append(
                pd.DataFrame(
                    {
                        "prompt": b,
                        "position": js.numpy(),
                        "step": result.commit_step[b, js].numpy(),
                        "token_id": gold.numpy(),
                        "argmax_id": top.numpy(),
                        "would_revise": (top != gold).numpy(),
                        "p_committed": probs.gather(1, gold[:, None]).squeeze(1).numpy(),
                        "p_argmax": probs.max(-1).values.numpy(),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- sweep
def sweep(
    model: MaskedDiffusionLM,
    prompts: Sequence[str] | Sequence[Sequence[int]],
    *,
    tokens_per_step: Sequence[int] = (1, 2, 4, 8, 16),
    block_lengths: Sequence[int | None] = (16, None),
    gen_length: int = 64,
    remasking: str | Sequence[str] = ("low_confidence",),
    temperature: float = 0.0,
    cfg_scale: float = 0.0,
    seed: int = 0,
    batch_size: int = 16,
    score_likelihood: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """The marginal-trap sweep of notebook 04 (paper §4, issue (ii)): decode every prompt at each
    (tokens_per_step, block_length, remasking) and score the answers.

    ``block_lengths`` entries of ``None`` mean ``gen_length`` (one block). One row per
    (prompt, tokens_per_step, block_length, remasking) with ``steps``, ``text``,
    ``answer_length``, ``adjacent_duplicate_rate``, ``distinct_ratio`` and, with
    ``score_likelihood``, ``seq_loglik`` (:func:`sequential_log_likelihood` of the answer up to
    and including its first end id, region = ``gen_length``) and ``seq_loglik_per_token``.
    All settings are validated before the first forward pass.
    """
    methods = (remasking,) if isinstance(remasking, str) else tuple(remasking)
    blocks = tuple(dict.fromkeys(gen_length if b is None else b for b in block_lengths))
    combos = [(t, b, r) for r in methods for b in blocks for t in tokens_per_step]
    if not combos:
        raise ValueError("sweep needs at least one tokens_per_step, block length and remasking")
    for t, b, r in combos:
        check_settings(
            gen_length=gen_length,
            block_length=b,
            tokens_per_step=t,
            remasking=r,
            temperature=temperature,
            cfg_scale=cfg_scale,
        )
    ids_list = _prompt_ids(model, prompts)
    end_ids = tuple(model.end_ids)
    frames = []
    for t, b, r in combos:
        res = generate(
            model,
            ids_list,
            gen_length=gen_length,
            block_length=b,
            tokens_per_step=t,
            temperature=temperature,
            remasking=r,
            cfg_scale=cfg_scale,
            seed=seed,
            batch_size=batch_size,
            record=False,
            progress=progress,
        )
        frame = pd.DataFrame(
            {
                "prompt": np.arange(len(ids_list)),
                "tokens_per_step": t,
                "block_length": b,
                "remasking": r,
                "steps": res.settings.steps,
                "text": res.texts,
                "answer_length": answer_length(res.tokens, end_ids),
                "adjacent_duplicate_rate": adjacent_duplicate_rate(res.tokens, end_ids),
                "distinct_ratio": distinct_ratio(res.tokens, end_ids),
            }
        )
        if score_likelihood:
            lls, n_scored = [], []
            for prompt, row in zip(ids_list, res.tokens.tolist()):
                answer = answer_tokens(row, end_ids)
                answer = answer + row[len(answer) : len(answer) + 1]  # keep the first end id
                lls.append(
                    sequential_log_likelihood(model, prompt, answer, region_length=gen_length, batch_size=batch_size)
                )
                n_scored.append(len(answer))
            frame["seq_loglik"] = lls
            frame["seq_loglik_per_token"] = np.array(lls) / np.maximum(np.array(n_scored), 1)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
