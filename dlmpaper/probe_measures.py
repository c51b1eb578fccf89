"""Probe measures that can fail (paper §4, issue (i)): each against a mismatched-prompt baseline.

The paper reads its 128-mask probe as "content of the prompt near the prompt, generic tokens
and EOS far away". Entropy, JS-to-the-mean and a "content share" cannot tell prompt content
from an answer template shared by every prompt, or from subword noise; a model that ignores
its prompt can pass them. The measures here compare each prompt with *itself* and with
*another* prompt (a fixed derangement, :func:`derangement`), so a prompt-independent model
scores the same on both and its excess is zero:

* :func:`copy_rate`: share of prompts whose top-k at a position (or in a window) holds a
  word-initial content token of their own prompt, against the same share scored with another
  prompt's content tokens;
* :func:`gold_recall`: share of the gold answer's content tokens found in the top-k within a
  window of positions, against another prompt's gold answer, per window (near vs far);
* :func:`end_length_correlation`: Spearman correlation of the end-dominance position (where EOS
  wins for good) with the gold answer's length, which is 0 for a model that ends every answer
  at the same place;
* :func:`verdicts`: notebook 03's verdict lines, each "supported" only when the measure
  separates from its baseline or null by non-overlapping 95% CIs.

:class:`PromptIgnoringModel` is the negative control (same logits whatever the prompt);
shuffling the gold answers over prompts is the other (:func:`shuffled_answers`). Both must make
the verdicts say "NOT supported" (tests/test_probe_measures.py); notebook 03 prints both next
to the real model. All intervals are 95% percentile bootstraps over prompts (fixed seed).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from .figures_probe import compare_windows
from .probe import STOP_WORDS, ProbeResult, end_dominance_distance
from .stats import bootstrap_mean, bootstrap_statistic, spearman

__all__ = [
    "DEFAULT_RECALL_WINDOWS",
    "JS_NOISE_FLOOR",
    "TEMPLATE_WORDS",
    "PromptIgnoringModel",
    "answer_lengths",
    "content_token_sets",
    "copy_rate",
    "derangement",
    "end_length_correlation",
    "gold_recall",
    "probe_evidence",
    "shuffled_answers",
    "topk_ids",
    "verdicts",
]

#: Words that carry a question's or an answer's template, not its content: never counted as
#: copied content (question words, "word", "mean", "example", part-of-speech names ...).
TEMPLATE_WORDS: frozenset[str] = frozenset(
    """
    what does mean meaning means meant define definition word words tell about explain explained explanation
    describe detail give example examples sentence write use used using kind kinds thing things category
    belong belongs another synonym synonyms antonym antonyms opposite part parts difference between compare
    different call called real english exist spell letters many much name short brief briefly know term
    noun verb adjective adverb similar also like yes please answer question
    should would could some one everything hacker hackers slang jargon file origin come comes devil devils
    dictionary ambrose bierce cynical element chemical symbol atomic number weight heavy heavier protons atom
    stands stand which have has people say said
    """.split()
)

#: Jensen-Shannon divergences (nats) below this are rounding, not prompt-specificity: a model that
#: ignores its prompt gets ~1e-8 near the prompt from batch-dependent float32 sums, not exactly 0.
JS_NOISE_FLOOR = 1e-4

#: Equal-width position windows of :func:`gold_recall` (16 positions each, 1-128).
DEFAULT_RECALL_WINDOWS: tuple[tuple[int, int], ...] = tuple((lo, lo + 15) for lo in range(1, 128, 16))

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


def derangement(n: int) -> np.ndarray:
    """The fixed derangement ``i -> (i + 1) mod n``: prompt ``i`` is scored against prompt ``i+1``'s
    tokens (the mismatched baseline). Needs ``n >= 2``."""
    if n < 2:
        raise ValueError(f"a mismatched baseline needs at least 2 prompts, got {n}")
    return (np.arange(n) + 1) % n


def content_token_sets(tokenizer, texts: Sequence[str], min_letters: int = 3,
                       exclude: frozenset[str] | None = None) -> list[frozenset[int]]:
    """Per text, the word-initial token ids of its content words.

    A content word has >= 3 letters and is not in ``exclude`` (default: :data:`dlmpaper.probe.STOP_WORDS`
    and :data:`TEMPLATE_WORDS`); its ids are the first token of the word as written, lower-cased and
    capitalised, each with and without a leading space, kept when that token has at least
    ``min_letters`` letters (so "a", "un", "-" never count as copied content). Works with any
    Hugging Face tokenizer (``add_special_tokens=False``).
    """
    exclude = STOP_WORDS | TEMPLATE_WORDS if exclude is None else exclude
    cache: dict[str, int | None] = {}

    def first_piece(variant: str) -> int | None:
        if variant not in cache:
            ids = tokenizer.encode(variant, add_special_tokens=False)
            keep = ids and sum(ch.isalpha() for ch in tokenizer.decode(ids[:1])) >= min_letters
            cache[variant] = int(ids[0]) if keep else None
        return cache[variant]

    out = []
    for text in texts:
        pieces = set()
        for word in _WORD.findall(str(text)):
            low = word.lower()
            if len(low) < 3 or low in exclude:
                continue
            for form in {word, low, low.capitalize()}:
                for variant in (form, " " + form):
                    piece = first_piece(variant)
                    if piece is not None:
                        pieces.add(piece)
        out.append(frozenset(pieces))
    return out


def topk_ids(result: ProbeResult) -> np.ndarray:
    """The probe's top-k token ids as an ``(n_prompts, n_masks, top_k)`` array in prompt order."""
    table = result.table.sort_values(["prompt_id", "position", "rank"], kind="stable")
    order = {pid: i for i, pid in enumerate(result.prompt_ids)}
    ids = table["token_id"].to_numpy().reshape(result.n_prompts, result.n_masks, result.top_k)
    rows = [order[pid] for pid in table["prompt_id"].to_numpy()[:: result.n_masks * result.top_k]]
    out = np.empty_like(ids)
    out[rows] = ids
    return out


