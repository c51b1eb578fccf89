"""The 128-mask positional probe (paper §4, issue (i): uniform corruption is not uniform information loss).

Put ``n_masks`` mask tokens after a chat prompt, run ONE forward pass, read the top-k
tokens at every mask position. The paper shows it qualitatively for LLaDA on LIMA's first
training prompt ("Can brain cells move? ...": content words near the prompt, then "the",
punctuation, finally end-of-sequence) and says the pattern holds on 100 LIMA prompts.
This module puts numbers with uncertainties on it. Notebook ``03_positional_probe``.

* :func:`positional_probe` -> :class:`ProbeResult`: the tidy top-k table plus per
  (prompt, position) numbers (entropy, top-1, JS divergence to the mean over prompts).
* :func:`position_summary`: per position, bootstrap 95% CIs over prompts (tidy long table).
* :func:`end_dominance_distance`: per prompt, the mask position from which EOS wins for good.
* :func:`unigram_ranks_from_model` / :func:`unigram_ranks_from_counts`: reference token
  frequency ranks for the "frequency class" statistic.

Prompt-specificity, exactly, in one pass
----------------------------------------
The statistic is ``JS(p_i, m)``: Jensen-Shannon divergence (nats) of prompt ``i``'s
distribution at a position to the mean ``m`` over all prompts at that position. ``m`` is
known only after the last batch, and ``JS(p_i, m)`` does not decompose into parts that
could be summed before ``m`` is known: an exact answer needs ``p_i`` itself at the end.
Two passes would double the forward cost, so we do one pass, keep a running float64 sum
of the distributions (``n_masks x V``), and keep ``p_i`` in one of two forms:

* full (exact): every distribution in float32 on the model's device (CPU for MPS),
  ``N x n_masks x V x 4`` bytes (420 MB for 100 prompts with the embedded model's V = 8192);
  at the end ``JS = H(a) - H(p_i)/2 - H(m)/2`` with ``a = (p_i + m)/2`` costs one log
  per stored number. ``js_support="auto"``
  (default) chooses this when it fits :data:`JS_MEMORY_BUDGET`; ``js_support=None``
  forces it. ``js == js_upper``.
* truncated (certified bracket): the ``K`` most likely tokens per prompt and position
  (``"auto"``: ``K =`` :data:`DEFAULT_JS_SUPPORT` when the full form does not fit, e.g.
  LLaDA, V = 126464, would need 6.5 GB). With ``S`` the stored tokens, ``r = 1 - p_i(S)``
  and ``R = 1 - m(S)``: the lower value ``js`` is the sum over ``S`` plus the JS term of
  the lumped remainder ``(r, R)`` (lumping tokens never increases an f-divergence: the
  data-processing inequality); the upper value ``js_upper`` adds ``(r + R) log(2) / 2``
  instead, because each token's term is at most ``(p + m) log(2) / 2``. Both are exact
  bounds; they coincide when prompt ``i`` has no mass outside ``S`` and their gap is
  ``O(r log(1/r))``. Both are reported, so the truncation is never taken on trust.
* skipped: ``js_support=0`` (``js`` is NaN), the cheapest probe.

Per batch the statistics are computed in place on the logits and in reused buffers (no
new ``B x n_masks x V`` tensors): a top-k, one exp and about four light passes over the
mask logits. ``benchmarks/bench_probe.py`` measures the cost against the bare forward
passes (goal: ratio <= 1.10). With an 8B model on a GPU that cost is small next to the
forward pass; with the small embedded model on a CPU the softmax-sized work is a sizeable
fraction of the forward pass, and the exact JS statistic roughly doubles it.
"""

from __future__ import annotations

import math
import time
import unicodedata
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
import torch

from dlmpaper.core.logits import sliceable_head, tail_logits
from dlmpaper.core.stats import resample_weights, weighted_bootstrap_interval

if TYPE_CHECKING:  # the protocol is a type only; core never imports dlmpaper.lm at run time
    from dlmpaper.lm.protocol import MaskedDiffusionLM

__all__ = [
    "DEFAULT_JS_SUPPORT",
    "JS_MEMORY_BUDGET",
    "STOP_WORDS",
    "STATISTICS",
    "ProbeBatch",
    "ProbeResult",
    "as_prompt_frame",
    "end_dominance_distance",
    "is_stop_or_punct",
    "modal_top1",
    "plan_batches",
    "position_summary",
    "positional_probe",
    "reference_probe",
    "strip_space_marker",
    "unigram_ranks_from_counts",
    "unigram_ranks_from_model",
    "validate_probe_args",
]

#: Tokens kept per prompt and position when the full distributions do not fit (module docstring).
DEFAULT_JS_SUPPORT = 1024
#: Bytes the full per-prompt distributions may take before ``js_support="auto"`` truncates (1 GiB).
JS_MEMORY_BUDGET = 1 << 30

#: A compact English stop-word list, written for this project: articles, pronouns and
#: possessives, auxiliaries and modals, prepositions, conjunctions, and a few frequent
#: adverbs and determiners. Matched in lower case against the token text with its
#: tokenizer space marker removed. (It is deliberately short; content words such as
#: "yes", "no", "cells" are never in it.)
STOP_WORDS: frozenset[str] = frozenset(
    """
    a an the this that these those some any each every all both no not nor
    i me my mine myself we us our ours ourselves you your yours yourself yourselves
    he him his himself she her hers herself it its itself they them their theirs themselves
    what which who whom whose where when why how
    am is are was were be been being have has had having do does did doing done
    will would shall should can could may might must
    of to in on at by for with from about as into onto over under through between
    after before during above below up down out off again further than then
    and or but if so because while until though although
    there here also just only very too more most other such own same
    s t d ll m re ve
    """.split()
)

