"""The remedies of :mod:`dlmpaper.core.strategies` on a real masked diffusion LM, at matched compute
(paper §4, issue (ii); notebook 05_remedies, "real model").

On the toy languages (:mod:`dlmpaper.analyses.remedies`) every decoder's error is exact. On a real LM there
is no true joint, so each answer is scored by an **independent judge**: the autoregressive family
model trained on the same corpus and tokenizer (``data/family_models/wordnet-autoregressive``,
notebook 02), never the masked model scoring itself. Per decoder and prompt:

* ``nfe``: forward passes of the masked model (``GenerationResult.nfe_masked``);
* ``adjacent_duplicate_rate`` and ``distinct_ratio`` (:mod:`dlmpaper.core.sampling`): the marginal
  trap's visible symptoms, repeated and missing words;
* ``judge_loglik`` / ``judge_loglik_per_token``: log-likelihood of the answer (up to and including
  its first end token) under the judge, given the chat prompt (:func:`judge_log_likelihood`).

Adaptive decoders are run **at matched NFE**: their parameter (tau, f, gamma) is set by bisection
on separate calibration prompts so that their mean NFE is as close as the grid allows to the fixed
decoder's (:func:`calibrate`), and the achieved NFE is reported next to every number.
:func:`compare_decoders` returns one tidy row per (decoder, prompt); :func:`summarize_decoders`
the means with 95% bootstrap CIs over prompts (:mod:`dlmpaper.core.stats`).

The verifier decoder (:class:`dlmpaper.core.strategies.Verifier`) is left out here: its judge would be
the same autoregressive model that scores the answers, so the score would not be independent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from dlmpaper.core.sampling import adjacent_duplicate_rate, answer_tokens, distinct_ratio, generate
from dlmpaper.core.stats import bootstrap_mean
from dlmpaper.core.strategies import (
    CausalJudge,
    ConfidenceThreshold,
    Dilated,
    EntropyBounded,
    FactorRule,
    LowConfidence,
    Remask,
)
from dlmpaper.lm.protocol import MaskedDiffusionLM

__all__ = [
    "METRICS",
    "AdaptiveDecoder",
    "DEFAULT_ADAPTIVE",
    "calibrate",
    "compare_decoders",
    "judge_log_likelihood",
    "summarize_decoders",
]

#: Per-prompt columns of :func:`compare_decoders` that :func:`summarize_decoders` summarises.
METRICS = (
    "nfe",
    "answer_length",
    "adjacent_duplicate_rate",
    "distinct_ratio",
    "judge_loglik",
    "judge_loglik_per_token",
)


@dataclass(frozen=True)
class AdaptiveDecoder:
    """An adaptive strategy with one parameter, and the interval :func:`calibrate` searches.
    ``more_passes_when_larger``: whether a larger parameter means more forward passes."""

    name: str
    make: Callable[[float], object]
    low: float
    high: float
    more_passes_when_larger: bool


#: Fast-dLLM's threshold and factor rules and EB-Sampler's entropy bound (``dlmpaper.core.strategies``).
DEFAULT_ADAPTIVE: tuple[AdaptiveDecoder, ...] = (
    AdaptiveDecoder("threshold (Fast-dLLM)", lambda v: ConfidenceThreshold(tau=v), 1e-3, 1.0, True),
    AdaptiveDecoder("factor (Fast-dLLM)", lambda v: FactorRule(f=v), 1e-3, 64.0, False),
    AdaptiveDecoder("entropy bound (EB-Sampler)", lambda v: EntropyBounded(gamma=v), 0.0, 64.0, False),
)


@torch.no_grad()
def judge_log_likelihood(
    judge_model,
    prompt_ids: Sequence[Sequence[int]],
    answer_ids: Sequence[Sequence[int]],
    end_id: int,
    *,
    batch_size: int = 16,
) -> np.ndarray:
    """``(n, 2)``: the log-likelihood (nats) of each answer followed by ``end_id`` under an
    autoregressive judge given its prompt, and the same per scored token. ``judge_model`` is an
    autoregressive family model (:func:`dlmpaper.lm.families.load_family_model`); each row is
    ``prompt + answer + [end_id]``, left-padded, run once under the causal mask (:class:`CausalJudge`)."""
    if len(prompt_ids) != len(answer_ids):
        raise ValueError(f"{len(prompt_ids)} prompts for {len(answer_ids)} answers")
    judge = CausalJudge(judge_model)
    out = np.zeros((len(prompt_ids), 2))
    for start in range(0, len(prompt_ids), batch_size):
        rows = [
            (list(p), [*map(int, a), int(end_id)])
            for p, a in zip(prompt_ids[start : start + batch_size], answer_ids[start : start + batch_size])
        ]
        width = max(len(p) + len(a) for p, a in rows)
        x = torch.zeros((len(rows), width), dtype=torch.long)
        attention = torch.zeros_like(x)
        for i, (p, a) in enumerate(rows):
            seq = p + a
            x[i, width - len(seq) :] = torch.tensor(seq)
            attention[i, width - len(seq) :] = 1
        logp = torch.log_softmax(judge.conditionals(x, attention).double(), dim=-1)
        for i, (p, a) in enumerate(rows):
            cols = torch.arange(width - len(a), width)
            scores = logp[i, cols, x[i, cols]]
            out[start + i] = (float(scores.sum()), float(scores.mean()))
    return out


def _run(
    lm: MaskedDiffusionLM,
    prompts: Sequence[str],
    strategy,
    gen_length: int,
    block_length: int,
    steps: int,
    seed: int,
    batch_size: int,
):
    return generate(
        lm,
        list(prompts),
        gen_length=gen_length,
        block_length=block_length,
        steps=steps,
        strategy=strategy,
        seed=seed,
        batch_size=batch_size,
        record=False,
        progress=False,
    )


def calibrate(
    lm: MaskedDiffusionLM,
    prompts: Sequence[str],
    decoder: AdaptiveDecoder,
    target_nfe: float,
    *,
    gen_length: int = 32,
    block_length: int = 32,
    seed: int = 0,
    iterations: int = 8,
    batch_size: int = 16,
) -> dict:
    """The parameter of ``decoder`` whose mean NFE over ``prompts`` is closest to ``target_nfe``:
    bisection over ``[decoder.low, decoder.high]`` (``iterations`` decodes), keeping the best point
    seen (ties: the smaller NFE). Returns ``name``, ``parameter``, ``mean_nfe``, ``target_nfe``.
    Use prompts that the comparison does not score (the calibration must not see the test set)."""
    if target_nfe < 1:
        raise ValueError(f"target_nfe must be >= 1, got {target_nfe}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    low, high, best = decoder.low, decoder.high, None
    for _ in range(iterations):
        value = (low + high) / 2
        nfe = float(
            _run(
                lm, prompts, decoder.make(value), gen_length, block_length, gen_length, seed, batch_size
            ).nfe_masked.mean()
        )
        key = (abs(nfe - target_nfe), nfe)
        if best is None or key < best[0]:
            best = (key, value, nfe)
        if nfe == target_nfe:
            break
        too_many = nfe > target_nfe
        if too_many == decoder.more_passes_when_larger:
            high = value
        else:
            low = value
    return {"name": decoder.name, "parameter": best[1], "mean_nfe": best[2], "target_nfe": float(target_nfe)}


def compare_decoders(
    lm: MaskedDiffusionLM,
    judge_model,
    prompts: Sequence[str],
    calibration_prompts: Sequence[str],
    *,
    tokens_per_step: int = 8,
    gen_length: int = 32,
    block_length: int = 32,
    seed: int = 0,
    adaptive: Sequence[AdaptiveDecoder] = DEFAULT_ADAPTIVE,
    calibration_iterations: int = 8,
    batch_size: int = 16,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every decoder on ``prompts`` at the NFE of LLaDA's fixed schedule with ``tokens_per_step``
    (``gen_length / tokens_per_step`` passes), scored by ``judge_model`` (module docstring).

    Fixed-NFE decoders: low-confidence (LLaDA), dilated groups (DUS), low-confidence with remasking
    (ReMDM-style), and low-confidence at one token per step (``gen_length`` passes: the quality
    reference). Adaptive ones are calibrated on ``calibration_prompts`` (:func:`calibrate`).
    Returns (per-prompt table: decoder, setting, prompt_index, :data:`METRICS`; calibration table).
    """
    if tokens_per_step < 1 or gen_length % tokens_per_step:
        raise ValueError(f"tokens_per_step must divide gen_length={gen_length}, got {tokens_per_step}")
    if block_length < 1 or gen_length % block_length:
        raise ValueError(f"block_length must divide gen_length={gen_length}, got {block_length}")
    steps = gen_length // tokens_per_step
    if steps % (gen_length // block_length):
        raise ValueError(f"{steps} steps cannot be spread evenly over {gen_length // block_length} blocks")
    if not prompts or len(calibration_prompts) == 0:
        raise ValueError("compare_decoders needs prompts to score and separate calibration prompts")
    fixed = [
        (f"low-confidence, {tokens_per_step}/step (LLaDA)", LowConfidence(), steps, f"k={tokens_per_step}"),
        ("dilated groups (DUS)", Dilated(), steps, f"k={tokens_per_step}"),
        ("remasking (ReMDM-style)", Remask(), steps, f"k={tokens_per_step}, sigma={Remask().sigma}"),
        ("low-confidence, 1/step (reference)", LowConfidence(), gen_length, "k=1"),
    ]
    calibration = pd.DataFrame(
        [
            calibrate(
                lm,
                calibration_prompts,
                d,
                steps,
                gen_length=gen_length,
                block_length=block_length,
                seed=seed,
                iterations=calibration_iterations,
                batch_size=batch_size,
            )
            for d in adaptive
        ]
    )
    runs = list(fixed) + [
        (d.name, d.make(p), gen_length, f"parameter={p:.4g}") for d, p in zip(adaptive, calibration["parameter"])
    ]
    end_id = int(lm.end_ids[0])
    rows = []
    for name, strategy, n_steps, setting in tqdm(runs, desc="decoders", disable=not progress):
        result = _run(lm, prompts, strategy, gen_length, block_length, n_steps, seed, batch_size)
        answers = [answer_tokens(row, lm.end_ids) for row in result.tokens.tolist()]
        scores = judge_log_likelihood(judge_model, result.prompt_ids, answers, end_id, batch_size=batch_size)
        dup = adjacent_duplicate_rate(result.tokens, lm.end_ids)
        distinct = distinct_ratio(result.tokens, lm.end_ids)
        for i, answer in enumerate(answers):
            rows.append(
                {
                    "decoder": name,
                    "setting": setting,
                    "prompt_index": i,
                    "nfe": int(result.nfe_masked[i]),
                    "answer_length": len(answer),
                    "adjacent_duplicate_rate": float(dup[i]),
                    "distinct_ratio": float(distinct[i]),
                    "judge_loglik": scores[i, 0],
                    "judge_loglik_per_token": scores[i, 1],
                }
            )
    return pd.DataFrame(rows), calibration


def summarize_decoders(
    table: pd.DataFrame, metrics: Sequence[str] = METRICS, *, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Mean and 95% bootstrap CI over prompts of each metric per decoder (NaN rows, e.g. the
    duplicate rate of a one-token answer, left out). Tidy: decoder, metric, mean, ci_low, ci_high, n."""
    missing = {"decoder", *metrics} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks {sorted(missing)}; pass compare_decoders(...)[0]")
    rows = []
    for decoder, part in table.groupby("decoder", sort=False):
        for metric in metrics:
            values = part[metric].to_numpy(dtype=float)
            values = values[~np.isnan(values)]
            mean, low, high = bootstrap_mean(values, n_boot, seed) if len(values) else (math.nan,) * 3
            rows.append(
                {"decoder": decoder, "metric": metric, "mean": mean, "ci_low": low, "ci_high": high, "n": len(values)}
            )
    return pd.DataFrame(rows)