def _mean_ci(values: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    """:func:`dlmpaper.stats.bootstrap_mean` over the rows that are not NaN (NaN if none)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    return bootstrap_mean(x, n_boot, seed) if len(x) else (float("nan"),) * 3


def _rows(measure: str, window: str, own: np.ndarray, mismatched: np.ndarray, n_boot: int, seed: int) -> list[dict]:
    rows = []
    for kind, values in (("own", own), ("mismatched", mismatched), ("excess", own - mismatched)):
        mean, low, high = _mean_ci(values, n_boot, seed)
        rows.append({"measure": measure, "window": window, "scored_against": kind, "mean": mean,
                     "ci_low": low, "ci_high": high, "n_prompts": int(np.sum(~np.isnan(values)))})
    return rows


def _window_label(window: tuple[int, int]) -> str:
    return f"{window[0]}-{window[1]}"


def _check_window(window: tuple[int, int], n_masks: int) -> None:
    lo, hi = window
    if not (1 <= lo <= hi <= n_masks):
        raise ValueError(f"window {window} must satisfy 1 <= first <= last <= n_masks = {n_masks}")


def _window_union(top: np.ndarray, window: tuple[int, int]) -> list[set[int]]:
    lo, hi = window
    return [set(row[lo - 1 : hi].ravel().tolist()) for row in top]


def _scored_against_baseline(result: ProbeResult, token_sets: Sequence[frozenset[int]],
                             windows: Sequence[tuple[int, int]], measure: str, score, n_boot: int,
                             seed: int) -> pd.DataFrame:
    """``score(top-k ids seen in a window, token set)`` per prompt with a non-empty set, against its
    own set and the next such prompt's (:func:`derangement`): the shared body of :func:`copy_rate`
    and :func:`gold_recall`."""
    if len(token_sets) != result.n_prompts:
        raise ValueError(f"{len(token_sets)} token sets for {result.n_prompts} prompts")
    keep = [i for i, tokens in enumerate(token_sets) if tokens]
    own_sets = [token_sets[i] for i in keep]
    mis_sets = [own_sets[j] for j in derangement(len(keep))]
    top = topk_ids(result)[keep]
    rows = []
    for window in windows:
        _check_window(window, result.n_masks)
        seen = _window_union(top, window)
        own = np.array([score(s, t) for s, t in zip(seen, own_sets)], dtype=float)
        mis = np.array([score(s, t) for s, t in zip(seen, mis_sets)], dtype=float)
        rows += _rows(measure, _window_label(window), own, mis, n_boot, seed)
    return pd.DataFrame(rows)


def copy_rate(result: ProbeResult, prompt_tokens: Sequence[frozenset[int]], windows: Sequence[tuple[int, int]] = ((1, 8),),
              *, by_position: bool = False, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Prompt-content copy rate: share of prompts whose top-k within a window holds one of their own
    prompt's content tokens (:func:`content_token_sets`), scored against their own tokens, against
    the next prompt's (:func:`derangement`) and the paired excess. Prompts without content tokens are
    left out (and are nobody's baseline). ``by_position``: one window per position instead.
    Tidy: measure, window, scored_against (own / mismatched / excess), mean, ci_low, ci_high, n_prompts.
    """
    if by_position:
        windows = [(p, p) for p in range(1, result.n_masks + 1)]
    return _scored_against_baseline(result, prompt_tokens, windows, "copy_rate", lambda seen, t: float(bool(seen & t)),
                                    n_boot, seed)


def gold_recall(result: ProbeResult, gold_tokens: Sequence[frozenset[int]],
                windows: Sequence[tuple[int, int]] = DEFAULT_RECALL_WINDOWS, *, n_boot: int = 1000,
                seed: int = 0) -> pd.DataFrame:
    """Gold-answer recall per window: share of a prompt's gold-answer content tokens found among the
    top-k at the window's positions, scored against its own answer, the next prompt's answer
    (:func:`derangement`) and the paired excess. Prompts whose answer has no content token are left
    out. Equal-width windows (default 16 positions) keep near and far comparable. Tidy, as
    :func:`copy_rate` (measure ``gold_recall``). Works for LIMA's assistant turns in the paper profile.
    """
    return _scored_against_baseline(result, gold_tokens, windows, "gold_recall", lambda seen, t: len(seen & t) / len(t),
                                    n_boot, seed)


def end_length_correlation(end_positions: Sequence[float], answer_lengths: Sequence[float], *, n_boot: int = 1000,
                           seed: int = 0) -> dict[str, float]:
    """Spearman correlation (average ranks) of the end-dominance position with the gold answer's
    length in tokens, with its 95% bootstrap CI over prompts (``rho``, ``ci_low``, ``ci_high``,
    ``n_prompts``). Prompts that never end in EOS (NaN position) are left out. NaN when either side
    is constant (a model that ends every answer at the same place)."""
    x, y = np.asarray(end_positions, dtype=float), np.asarray(answer_lengths, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"{len(x)} end positions for {len(y)} answer lengths")
    ok = ~(np.isnan(x) | np.isnan(y))
    pairs = np.stack([x[ok], y[ok]], axis=1)
    if np.isnan(spearman(pairs)):  # constant side: no interval either
        return {"rho": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n_prompts": len(pairs)}
    rho, low, high = bootstrap_statistic(pairs, spearman, n_boot, seed)
    return {"rho": rho, "ci_low": low, "ci_high": high, "n_prompts": len(pairs)}


def shuffled_answers(prompts: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The shuffled-answers negative control: ``prompts`` with its ``response`` column permuted
    over prompts (a seeded derangement-free shuffle that moves every answer); measures that use
    the gold answer must then show no excess over their mismatched baseline."""
    if "response" not in prompts.columns:
        raise ValueError("the prompt set has no 'response' column: nothing to shuffle")
    n = len(prompts)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    while n > 1 and np.any(order == np.arange(n)):  # every prompt gets another prompt's answer
        order = rng.permutation(n)
    out = prompts.copy()
    out["response"] = prompts["response"].to_numpy()[order]
    return out


def _verdict(ok: bool) -> str:
    return "supported" if ok else "NOT supported"


def _ci(mean: float, low: float, high: float) -> str:
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def _pick(frame: pd.DataFrame, window: str, against: str) -> pd.Series:
    return frame[(frame["window"] == window) & (frame["scored_against"] == against)].iloc[0]


def verdicts(js: dict, copy: pd.DataFrame, recall: pd.DataFrame | None, end_length: dict | None,
             *, near: str = "1-8", recall_near: str | None = None, recall_far: str | None = None) -> pd.DataFrame:
    """Notebook 03's verdict lines, each against its baseline or null (paper §4, issue (i)).

    1. prompt-specificity: JS near vs far (``dlmpaper.figures_probe.compare_windows``), null 0
       for a prompt-ignoring model; supported when the near CI lies above the far CI and the
       paired difference's CI above :data:`JS_NOISE_FLOOR`;
    2. prompt content near the prompt: copy-rate excess over the mismatched baseline in ``near``,
       supported when its CI lies above 0;
    3. gold-answer content near, not far: recall excess in the first window above the excess in the
       last (non-overlapping CIs) and above 0;
    4. EOS where the answer ends: Spearman rho of end-dominance position and gold length, CI above 0.
    Lines 3-4 need gold answers (``None``: "n/a"). Returns claim, numbers (text), verdict and
    ``reads`` (what the line depends on besides the probe: "prompt" or "gold answer"; the
    shuffled-answers control can only fail the "gold answer" lines).
    """
    lines = []
    ok = bool(js["near_low"] > js["far_high"] and js["diff_low"] > JS_NOISE_FLOOR)
    lines.append(("1. prompt-specificity (JS, nats) near 1-8 vs far 65-128",
                  f"{_ci(js['near'], js['near_low'], js['near_high'])} vs {_ci(js['far'], js['far_low'], js['far_high'])}",
                  _verdict(ok)))
    own, mis, exc = (_pick(copy, near, k) for k in ("own", "mismatched", "excess"))
    lines.append((f"2. own-prompt content in the top-k at {near}, minus another prompt's",
                  f"{_ci(own['mean'], own['ci_low'], own['ci_high'])} - {_ci(mis['mean'], mis['ci_low'], mis['ci_high'])}"
                  f" = {_ci(exc['mean'], exc['ci_low'], exc['ci_high'])}", _verdict(bool(exc["ci_low"] > 0))))
    if recall is None:
        lines.append(("3. gold-answer recall, near window vs far window (excess over another prompt's answer)", "n/a", "n/a"))
    else:
        labels = list(dict.fromkeys(recall["window"]))
        a = _pick(recall, recall_near or labels[0], "excess")
        b = _pick(recall, recall_far or labels[-1], "excess")
        ok = bool(a["ci_low"] > 0 and a["ci_low"] > b["ci_high"])
        lines.append((f"3. gold-answer recall excess, {a['window']} vs {b['window']}",
                      f"{_ci(a['mean'], a['ci_low'], a['ci_high'])} vs {_ci(b['mean'], b['ci_low'], b['ci_high'])}",
                      _verdict(ok)))
    if end_length is None:
        lines.append(("4. end-dominance position vs gold answer length (Spearman)", "n/a", "n/a"))
    else:
        rho = end_length
        numbers = "constant (no correlation defined)" if np.isnan(rho["rho"]) else _ci(rho["rho"], rho["ci_low"], rho["ci_high"])
        lines.append(("4. end-dominance position vs gold answer length (Spearman)", numbers,
                      _verdict(bool(rho["ci_low"] > 0))))
    reads = ["prompt", "prompt", "gold answer", "gold answer"]
    return pd.DataFrame([(*line, r) for line, r in zip(lines, reads)], columns=["claim", "numbers", "verdict", "reads"])


class PromptIgnoringModel:
    """Negative control: wraps a :class:`dlmpaper.models.DiffusionLM` so that every prompt gets the
    logits of one fixed prompt (the model's own output after ``fixed_prompt``), whatever it says.
    Everything else (tokenizer, ids, chat template, context) is the wrapped model's; the probe
    sees a model that ignores its prompt, and every verdict of :func:`verdicts` must fail on it."""

    padding_mode = "per_row"  # the probe takes full logits (no LM-head slicing through the wrapper)

    def __init__(self, model, fixed_prompt: str = ""):
        self._model = model
        self._fixed = list(model.encode_chat(fixed_prompt))
        self.name = f"{getattr(model, 'name', 'model')} (prompt ignored)"

    def __getattr__(self, name):
        return getattr(self._model, name)

    @torch.no_grad()
    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        n_masks = int((input_ids == self._model.mask_id).sum(dim=1).max())
        ids, attn = self._model.batch([self._fixed], n_masks)
        fixed = self._model.logits(ids, attn)[:, -n_masks:, :]
        out = torch.zeros(input_ids.shape[0], input_ids.shape[1], fixed.shape[-1], dtype=fixed.dtype, device=fixed.device)
        out[:, -n_masks:, :] = fixed
        return out


def answer_lengths(tokenizer, responses: Sequence[str]) -> np.ndarray:
    """Gold answer lengths in tokens (``add_special_tokens=False``), for :func:`end_length_correlation`."""
    return np.array([len(ids) for ids in tokenizer(list(responses), add_special_tokens=False)["input_ids"]], dtype=float)


def probe_evidence(result: ProbeResult, prompts: pd.DataFrame, tokenizer, *, near: tuple[int, int] = (1, 8),
                   n_boot: int = 1000, seed: int = 0) -> dict:
    """Every measure of this module on one probe run, and notebook 03's verdict lines (paper §4).

    ``prompts`` is the prompt set the probe ran on (``prompt_id``, ``prompt``, optional ``response``;
    any row order). Returns ``js`` (:func:`dlmpaper.figures_probe.compare_windows`, near vs 65-128),
    ``copy`` (:func:`copy_rate` in ``near``), ``copy_by_window`` (in :data:`DEFAULT_RECALL_WINDOWS`),
    ``recall`` and ``end_length`` (``None`` without gold answers) and ``verdicts`` (:func:`verdicts`).
    Notebook 03 calls it for the model and for both negative controls.
    """
    frame = prompts.set_index("prompt_id").loc[result.prompt_ids].reset_index()
    js = compare_windows(result, "js_divergence", near, (65, result.n_masks), n_boot=n_boot, seed=seed)
    prompt_tokens = content_token_sets(tokenizer, frame["prompt"].tolist())
    copy = copy_rate(result, prompt_tokens, (near,), n_boot=n_boot, seed=seed)
    copy_by_window = copy_rate(result, prompt_tokens, DEFAULT_RECALL_WINDOWS, n_boot=n_boot, seed=seed)
    recall = end_length = None
    if "response" in frame.columns:
        recall = gold_recall(result, content_token_sets(tokenizer, frame["response"].tolist()), n_boot=n_boot, seed=seed)
        ends = end_dominance_distance(result).set_index("prompt_id").loc[result.prompt_ids, "end_dominance_position"]
        end_length = end_length_correlation(ends.to_numpy(), answer_lengths(tokenizer, frame["response"]),
                                            n_boot=n_boot, seed=seed)
    table = verdicts(js, copy, recall, end_length, near=_window_label(near))
    return {"js": js, "copy": copy, "copy_by_window": copy_by_window, "recall": recall, "end_length": end_length,
            "verdicts": table}