#: Statistic names of :func:`position_summary` in output order.
STATISTICS = (
    "entropy",
    "top1_prob",
    "end_share",
    "stop_punct_share",
    "top1_freq_class",
    "js_divergence",
    "js_divergence_upper",
)

_SPACE_MARKERS = ("\u0120", "\u2581", "\u010a", "\u0109")  # Ġ (space), ▁ (SentencePiece), Ċ (\n), ĉ (\t)
_LOG2 = math.log(2.0)


# --------------------------------------------------------------------------- validation
def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def validate_probe_args(
    n_masks: int,
    top_k: int,
    n_prompts: int | None,
    max_length: int | None = None,
    vocab_size: int | None = None,
) -> None:
    """Check probe arguments before any model loads (CLI and notebook 03 call it first).

    ``n_masks >= 1`` and, when ``max_length`` is known, at least one prompt token plus
    the masks fit the context (each prompt is checked again once encoded);
    ``1 <= top_k <= vocab_size``; ``n_prompts >= 1`` (None = all prompts). Raises a
    one-line ``ValueError`` naming the fix.
    """
    if not _is_int(n_masks) or n_masks < 1:
        raise ValueError(f"n_masks must be an integer >= 1 (the paper uses 128), got {n_masks!r}")
    if not _is_int(top_k) or top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1 (the paper reads the top 3), got {top_k!r}")
    if n_prompts is not None and (not _is_int(n_prompts) or n_prompts < 1):
        raise ValueError(f"n_prompts must be an integer >= 1 (the paper uses 100), got {n_prompts!r}")
    if max_length is not None and n_masks + 1 > max_length:
        raise ValueError(
            f"n_masks={n_masks} does not fit the model's context of {max_length} tokens together with a "
            f"prompt; use at most {max_length - 1} masks (fewer for long prompts)"
        )
    if vocab_size is not None and top_k > vocab_size:
        raise ValueError(f"top_k={top_k} exceeds the vocabulary of {vocab_size} tokens; use a smaller --top-k")


# --------------------------------------------------------------------------- token classes
def strip_space_marker(text: str) -> str:
    """Token text without BPE / SentencePiece space markers (Ġ, ▁, Ċ) and surrounding whitespace."""
    for marker in _SPACE_MARKERS:
        text = text.replace(marker, " ")
    return text.strip()


def is_stop_or_punct(text: str) -> bool:
    """Whether a token's text is a stop word (:data:`STOP_WORDS`), punctuation or whitespace.

    Punctuation: every character is in a Unicode punctuation (``P*``) or symbol (``S*``)
    category. A token that is only whitespace (``"\\n"``, ``" "``) counts as well: like
    punctuation it carries layout, not content. Empty text and special tokens such as
    ``<|endoftext|>`` do not count. Used for ``stop_punct_share`` (notebook 03).
    """
    if not text:
        return False
    core = strip_space_marker(text)
    if not core:
        return True  # whitespace-only token
    if core.lower() in STOP_WORDS:
        return True
    return all(unicodedata.category(ch)[0] in "PS" for ch in core)


# --------------------------------------------------------------------------- prompts and batches
def as_prompt_frame(prompts: pd.DataFrame | Sequence[str]) -> pd.DataFrame:
    """``prompts`` as a frame with ``prompt_id`` (str) and ``prompt``; a list gets ids ``prompt-0000``..."""
    if isinstance(prompts, pd.DataFrame):
        missing = {"prompt_id", "prompt"} - set(prompts.columns)
        if missing:
            raise ValueError(
                f"prompts DataFrame lacks column(s) {sorted(missing)}; load it with dlmpaper.prompts.load_prompts"
            )
        frame = prompts[["prompt_id", "prompt"]].reset_index(drop=True).copy()
        frame["prompt_id"] = frame["prompt_id"].astype(str)
    elif isinstance(prompts, str):
        raise TypeError("prompts must be a DataFrame or a list of strings, not one string; wrap it: [prompt]")
    else:
        texts = list(prompts)
        frame = pd.DataFrame({"prompt_id": [f"prompt-{i:04d}" for i in range(len(texts))], "prompt": texts})
    if frame.empty:
        raise ValueError("no prompts given: the probe needs at least one")
    bad = [i for i, p in enumerate(frame["prompt"]) if not isinstance(p, str)]
    if bad:
        raise TypeError(f"prompt {frame['prompt_id'][bad[0]]!r} is not a string")
    if frame["prompt_id"].duplicated().any():
        dup = frame["prompt_id"][frame["prompt_id"].duplicated()].iloc[0]
        raise ValueError(f"duplicate prompt_id {dup!r}: ids must be unique")
    return frame


@dataclass
class ProbeBatch:
    """One forward pass of the probe: ``rows`` index the prompt frame; tensors from ``model.batch``."""

    rows: list[int]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor


def plan_batches(
    model,
    prompts: pd.DataFrame | Sequence[str],
    n_masks: int = 128,
    batch_size: int = 8,
    *,
    too_long: str = "error",
) -> tuple[pd.DataFrame, list[ProbeBatch]]:
    """Encode prompts (chat template), append ``n_masks`` masks, left-pad into batches.

    Prompts are sorted by length (longest first, stable) so a batch wastes little on
    padding and an out-of-memory error shows on the first batch. Left padding does not
    change results (tests/unit/test_probe.py checks it). Returns the prompt frame (with
    ``n_prompt_tokens``; prompts dropped by ``too_long="skip"`` removed) and the batches.
    :func:`positional_probe` and ``benchmarks/bench_probe.py`` share this plan.
    """
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if too_long not in ("error", "skip"):
        raise ValueError(f"too_long must be 'error' or 'skip', got {too_long!r}")
    validate_probe_args(n_masks, 1, None, getattr(model, "max_length", None))
    frame = as_prompt_frame(prompts)
    encoded = [model.encode_chat(p) for p in frame["prompt"]]
    frame["n_prompt_tokens"] = [len(e) for e in encoded]
    limit = getattr(model, "max_length", None)
    if limit is not None:
        over = frame.index[frame["n_prompt_tokens"] + n_masks > limit].tolist()
        if over and too_long == "error":
            first = frame.loc[over[0]]
            raise ValueError(
                f"prompt {first['prompt_id']!r} has {first['n_prompt_tokens']} tokens; with {n_masks} masks that "
                f"exceeds {getattr(model, 'name', 'the model')}'s context of {limit} ({len(over)} prompt(s) too "
                "long); use fewer masks, shorter prompts, or too_long='skip'"
            )
        if over:
            warnings.warn(
                f"skipping {len(over)} prompt(s) longer than {limit - n_masks} tokens: "
                + ", ".join(frame.loc[over, "prompt_id"].tolist()[:5])
                + (" ..." if len(over) > 5 else ""),
                stacklevel=2,
            )
            keep = [i for i in range(len(frame)) if i not in set(over)]
            if not keep:
                raise ValueError(f"every prompt is too long for {n_masks} masks in a context of {limit}")
            frame = frame.loc[keep].reset_index(drop=True)
            encoded = [encoded[i] for i in keep]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    batches = []
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        input_ids, attention = model.batch([encoded[i] for i in rows], n_masks)
        batches.append(ProbeBatch(rows=rows, input_ids=input_ids, attention_mask=attention))
    return frame, batches


# --------------------------------------------------------------------------- result
@dataclass
class ProbeResult:
    """What :func:`positional_probe` returns (notebook 03).

    ``table``: tidy top-k, one row per (prompt_id, position 1..n_masks, rank 1..top_k)
    with ``token_id``, ``token`` (text), ``prob``. ``per_prompt``: one row per
    (prompt_id, position) with ``entropy`` (nats), ``top1_id``, ``top1_token``,
    ``top1_prob``, ``top1_is_end``, ``js`` and ``js_upper`` (JS divergence to the mean
    over prompts, nats; equal when ``js_support == vocab_size``, else a bracket, see the
    module docstring). ``js_support``: tokens kept per prompt and position. ``mean_probs``:
    ``(n_masks, V)`` float64 mean predicted distribution over prompts. ``prompts``:
    ``prompt_id``, ``prompt``, ``n_prompt_tokens`` in the order of the rows above.
    """

    table: pd.DataFrame
    per_prompt: pd.DataFrame
    mean_probs: np.ndarray
    prompts: pd.DataFrame
    n_masks: int
    top_k: int
    js_support: int
    vocab_size: int
    end_ids: tuple[int, ...]
    model_name: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_prompts(self) -> int:
        return len(self.prompts)

    @property
    def prompt_ids(self) -> list[str]:
        return self.prompts["prompt_id"].tolist()

    def matrix(self, column: str) -> np.ndarray:
        """``per_prompt[column]`` as an ``(n_prompts, n_masks)`` array (prompt order, position order)."""
        values = self.per_prompt[column].to_numpy()
        return values.reshape(self.n_prompts, self.n_masks)

    def mean_top(self, k: int = 3, token_text=None) -> pd.DataFrame:
        """Top-``k`` tokens of the mean distribution per position (position, rank, token_id, prob)."""
        probs = torch.from_numpy(self.mean_probs)
        vals, idx = torch.topk(probs, min(k, self.vocab_size), dim=-1)
        frame = pd.DataFrame(
            {
                "position": np.repeat(np.arange(1, self.n_masks + 1), vals.shape[1]),
                "rank": np.tile(np.arange(1, vals.shape[1] + 1), self.n_masks),
                "token_id": idx.reshape(-1).numpy(),
                "prob": vals.reshape(-1).numpy(),
            }
        )
        if token_text is not None:
            frame.insert(3, "token", token_text(frame["token_id"].tolist()))
        return frame


