"""The measurements of notebook 03_positional_probe (paper §4, issue (i)), as tidy tables.

Window statistics of the probe (:func:`window_summary`, :func:`compare_windows`,
:func:`frequency_class_by_position`, a reference unigram table :func:`corpus_unigram_counts`, the
invented-word check :func:`headword_copy_check`) and the probe measures that can fail, each
against a mismatched-prompt baseline.

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
the verdicts say "NOT supported" (tests/unit/test_probe_measures.py); notebook 03 prints both next
to the real model. All intervals are 95% percentile bootstraps over prompts (fixed seed).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from dlmpaper.core.probe import (
    STOP_WORDS,
    ProbeResult,
    end_dominance_distance,
    modal_top1,
    per_prompt_values,
    position_summary,
    positional_probe,
    unigram_ranks_from_counts,
    unigram_ranks_from_model,
    validate_probe_args,
)
from dlmpaper.core.stats import (
    bootstrap_mean,
    bootstrap_statistic,
    nanmean,
    percentile_interval,
    resample_index,
    spearman,
)
from dlmpaper.core.tables import ci_text as ci_text  # re-exported: how notebooks print an estimate
from dlmpaper.corpora.wordnet import load_split

__all__ = [
    # the probe itself (dlmpaper.core.probe) and the corpus reader, for notebook 03
    "positional_probe",
    "position_summary",
    "modal_top1",
    "end_dominance_distance",
    "unigram_ranks_from_counts",
    "unigram_ranks_from_model",
    "validate_probe_args",
    "bootstrap_mean",
    "ci_text",
    "load_split",
    # window statistics
    "DEFAULT_WINDOWS",
    "compare_windows",
    "corpus_unigram_counts",
    "frequency_class_by_position",
    "headword_copy_check",
    "headword_positions",
    "window_summary",
    # measures against baselines
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

#: Position windows (1-based, inclusive) used for the notebook's numbers: right after the
#: prompt, the middle, far away, and the last quarter of the 128 masks.
DEFAULT_WINDOWS: dict[str, tuple[int, int]] = {
    "near 1-8": (1, 8),
    "middle 9-64": (9, 64),
    "far 65-128": (65, 128),
    "last 97-128": (97, 128),
}


# --------------------------------------------------------------------------- reference frequencies
def corpus_unigram_counts(
    tokenizer: Any, rows: Sequence[Mapping[str, Any]], *, field: str = "response", max_rows: int | None = None
) -> pd.Series:
    """Token counts of ``rows[i][field]`` under ``tokenizer`` (no special tokens): a reference unigram table.

    Notebook 03 feeds it the shipped WordNet corpus (:func:`dlmpaper.corpora.wordnet.load_split`,
    the responses the embedded model was trained on) and ranks the counts with
    :func:`dlmpaper.core.probe.unigram_ranks_from_counts` for the "frequency class" of §4's
    drift toward frequent tokens. ``max_rows`` keeps an evenly spaced subsample (every
    k-th row, deterministic) to bound the tokenizer's time. Returns a Series
    ``token_id -> count`` (sorted by id) named ``count``.
    """
    if max_rows is not None and (not isinstance(max_rows, int) or max_rows < 1):
        raise ValueError(f"max_rows must be a positive integer or None, got {max_rows!r}")
    rows = list(rows)
    if not rows:
        raise ValueError("rows is empty: pass corpus rows such as dlmpaper.corpora.wordnet.load_split('train')")
    if field not in rows[0]:
        raise ValueError(f"rows have no field {field!r}; available: {sorted(rows[0])}")
    if max_rows is not None and len(rows) > max_rows:
        step = math.ceil(len(rows) / max_rows)
        rows = rows[::step]
    texts = [str(r[field]) for r in rows]
    counts: Counter[int] = Counter()
    for start in range(0, len(texts), 4096):
        for ids in tokenizer(texts[start : start + 4096], add_special_tokens=False)["input_ids"]:
            counts.update(ids)
    series = pd.Series(counts, dtype=np.int64, name="count").sort_index()
    series.index = series.index.astype(np.int64).rename("token_id")
    return series


def _window_values(matrix: np.ndarray, first: int, last: int) -> np.ndarray:
    n_masks = matrix.shape[1]
    if not (1 <= first <= last):
        raise ValueError(f"window ({first}, {last}) must satisfy 1 <= first <= last")
    if first > n_masks:
        raise ValueError(f"window ({first}, {last}) starts after the last mask position {n_masks}")
    return nanmean(matrix[:, first - 1 : min(last, n_masks)], axis=1)


def window_summary(
    result: ProbeResult,
    windows: Mapping[str, tuple[int, int]] | None = None,
    reference_ranks: Mapping[int, float] | pd.Series | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per position window and statistic: mean over prompts with a bootstrap 95% CI (notebook 03).

    Each prompt's values are first averaged over the window's positions (``first..last``,
    1-based, inclusive, clipped to ``n_masks``), then the mean over prompts is bootstrapped
    (``n_boot`` resamples of prompts, ``seed``; the same resamples for every cell).
    Tidy: ``window``, ``first``, ``last``, ``statistic``, ``mean``, ``ci_low``, ``ci_high``,
    ``n_prompts``. Statistics as in :func:`per_prompt_statistics`.
    """
    windows = dict(DEFAULT_WINDOWS if windows is None else windows)
    stats = per_prompt_values(result, reference_ranks)
    idx = resample_index(result.n_prompts, n_boot, seed)
    rows = []
    for name, (first, last) in windows.items():
        for stat, matrix in stats.items():
            per_prompt = _window_values(matrix, first, last)
            low, high = percentile_interval(nanmean(per_prompt[idx], axis=1))
            rows.append(
                {
                    "window": name,
                    "first": first,
                    "last": min(last, result.n_masks),
                    "statistic": stat,
                    "mean": float(nanmean(per_prompt, axis=0)),
                    "ci_low": float(low),
                    "ci_high": float(high),
                    "n_prompts": int((~np.isnan(per_prompt)).sum()),
                }
            )
    return pd.DataFrame(rows)