class _Accumulator:
    """Per-batch statistics of the probe, kept small (one pass, see the module docstring)."""

    def __init__(self, n_prompts: int, n_masks: int, vocab: int, top_k: int, js_support: int, device):
        self.n, self.m, self.v = n_prompts, n_masks, vocab
        self.top_k = top_k
        self.skip_js = js_support == 0
        self.full = js_support >= vocab
        self.js_k = vocab if self.full else js_support
        self.device = torch.device(device)
        # float64 sum and the JS store live with the model (mps has no float64: CPU there)
        self.store = torch.device("cpu") if self.device.type == "mps" else self.device
        self.prob_sum = torch.zeros((n_masks, vocab), dtype=torch.float64, device=self.store)
        self._work: torch.Tensor | None = None  # reused (B, n_masks, V) buffer
        self.entropy = torch.empty((n_prompts, n_masks), dtype=torch.float64)
        self.top_ids = torch.empty((n_prompts, n_masks, top_k), dtype=torch.long)
        self.top_probs = torch.empty((n_prompts, n_masks, top_k), dtype=torch.float64)
        # full: every batch's distributions (the logits tensor, turned into p in place: no copy, no new
        # memory); truncated: the top-K probabilities and their ids; skip: nothing
        self.kept: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.js_probs = (
            None
            if self.full or self.skip_js
            else torch.empty((n_prompts, n_masks, self.js_k), dtype=torch.float32, device=self.store)
        )
        self.js_ids = (
            None
            if self.full or self.skip_js
            else torch.empty((n_prompts, n_masks, self.js_k), dtype=torch.int32, device=self.store)
        )
        self.seen = torch.zeros(n_prompts, dtype=torch.bool)

    def _buffer(self, like: torch.Tensor) -> torch.Tensor:
        b = like.shape[0]
        if self._work is None or self._work.shape[0] < b or self._work.shape[1:] != like.shape[1:]:
            self._work = torch.empty(like.shape, dtype=torch.float32, device=like.device)
        return self._work[:b]

    @torch.no_grad()
    def add(self, rows: list[int], mask_logits: torch.Tensor) -> None:
        """Fold in float32 logits ``(B, n_masks, V)`` at the mask positions of prompts ``rows``.

        ``mask_logits`` is overwritten (it ends up holding the distributions, which the full
        JS store keeps): pass a tensor you own. With ``z = logit - max``, ``e = exp z``,
        ``s = sum e``: ``p = e / s`` and the entropy is ``H = log s - sum(e z) / s``. Five
        elementwise passes over the batch (shift, exp, product, sum, scale) plus a chunked
        maximum for the top-k (:func:`_topk_last`); nothing of size ``B x n_masks x V`` is
        allocated after the first batch.
        """
        x = mask_logits if mask_logits.dtype == torch.float32 else mask_logits.float()
        k = self.top_k if self.full or self.skip_js else max(self.top_k, self.js_k)
        top_vals, top_ids = _topk_last(x, k)  # sorted: top_vals[..., 0] is the row max
        peak = top_vals[..., :1]
        if not bool(torch.isfinite(peak).all()):
            raise ValueError("the model returned NaN or all -inf logits at a mask position; check the checkpoint")
        x.sub_(peak)  # z
        e = torch.exp(x, out=self._buffer(x))
        s = e.sum(-1)  # (B, M), >= 1
        dots = x.mul_(e).sum(-1)  # sum(e z); x is scratch from here on
        bad = ~torch.isfinite(dots)
        if bool(bad.any()):  # -inf logits give 0 * -inf: those terms are 0
            dots[bad] = x[bad].nan_to_num_(nan=0.0).sum(-1)
        entropy = torch.log(s) - dots / s
        inv_s = s.reciprocal().unsqueeze(-1)
        p = torch.mul(e, inv_s, out=x)  # the distributions, in the caller's tensor
        self.prob_sum += p.sum(0).to(self.store, torch.float64)
        top_p = (top_vals - peak).exp_().mul_(inv_s)
        index = torch.as_tensor(rows, dtype=torch.long)
        self.entropy[index] = entropy.double().cpu()
        self.top_ids[index] = top_ids[..., : self.top_k].cpu()
        self.top_probs[index] = top_p[..., : self.top_k].double().cpu()
        if self.full:
            kept = p if p.device == self.store and p.is_contiguous() else p.to(self.store).contiguous()
            self.kept.append((index, kept))
        elif not self.skip_js:
            store_index = index.to(self.store)
            self.js_probs.index_copy_(0, store_index, top_p[..., : self.js_k].to(self.store))
            self.js_ids.index_copy_(0, store_index, top_ids[..., : self.js_k].to(self.store, torch.int32))
        self.seen[index] = True

    def mean(self) -> torch.Tensor:
        """Mean distribution over prompts, ``(n_masks, V)`` float64 on the store device."""
        return self.prob_sum / self.n

    @torch.no_grad()
    def js(self, mean: torch.Tensor, chunk: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """Lower/upper bounds of JS(p_i, mean) per (prompt, position); equal when nothing is truncated.

        Full store: ``JS = H(a) - H(p)/2 - H(m)/2`` with ``a = (p + m)/2``, so only ``H(a)``
        needs a pass over the vocabulary (one add, one log, one product and one sum per
        element, float32, in place on the kept distributions, which are released here).
        """
        lower = torch.empty((self.n, self.m), dtype=torch.float64)
        upper = torch.empty((self.n, self.m), dtype=torch.float64)
        if self.skip_js:
            lower.fill_(float("nan"))
            return lower.numpy(), lower.numpy().copy()
        if self.full:
            m32 = mean.float()
            h_mean = -(mean * torch.log(mean)).nan_to_num_(nan=0.0).sum(-1)  # (M,) float64, 0 log 0 = 0
            h_p = self.entropy.to(self.store)
            log_buf = None
            while self.kept:
                index, a2 = self.kept.pop(0)
                a2.add_(m32)  # p + m = 2a (the kept p is not needed again)
                if log_buf is None or log_buf.shape[0] < a2.shape[0]:
                    log_buf = torch.empty_like(a2)
                terms = torch.log(a2, out=log_buf[: a2.shape[0]]).mul_(a2)
                dots = terms.sum(-1).double()
                bad = ~torch.isfinite(dots)
                if bool(bad.any()):  # tokens no prompt can produce: 0 log 0 = 0
                    dots[bad] = torch.xlogy(a2[bad], a2[bad]).sum(-1).double()
                h_a = _LOG2 - 0.5 * dots  # sum a log a = dots/2 - log 2
                value = (h_a - 0.5 * h_p[index.to(self.store)] - 0.5 * h_mean).clamp(min=0.0).cpu()
                lower[index] = upper[index] = value
                del a2
            return lower.numpy(), upper.numpy()
        for start in range(0, self.n, chunk):
            stop = min(start + chunk, self.n)
            p = self.js_probs[start:stop].double()
            ids = self.js_ids[start:stop].long()
            m = mean.unsqueeze(0).expand(stop - start, -1, -1).gather(2, ids)
            inside = _js_terms(p, m).sum(-1)
            r = (1.0 - p.sum(-1)).clamp(min=0.0)
            big_r = (1.0 - m.sum(-1)).clamp(min=0.0)
            lower[start:stop] = (inside + _js_terms(r, big_r)).cpu()
            upper[start:stop] = (inside + 0.5 * (r + big_r) * _LOG2).cpu()
        return lower.clamp(min=0.0).numpy(), upper.clamp(min=0.0).numpy()


#: Chunk width of :func:`_topk_last` (a few cache lines of float32).
_TOPK_CHUNK = 64


def _topk_last(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk(x, k, dim=-1)`` (sorted) in about one read of ``x`` for small ``k``.

    The row is cut into chunks of :data:`_TOPK_CHUNK`; the ``k`` largest entries lie in the
    ``k`` chunks with the largest maxima (a chunk holding one of them has a maximum at least
    that large, and at most ``k - 1`` other chunks can beat it), so a vectorised chunk maximum
    plus a top-k over ``k`` chunks gives the same values; among exactly tied values the
    chosen ids may differ from ``torch.topk``'s (which leaves ties unspecified as well).
    ``torch.topk`` copies and partially sorts every row, 5-8x the cost of the chunk maximum.
    """
    v = x.shape[-1]
    c = _TOPK_CHUNK
    if k > 8 or v < 32 * c or x.stride(-1) != 1:
        return torch.topk(x, k, dim=-1)
    whole = v - v % c
    chunk_max = x[..., :whole].unflatten(-1, (whole // c, c)).amax(-1)
    if whole < v:
        chunk_max = torch.cat([chunk_max, x[..., whole:].amax(-1, keepdim=True)], dim=-1)
    chunks = torch.topk(chunk_max, k, dim=-1).indices  # (..., k)
    cols = (chunks.unsqueeze(-1) * c + torch.arange(c, device=x.device)).flatten(-2)  # (..., k*c)
    outside = cols >= v
    candidates = x.gather(-1, cols.clamp(max=v - 1))
    if bool(outside.any()):
        candidates.masked_fill_(outside, float("-inf"))
    vals, where = torch.topk(candidates, k, dim=-1)
    return vals, cols.gather(-1, where)


def _js_terms(p: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Per-atom JS term ``p/2 log(p/a) + m/2 log(m/a)``, ``a = (p+m)/2`` (0 log 0 = 0), clamped at 0."""
    a = 0.5 * (p + m)
    terms = 0.5 * torch.xlogy(p, p) + 0.5 * torch.xlogy(m, m) - torch.xlogy(a, a)
    return terms.clamp(min=0.0)


def _resolve_js_support(js_support, n_prompts: int, n_masks: int, vocab: int) -> int:
    """Tokens kept per prompt and position (``vocab`` = full distributions, exact JS)."""
    if js_support is None:
        return vocab
    if isinstance(js_support, str):
        full_bytes = n_prompts * n_masks * vocab * 4
        return vocab if full_bytes <= JS_MEMORY_BUDGET else min(DEFAULT_JS_SUPPORT, vocab)
    return min(int(js_support), vocab)


def _token_texts(model, ids: np.ndarray) -> dict[int, str]:
    unique = sorted({int(i) for i in np.unique(ids)})
    return dict(zip(unique, model.token_text(unique)))


# --------------------------------------------------------------------------- the probe
def positional_probe(
    model: MaskedDiffusionLM,
    prompts: pd.DataFrame | Sequence[str],
    n_masks: int = 128,
    top_k: int = 3,
    batch_size: int = 8,
    progress: bool = True,
    *,
    js_support: int | str | None = "auto",
    too_long: str = "error",
    mask_head_only: bool = True,
) -> ProbeResult:
    """Paper §4 issue (i): ``n_masks`` masks after each chat prompt, one forward pass, top-k per position.

    ``model`` is a :class:`dlmpaper.lm.models.DiffusionLM` (CPU or CUDA; it decides the
    dtype, logits come back float32). One forward pass per batch of ``batch_size``
    prompts, under ``torch.no_grad()``. Per batch it keeps only: entropy, the top-k, a
    running sum of the distributions, and what the JS divergence to the mean needs
    (module docstring): ``js_support="auto"`` keeps full distributions when they fit
    :data:`JS_MEMORY_BUDGET` (exact) and the top :data:`DEFAULT_JS_SUPPORT` tokens
    otherwise (certified bracket ``js <= JS <= js_upper``); ``None`` forces full, an
    integer sets the number of tokens kept, ``0`` skips the statistic (``js`` is NaN). ``too_long="skip"`` drops prompts that do
    not fit the context instead of raising. ``progress`` shows a tqdm bar.
    ``mask_head_only`` (default) computes the vocabulary projection at the mask positions
    only when the model allows it (:func:`dlmpaper.core.logits.tail_logits`; same numbers, less work); False
    always takes ``model.logits`` at every position. In bfloat16/float16 each prompt gets its own
    forward pass whatever ``batch_size`` says: 16-bit logits change in the last bits with padding
    and batch shape, and one prompt per pass keeps the tables independent of batch composition
    (``meta["batch_size_used"]``); in float32 batching is exact to ~1e-5 and is used as asked.
    Notebook 03_positional_probe; CLI ``dlmpaper probe``.
    """
    validate_probe_args(n_masks, top_k, None, model.max_length, model.vocab_size)
    if not (
        js_support is None
        or (isinstance(js_support, str) and js_support == "auto")
        or (_is_int(js_support) and js_support >= 0)
    ):
        raise ValueError(
            f"js_support must be 'auto', None (full distributions, exact), 0 (skip) or an integer >= 1, "
            f"got {js_support!r}"
        )
    started = time.perf_counter()
    used_batch_size = 1 if getattr(model, "dtype", torch.float32) in (torch.bfloat16, torch.float16) else batch_size
    frame, batches = plan_batches(model, prompts, n_masks, used_batch_size, too_long=too_long)
    js_support = _resolve_js_support(js_support, len(frame), n_masks, model.vocab_size)
    acc = _Accumulator(len(frame), n_masks, model.vocab_size, top_k, js_support, model.device)

    iterator = batches
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(batches, desc=f"probe {getattr(model, 'name', '')}".strip(), unit="batch")
    head = sliceable_head(model) if mask_head_only else None
    with torch.no_grad():
        for batch in iterator:
            logits = tail_logits(model, batch.input_ids, batch.attention_mask, n_masks, head)
            if logits.shape[-1] != model.vocab_size:
                raise ValueError(f"model returned {logits.shape[-1]} logits per position, expected {model.vocab_size}")
            acc.add(batch.rows, logits)  # overwrites logits (ours; the full JS store keeps them)
            del logits
    assert bool(acc.seen.all()), "every prompt must be in exactly one batch"
    mean = acc.mean()
    js_low, js_up = acc.js(mean)
    forward_done = time.perf_counter()

    end_ids = tuple(int(i) for i in getattr(model, "end_ids", ()))
    n = len(frame)
    ids = frame["prompt_id"].to_numpy()
    top_ids = acc.top_ids.numpy()
    texts = _token_texts(model, top_ids)
    lookup = np.vectorize(texts.__getitem__, otypes=[object])
    table = pd.DataFrame(
        {
            "prompt_id": np.repeat(ids, n_masks * top_k),
            "position": np.tile(np.repeat(np.arange(1, n_masks + 1), top_k), n),
            "rank": np.tile(np.arange(1, top_k + 1), n * n_masks),
            "token_id": top_ids.reshape(-1),
            "token": lookup(top_ids.reshape(-1)),
            "prob": acc.top_probs.numpy().reshape(-1),
        }
    )
    top1 = top_ids[..., 0].reshape(-1)
    per_prompt = pd.DataFrame(
        {
            "prompt_id": np.repeat(ids, n_masks),
            "position": np.tile(np.arange(1, n_masks + 1), n),
            "entropy": acc.entropy.numpy().reshape(-1),
            "top1_id": top1,
            "top1_token": lookup(top1),
            "top1_prob": acc.top_probs.numpy()[..., 0].reshape(-1),
            "top1_is_end": np.isin(top1, np.asarray(end_ids, dtype=np.int64)),
            "js": js_low.reshape(-1),
            "js_upper": js_up.reshape(-1),
        }
    )
    meta = {
        "model": getattr(model, "name", None),
        "hub_id": getattr(model, "hub_id", None),
        "device": str(getattr(model, "device", "")),
        "dtype": str(getattr(model, "dtype", "")).removeprefix("torch."),
        "batch_size": batch_size,
        "batch_size_used": used_batch_size,
        "n_batches": len(batches),
        "js_exact": js_support >= model.vocab_size,
        "js_support": js_support,
        "seconds_forward_and_stats": forward_done - started,
        "seconds_total": time.perf_counter() - started,
    }
    return ProbeResult(
        table=table,
        per_prompt=per_prompt,
        mean_probs=mean.cpu().numpy(),
        prompts=frame,
        n_masks=n_masks,
        top_k=top_k,
        js_support=js_support,
        vocab_size=model.vocab_size,
        end_ids=end_ids,
        model_name=str(getattr(model, "name", "")),
        meta=meta,
    )


# --------------------------------------------------------------------------- reference ranks
def reference_probe(model: MaskedDiffusionLM, prompt: str, n_masks: int = 128, top_k: int = 3) -> pd.DataFrame:
    """The §4 probe written as plainly as possible, for one prompt: the chat-rendered prompt and
    ``n_masks`` mask tokens, one forward pass, softmax at each mask position, its top-``k`` and its
    entropy. No batching, padding, head slicing or streaming statistics: :func:`positional_probe`
    (the fast path notebook 03 uses) is tested against it (tests/unit/test_probe_reference.py).

    Tidy rows ``position`` (1-based), ``rank``, ``token_id``, ``prob``, ``entropy`` (nats, the
    same for every rank of a position).
    """
    ids = torch.tensor([model.encode_chat(prompt) + [model.mask_id] * n_masks], device=model.device)
    with torch.no_grad():
        logits = model.logits(ids, torch.ones_like(ids))[0, -n_masks:].double()
    probs = torch.softmax(logits, dim=-1)
    entropy = -(probs * torch.log(probs.clamp_min(1e-300))).sum(dim=-1)
    top, idx = torch.topk(probs, top_k, dim=-1)
    return pd.DataFrame(
        {
            "position": np.repeat(np.arange(1, n_masks + 1), top_k),
            "rank": np.tile(np.arange(1, top_k + 1), n_masks),
            "token_id": idx.reshape(-1).cpu().numpy(),
            "prob": top.reshape(-1).cpu().numpy(),
            "entropy": np.repeat(entropy.cpu().numpy(), top_k),
        }
    )


def _ranks_from_scores(scores: np.ndarray) -> pd.Series:
    """1-based ranks, highest score first, ties broken by token id (deterministic)."""
    order = np.lexsort((np.arange(len(scores)), -np.asarray(scores, dtype=np.float64)))
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return pd.Series(ranks, index=pd.RangeIndex(len(scores), name="token_id"), name="rank")


@torch.no_grad()
def unigram_ranks_from_model(model: MaskedDiffusionLM, n_masks: int = 128) -> pd.Series:
    """The model's own unigram ranks: an empty chat prompt plus ``n_masks`` masks, one pass.

    The predicted distributions at the mask positions are averaged and tokens ranked by
    that mean (1 = most likely; ties by id). A reference for the frequency class of the
    probe's top-1 tokens that needs no corpus (notebook 03). Returns a Series
    ``token_id -> rank`` over the whole vocabulary.
    """
    validate_probe_args(n_masks, 1, None, model.max_length)
    input_ids, attention = model.batch([model.encode_chat("")], n_masks)
    logits = model.logits(input_ids, attention)[0, -n_masks:]
    mean = torch.softmax(logits, dim=-1).double().mean(0).cpu().numpy()
    return _ranks_from_scores(mean)


def unigram_ranks_from_counts(counts: Mapping[int, float] | pd.Series | np.ndarray | Sequence[float]) -> pd.Series:
    """Frequency ranks from token counts (e.g. of a corpus): 1 = most frequent, ties by id.

    ``counts`` maps token id -> count (a dict, Counter or Series), or is an array indexed
    by token id. Tokens absent from a mapping get no rank; :func:`position_summary` puts
    them after every ranked token. Returns a Series ``token_id -> rank``.
    """
    if isinstance(counts, Mapping) or isinstance(counts, pd.Series):
        items = pd.Series(counts, dtype=np.float64) if isinstance(counts, Mapping) else counts.astype(np.float64)
        if items.empty:
            raise ValueError("counts is empty: no tokens to rank")
        ids = np.asarray(items.index, dtype=np.int64)
        values = items.to_numpy()
        order = np.lexsort((ids, -values))
        return pd.Series(
            np.arange(1, len(ids) + 1), index=pd.Index(ids[order], name="token_id"), name="rank"
        ).sort_index()
    values = np.asarray(counts, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("counts must be a mapping token_id -> count or a non-empty 1-D array indexed by token id")
    return _ranks_from_scores(values)


def _rank_lookup(reference_ranks, vocab_size: int) -> np.ndarray:
    """Dense ``(vocab_size,)`` rank array; unranked tokens get (largest rank + 1)."""
    if isinstance(reference_ranks, np.ndarray) and not isinstance(reference_ranks, pd.Series):
        series = pd.Series(reference_ranks)
    else:
        series = pd.Series(reference_ranks) if isinstance(reference_ranks, Mapping) else reference_ranks
    if len(series) == 0:
        raise ValueError("reference_ranks is empty; build it with dlmpaper.core.probe.unigram_ranks_from_counts")
    dense = np.full(vocab_size, float(series.max()) + 1.0)
    ids = np.asarray(series.index, dtype=np.int64)
    ok = (ids >= 0) & (ids < vocab_size)
    dense[ids[ok]] = series.to_numpy(dtype=np.float64)[ok]
    if (dense < 1).any():
        raise ValueError("reference_ranks must be >= 1 (1 = most frequent token)")
    return dense


# --------------------------------------------------------------------------- summaries
def per_prompt_values(
    result: ProbeResult, reference_ranks: Mapping[int, float] | pd.Series | np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Each per-prompt statistic as an ``(n_prompts, n_masks)`` float64 array (paper §4, notebook 03).

    The statistics of :func:`position_summary` (``entropy``, ``top1_prob``, ``end_share``: top-1
    is an end token, ``stop_punct_share``: stop word / punctuation / whitespace with end tokens
    excluded, ``js_divergence`` / ``js_divergence_upper``, and with ``reference_ranks``
    ``top1_freq_class`` = ``floor(log2(rank))``) plus, for the figures, ``content_share``
    (neither end nor stop), ``modal_share`` (the top-1 is the most common top-1 over prompts at
    that position, :func:`modal_top1`: a prompt-independent "template" prediction) and
    ``top1_freq_class_nonend`` (NaN where the top-1 is an end token: a corpus of responses
    rarely counts EOS, so EOS would otherwise look like the rarest token). Shares are 0/1.
    """
    end = result.matrix("top1_is_end").astype(bool)
    stop = np.vectorize(is_stop_or_punct, otypes=[bool])(result.matrix("top1_token")) & ~end
    top1 = result.matrix("top1_id").astype(np.int64)
    out = {
        "entropy": result.matrix("entropy").astype(np.float64),
        "top1_prob": result.matrix("top1_prob").astype(np.float64),
        "end_share": end.astype(np.float64),
        "stop_punct_share": stop.astype(np.float64),
        "content_share": (~end & ~stop).astype(np.float64),
        "modal_share": (top1 == modal_top1(result)["token_id"].to_numpy()[None, :]).astype(np.float64),
        "js_divergence": result.matrix("js").astype(np.float64),
        "js_divergence_upper": result.matrix("js_upper").astype(np.float64),
    }
    if reference_ranks is not None:
        freq = np.floor(np.log2(_rank_lookup(reference_ranks, result.vocab_size)[top1]))
        out["top1_freq_class"] = freq
        out["top1_freq_class_nonend"] = np.where(end, np.nan, freq)
    return out


def position_summary(
    result: ProbeResult,
    reference_ranks: Mapping[int, float] | pd.Series | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per mask position, the mean over prompts with a bootstrap 95% CI (notebook 03, paper §4).

    Tidy long table: ``position``, ``statistic``, ``mean``, ``ci_low``, ``ci_high``,
    ``n_prompts``. Statistics (:data:`STATISTICS`):

    * ``entropy``: of the predicted distribution, nats;
    * ``top1_prob``: probability of the most likely token;
    * ``end_share``: share of prompts whose top-1 is an end token (``model.end_ids``);
    * ``stop_punct_share``: share whose top-1 is a stop word, punctuation or whitespace
      (:func:`is_stop_or_punct`);
    * ``top1_freq_class``: ``floor(log2(rank))`` of the top-1 token in ``reference_ranks``
      (token id -> rank, 1 = most frequent; e.g. :func:`unigram_ranks_from_model`), the
      Zipf form of the frequency class: 0 = the most frequent token, 1 = ranks 2-3,
      2 = ranks 4-7, ... Omitted when ``reference_ranks`` is None;
    * ``js_divergence`` / ``js_divergence_upper``: prompt-specificity, the JS divergence
      (nats, at most log 2) of each prompt's distribution to the mean over prompts; the
      two bracket the exact value (equal unless ``js_support`` truncated it).

    CIs resample prompts with replacement (``n_boot`` times, ``seed``), the same
    resamples for every position and statistic; the mean distribution in the JS
    statistic is held fixed (the CI covers prompt-to-prompt variation only).
    """
    if not _is_int(n_boot) or n_boot < 1:
        raise ValueError(f"n_boot must be an integer >= 1, got {n_boot!r}")
    values = per_prompt_values(result, reference_ranks)
    weights = resample_weights(result.n_prompts, n_boot, seed)
    frames = []
    positions = np.arange(1, result.n_masks + 1)
    for name in STATISTICS:
        if name not in values:
            continue
        x = np.asarray(values[name], dtype=np.float64)
        low, high = weighted_bootstrap_interval(x, weights)
        frames.append(
            pd.DataFrame(
                {
                    "position": positions,
                    "statistic": name,
                    "mean": x.mean(axis=0),
                    "ci_low": low,
                    "ci_high": high,
                    "n_prompts": x.shape[0],
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)  # statistics in STATISTICS order within each position
    return out.sort_values("position", kind="stable").reset_index(drop=True)


def end_dominance_distance(result: ProbeResult) -> pd.DataFrame:
    """Per prompt, the first mask position from which an end token is top-1 at every later position.

    Columns ``prompt_id``, ``end_dominance_position`` (1-based; NaN when the last
    position's top-1 is not an end token), ``n_end_top1`` (positions with an end token
    on top anywhere) and ``n_prompt_tokens``. Paper §4: "and finally end-of-sequence".
    """
    is_end = result.matrix("top1_is_end").astype(bool)  # (N, M)
    # suffix-all: True at j when every position >= j is an end token
    suffix = np.flip(np.logical_and.accumulate(np.flip(is_end, axis=1), axis=1), axis=1)
    has = suffix[:, -1]
    first = np.where(has, suffix.argmax(axis=1) + 1, np.nan)
    return pd.DataFrame(
        {
            "prompt_id": result.prompt_ids,
            "end_dominance_position": first.astype(np.float64),
            "n_end_top1": is_end.sum(axis=1),
            "n_prompt_tokens": result.prompts["n_prompt_tokens"].to_numpy(),
        }
    )


def modal_top1(result: ProbeResult) -> pd.DataFrame:
    """Per position, the most common top-1 token over prompts and its share (ties: lowest id).

    Columns ``position``, ``token_id``, ``token``, ``share``. The CLI's compact view and
    notebook 03's table of what the masks predict at each distance.
    """
    frame = result.per_prompt[["position", "top1_id", "top1_token"]]
    counts = frame.groupby(["position", "top1_id"], sort=True).size().rename("count").reset_index()
    counts = counts.sort_values(["position", "count", "top1_id"], ascending=[True, False, True], kind="stable")
    best = counts.drop_duplicates("position").reset_index(drop=True)
    texts = frame.drop_duplicates("top1_id").set_index("top1_id")["top1_token"]
    return pd.DataFrame(
        {
            "position": best["position"].to_numpy(),
            "token_id": best["top1_id"].to_numpy(),
            "token": texts.reindex(best["top1_id"]).to_numpy(),
            "share": best["count"].to_numpy() / result.n_prompts,
        }
    )