def compare_windows(
    result: ProbeResult,
    statistic: str,
    near: tuple[int, int] = (1, 8),
    far: tuple[int, int] = (65, 128),
    reference_ranks: Mapping[int, float] | pd.Series | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, float | bool]:
    """``statistic`` averaged over the ``near`` and ``far`` windows, and their paired difference.

    The difference ``near - far`` is computed per prompt and bootstrapped over prompts
    (paired: a prompt's two windows stay together). Returns ``near``, ``near_low``,
    ``near_high``, ``far``, ``far_low``, ``far_high``, ``diff``, ``diff_low``, ``diff_high``
    and ``separated`` (the two 95% CIs do not overlap). NaN values (``top1_freq_class_nonend``
    where the top-1 is an end token) are left out of the means. Notebook 03's verdict: is
    prompt-specificity near the prompt higher than far away (paper §4)?
    """
    stats = per_prompt_values(result, reference_ranks)
    if statistic not in stats:
        raise ValueError(f"unknown statistic {statistic!r}; choose one of {sorted(stats)}")
    a = _window_values(stats[statistic], *near)
    b = _window_values(stats[statistic], *far)
    idx = resample_index(result.n_prompts, n_boot, seed)
    out: dict[str, float | bool] = {}
    for key, x in (("near", a), ("far", b), ("diff", a - b)):
        low, high = percentile_interval(nanmean(x[idx], axis=1))
        out[key] = float(nanmean(x, axis=0))
        out[f"{key}_low"] = float(low)
        out[f"{key}_high"] = float(high)
    # NaN comparisons are False: a window without values is never "separated"
    out["separated"] = bool(out["near_low"] > out["far_high"] or out["far_low"] > out["near_high"])
    return out


def frequency_class_by_position(
    result: ProbeResult,
    reference_ranks: Mapping[int, float] | pd.Series,
    *,
    exclude_end: bool = True,
    min_prompts: int = 5,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per position: mean frequency class ``floor(log2(rank))`` of the top-1 token, bootstrap 95% CI.

    Like ``top1_freq_class`` of :func:`dlmpaper.core.probe.position_summary` (same tidy columns,
    so :func:`plot_aggregate` and :func:`plot_frequency_drift` take it), but with
    ``exclude_end`` (default) prompts whose top-1 is an end token are left out at that
    position (statistic ``top1_freq_class_nonend``; ``n_prompts`` counts the rest); positions
    where fewer than ``min_prompts`` prompts remain get NaN (no line) rather than a
    one-prompt mean. Paper §4's drift "toward 'the' and punctuation"
    is then measured on the tokens that are not yet EOS (notebook 03).
    """
    stats = per_prompt_values(result, reference_ranks)
    name = "top1_freq_class_nonend" if exclude_end else "top1_freq_class"
    x = stats[name]
    idx = resample_index(result.n_prompts, n_boot, seed)
    low, high = percentile_interval(np.stack([nanmean(x[row], axis=0) for row in idx]))
    count = (~np.isnan(x)).sum(axis=0)
    few = count < min_prompts
    return pd.DataFrame(
        {
            "position": np.arange(1, result.n_masks + 1),
            "statistic": name,
            "mean": np.where(few, np.nan, nanmean(x, axis=0)),
            "ci_low": np.where(few, np.nan, low),
            "ci_high": np.where(few, np.nan, high),
            "n_prompts": count,
        }
    )


# --------------------------------------------------------------------------- copying check
def headword_positions(tokenizer: Any, prompts: pd.DataFrame) -> pd.DataFrame:
    """Where each prompt's headword first appears in its gold ``response``, in response tokens.

    ``prompts`` needs ``prompt_id``, ``headword`` and ``response`` (the embedded prompt
    set). The response is tokenized on its own (it follows the chat template's generation
    prompt, so its first token is mask position 1); the headword's first token is the token
    whose character span holds the headword's first character (word-boundary match, case
    ignored). Columns ``prompt_id``, ``headword``, ``gold_position`` (1-based; NaN when the
    headword is not in the response), ``token_id`` (-1 when absent), ``token``.
    """
    missing = {"prompt_id", "headword", "response"} - set(prompts.columns)
    if missing:
        raise ValueError(f"prompts lack column(s) {sorted(missing)}: the copying check needs the embedded prompt set")
    rows = []
    for pid, word, response in zip(prompts["prompt_id"], prompts["headword"], prompts["response"]):
        match = re.search(rf"(?<![\w]){re.escape(str(word))}(?![\w])", str(response), flags=re.IGNORECASE)
        position, token_id, token = math.nan, -1, ""
        if match is not None:
            enc = tokenizer(str(response), add_special_tokens=False, return_offsets_mapping=True)
            for i, (start, end) in enumerate(enc["offset_mapping"]):
                if start <= match.start() < end:
                    position, token_id = float(i + 1), int(enc["input_ids"][i])
                    token = tokenizer.decode([token_id], clean_up_tokenization_spaces=False)
                    break
        rows.append(
            {"prompt_id": str(pid), "headword": word, "gold_position": position, "token_id": token_id, "token": token}
        )
    return pd.DataFrame(rows)


def headword_copy_check(result: ProbeResult, tokenizer: Any, prompts: pd.DataFrame) -> pd.DataFrame:
    """Per prompt: is the headword's first token among the top-k at its gold position? (notebook 03)

    A check that the masks near the prompt carry prompt content: "Tell me about the word
    X" is answered "The word X is ...", so a model that reads the prompt should put X's
    first token among its top-k at X's position in the gold answer. Columns of
    :func:`headword_positions` plus ``rank`` (1..top_k, NaN when not in the top-k),
    ``in_top_k`` (bool) and ``prob`` (0 when not in the top-k). Prompts the probe skipped,
    or whose headword is not in the response or sits beyond ``n_masks``, are dropped.
    """
    gold = headword_positions(tokenizer, prompts)
    gold = gold[gold["prompt_id"].isin(set(result.prompt_ids))]
    gold = gold[gold["gold_position"].notna() & (gold["gold_position"] <= result.n_masks)].copy()
    gold["gold_position"] = gold["gold_position"].astype(np.int64)
    table = result.table[["prompt_id", "position", "rank", "token_id", "prob"]]
    hits = gold.merge(
        table,
        left_on=["prompt_id", "gold_position", "token_id"],
        right_on=["prompt_id", "position", "token_id"],
        how="left",
    ).drop(columns="position")
    hits = hits.sort_values(["prompt_id", "rank"], kind="stable").drop_duplicates("prompt_id")  # one row per prompt
    hits["in_top_k"] = hits["rank"].notna()
    hits["prob"] = hits["prob"].fillna(0.0)
    return hits.reset_index(drop=True)


# --------------------------------------------------------------------------- figures


# --------------------------------------------------------------------------- measures against baselines
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


def content_token_sets(
    tokenizer, texts: Sequence[str], min_letters: int = 3, exclude: frozenset[str] | None = None
) -> list[frozenset[int]]:
    """Per text, the word-initial token ids of its content words.

    A content word has >= 3 letters and is not in ``exclude`` (default: :data:`dlmpaper.core.probe.STOP_WORDS`
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
    """:func:`dlmpaper.core.stats.bootstrap_mean` over the rows that are not NaN (NaN if none)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    return bootstrap_mean(x, n_boot, seed) if len(x) else (float("nan"),) * 3


def _rows(measure: str, window: str, own: np.ndarray, mismatched: np.ndarray, n_boot: int, seed: int) -> list[dict]:
    rows = []
    for kind, values in (("own", own), ("mismatched", mismatched), ("excess", own - mismatched)):
        mean, low, high = _mean_ci(values, n_boot, seed)
        rows.append(
            {
                "measure": measure,
                "window": window,
                "scored_against": kind,
                "mean": mean,
                "ci_low": low,
                "ci_high": high,
                "n_prompts": int(np.sum(~np.isnan(values))),
            }
        )
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


def _scored_against_baseline(
    result: ProbeResult,
    token_sets: Sequence[frozenset[int]],
    windows: Sequence[tuple[int, int]],
    measure: str,
    score,
    n_boot: int,
    seed: int,
) -> pd.DataFrame:
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


def copy_rate(
    result: ProbeResult,
    prompt_tokens: Sequence[frozenset[int]],
    windows: Sequence[tuple[int, int]] = ((1, 8),),
    *,
    by_position: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Prompt-content copy rate: share of prompts whose top-k within a window holds one of their own
    prompt's content tokens (:func:`content_token_sets`), scored against their own tokens, against
    the next prompt's (:func:`derangement`) and the paired excess. Prompts without content tokens are
    left out (and are nobody's baseline). ``by_position``: one window per position instead.
    Tidy: measure, window, scored_against (own / mismatched / excess), mean, ci_low, ci_high, n_prompts.
    """
    if by_position:
        windows = [(p, p) for p in range(1, result.n_masks + 1)]
    return _scored_against_baseline(
        result, prompt_tokens, windows, "copy_rate", lambda seen, t: float(bool(seen & t)), n_boot, seed
    )


def gold_recall(
    result: ProbeResult,
    gold_tokens: Sequence[frozenset[int]],
    windows: Sequence[tuple[int, int]] = DEFAULT_RECALL_WINDOWS,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Gold-answer recall per window: share of a prompt's gold-answer content tokens found among the
    top-k at the window's positions, scored against its own answer, the next prompt's answer
    (:func:`derangement`) and the paired excess. Prompts whose answer has no content token are left
    out. Equal-width windows (default 16 positions) keep near and far comparable. Tidy, as
    :func:`copy_rate` (measure ``gold_recall``). Works for LIMA's assistant turns in the paper profile.
    """
    return _scored_against_baseline(
        result, gold_tokens, windows, "gold_recall", lambda seen, t: len(seen & t) / len(t), n_boot, seed
    )


def end_length_correlation(
    end_positions: Sequence[float], answer_lengths: Sequence[float], *, n_boot: int = 1000, seed: int = 0
) -> dict[str, float]:
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


def verdicts(
    js: dict,
    copy: pd.DataFrame,
    recall: pd.DataFrame | None,
    end_length: dict | None,
    *,
    near: str = "1-8",
    recall_near: str | None = None,
    recall_far: str | None = None,
) -> pd.DataFrame:
    """Notebook 03's verdict lines, each against its baseline or null (paper §4, issue (i)).

    1. prompt-specificity: JS near vs far (``dlmpaper.figures.probe.compare_windows``), null 0
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
    lines.append(
        (
            "1. prompt-specificity (JS, nats) near 1-8 vs far 65-128",
            f"{_ci(js['near'], js['near_low'], js['near_high'])} vs {_ci(js['far'], js['far_low'], js['far_high'])}",
            _verdict(ok),
        )
    )
    own, mis, exc = (_pick(copy, near, k) for k in ("own", "mismatched", "excess"))
    lines.append(
        (
            f"2. own-prompt content in the top-k at {near}, minus another prompt's",
            f"{_ci(own['mean'], own['ci_low'], own['ci_high'])} - {_ci(mis['mean'], mis['ci_low'], mis['ci_high'])}"
            f" = {_ci(exc['mean'], exc['ci_low'], exc['ci_high'])}",
            _verdict(bool(exc["ci_low"] > 0)),
        )
    )
    if recall is None:
        lines.append(
            ("3. gold-answer recall, near window vs far window (excess over another prompt's answer)", "n/a", "n/a")
        )
    else:
        labels = list(dict.fromkeys(recall["window"]))
        a = _pick(recall, recall_near or labels[0], "excess")
        b = _pick(recall, recall_far or labels[-1], "excess")
        ok = bool(a["ci_low"] > 0 and a["ci_low"] > b["ci_high"])
        lines.append(
            (
                f"3. gold-answer recall excess, {a['window']} vs {b['window']}",
                f"{_ci(a['mean'], a['ci_low'], a['ci_high'])} vs {_ci(b['mean'], b['ci_low'], b['ci_high'])}",
                _verdict(ok),
            )
        )
    if end_length is None:
        lines.append(("4. end-dominance position vs gold answer length (Spearman)", "n/a", "n/a"))
    else:
        rho = end_length
        numbers = (
            "constant (no correlation defined)"
            if np.isnan(rho["rho"])
            else _ci(rho["rho"], rho["ci_low"], rho["ci_high"])
        )
        lines.append(
            ("4. end-dominance position vs gold answer length (Spearman)", numbers, _verdict(bool(rho["ci_low"] > 0)))
        )
    reads = ["prompt", "prompt", "gold answer", "gold answer"]
    return pd.DataFrame([(*line, r) for line, r in zip(lines, reads)], columns=["claim", "numbers", "verdict", "reads"])


class PromptIgnoringModel:
    """Negative control: wraps a :class:`dlmpaper.lm.models.DiffusionLM` so that every prompt gets the
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
        out = torch.zeros(
            input_ids.shape[0], input_ids.shape[1], fixed.shape[-1], dtype=fixed.dtype, device=fixed.device
        )
        out[:, -n_masks:, :] = fixed
        return out


def answer_lengths(tokenizer, responses: Sequence[str]) -> np.ndarray:
    """Gold answer lengths in tokens (``add_special_tokens=False``), for :func:`end_length_correlation`."""
    return np.array(
        [len(ids) for ids in tokenizer(list(responses), add_special_tokens=False)["input_ids"]], dtype=float
    )


def probe_evidence(
    result: ProbeResult,
    prompts: pd.DataFrame,
    tokenizer,
    *,
    near: tuple[int, int] = (1, 8),
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Every measure of this module on one probe run, and notebook 03's verdict lines (paper §4).

    ``prompts`` is the prompt set the probe ran on (``prompt_id``, ``prompt``, optional ``response``;
    any row order). Returns ``js`` (:func:`dlmpaper.figures.probe.compare_windows`, near vs 65-128),
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
        recall = gold_recall(
            result, content_token_sets(tokenizer, frame["response"].tolist()), n_boot=n_boot, seed=seed
        )
        ends = end_dominance_distance(result).set_index("prompt_id").loc[result.prompt_ids, "end_dominance_position"]
        end_length = end_length_correlation(
            ends.to_numpy(), answer_lengths(tokenizer, frame["response"]), n_boot=n_boot, seed=seed
        )
    table = verdicts(js, copy, recall, end_length, near=_window_label(near))
    return {
        "js": js,
        "copy": copy,
        "copy_by_window": copy_by_window,
        "recall": recall,
        "end_length": end_length,
        "verdicts": table,
    }
