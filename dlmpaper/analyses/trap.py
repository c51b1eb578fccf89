"""The measurements of notebook 04_marginal_trap (paper §4, issue (ii): the marginal trap), as tidy tables.

A masked diffusion LM is trained token by token, so it learns per-position marginals, not their
joint; a step that commits several positions samples from the product of marginals ("I like" and
"He likes" are fine, "I likes" gets produced), worse with committed intermediate states and with
fewer steps than tokens. The exact math is :mod:`dlmpaper.core.trap`, the decoder
:mod:`dlmpaper.core.sampling`; this module measures:

* trained toy models against the exact marginals: :func:`toy_invalid_rates`,
  :func:`toy_model_quality`, :func:`marginal_divergence`;
* the real model's sweep: :func:`summarize_over_prompts`, :func:`paired_change` (means and paired
  differences with bootstrap 95% CIs over prompts), :func:`example_answers`,
  :func:`end_fill_by_step`;
* committed intermediate states: :func:`commit_phase`, :func:`revision_rates`.

The core functions notebook 04 calls directly are re-exported here (``likes_example``,
``parallel_invalid_probability``, ``simulate_parallel_decoding``, ``total_correlation``,
``generate``, ``sweep``, ``check_settings``, ``remask_check``) so that the notebook reads one
module. The figures are drawn by :mod:`dlmpaper.figures.trap`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from dlmpaper.core.objectives import DEFAULT_EPS
from dlmpaper.core.sampling import check_settings, generate, remask_check, sweep
from dlmpaper.core.stats import bootstrap_mean
from dlmpaper.core.tables import ci_text as ci_text  # re-exported: how notebooks print an estimate
from dlmpaper.core.tables import require_columns as _need
from dlmpaper.core.trap import (
    ORDERS,
    ModelMarginalDecoder,
    ToyLanguage,
    exact_marginal_fn,
    invalid_rate_by_tokens_per_step,
    likes_example,
    parallel_invalid_probability,
    parse_partial,
    simulate_parallel_decoding,
    total_correlation,
    wilson,
)
from dlmpaper.lm.toymodels import (
    entropy_per_token,
    evaluation_loss,
    model_marginal_fn,
    toy_language,
    toy_languages,
    toy_models_for,
)

__all__ = [
    "EXPECTED_DIRECTION",
    "bootstrap_ci",
    "check_settings",
    "ci_text",
    "commit_phase",
    "end_fill_by_step",
    "example_answers",
    "generate",
    "likes_example",
    "marginal_divergence",
    "paired_change",
    "parallel_invalid_probability",
    "remask_check",
    "revision_rates",
    "sample_partial_states",
    "simulate_parallel_decoding",
    "summarize_over_prompts",
    "sweep",
    "total_correlation",
    "toy_invalid_rates",
    "toy_model_quality",
    "wilson_interval",
]

#: Direction in which the marginal trap should move each metric as tokens per step grow
#: (+1 up, -1 down, 0 no prediction). Answer length: no prediction in general; with one
#: block, low-confidence decoding fills end tokens from the tail first and answers shrink.
EXPECTED_DIRECTION: dict[str, int] = {
    "adjacent_duplicate_rate": +1,
    "distinct_ratio": -1,
    "seq_loglik_per_token": -1,
    "answer_length": 0,
    "would_revise": +1,
}


# --------------------------------------------------------------------------- trained toy models


def sample_partial_states(lang: ToyLanguage, n: int = 512, seed: int = 0, eps: float = DEFAULT_EPS) -> np.ndarray:
    """``n`` partially masked states ``(n, L)`` drawn like training inputs: a sample of ``lang``,
    each token masked with ``p = (1 - eps) t + eps``, ``t ~ U(0, 1)``; a row left without a mask
    gets one at a random position."""
    rng = np.random.default_rng(seed)
    x = lang.sample(n, rng)
    p = (1 - eps) * rng.random(n) + eps
    masked = rng.random(x.shape) < p[:, None]
    none = ~masked.any(axis=1)
    masked[np.flatnonzero(none), rng.integers(0, lang.length, none.sum())] = True
    return np.where(masked, lang.mask_id, x)


def marginal_divergence(model_or_fn, lang: ToyLanguage | str, partials) -> pd.DataFrame:
    """Trained vs exact one-step marginals at every masked position of each partial state
    (§4: the trap is exact only if the model learned the exact marginals).

    ``model_or_fn``: a toy model or a ``MarginalFn``; ``partials``: an int array ``(n, L)`` or a
    list of partial sequences (``"I _ _"``). Tidy rows: ``state, position, kl`` (KL(exact ||
    model), nats), ``tv`` (total variation), ``exact_top`` and ``model_top`` (argmax tokens).
    """
    lang = toy_language(lang)
    fn = (
        model_or_fn
        if callable(model_or_fn) and not isinstance(model_or_fn, torch.nn.Module)
        else model_marginal_fn(model_or_fn, lang)
    )
    if isinstance(partials, np.ndarray) and partials.ndim == 2:
        states = partials.astype(np.int64)
    else:
        states = np.stack([parse_partial(lang, p) for p in partials])
    exact = exact_marginal_fn(lang)(states)
    model = np.asarray(fn(states), dtype=np.float64)[..., : lang.vocab_size]
    model = model / model.sum(axis=-1, keepdims=True)
    rows = []
    for b, i in zip(*np.nonzero(states == lang.mask_id)):
        p, q = exact[b, i], model[b, i]
        nz = p > 0
        kl = float(np.sum(p[nz] * (np.log(p[nz]) - np.log(np.maximum(q[nz], 1e-300)))))
        rows.append(
            dict(
                state=lang.to_text(states[b]).replace("[MASK]", "_"),
                position=int(i),
                kl=max(0.0, kl),
                tv=float(0.5 * np.abs(p - q).sum()),
                exact_top=lang.vocab[int(p.argmax())],
                model_top=lang.vocab[int(q.argmax())],
            )
        )
    return pd.DataFrame(rows, columns=["state", "position", "kl", "tv", "exact_top", "model_top"])


def toy_invalid_rates(
    langs=None,
    tokens_per_step: Sequence[int] | None = None,
    orders: Sequence[str] = ORDERS,
    n_samples: int = 20_000,
    seed: int = 0,
    exact: bool = True,
    models: Mapping | None = None,
    root: Path | None = None,
) -> pd.DataFrame:
    """Invalid rate of full parallel decoding vs tokens per step, the trained model's marginals
    next to the exact ones (§4, issue (ii); notebook 04_marginal_trap, figure "invalid rate
    vs k, trained vs exact").

    For each language (default: every shipped toy model), order and ``k`` in ``tokens_per_step``
    (default ``1 .. L``; values above a language's ``L`` are skipped for it) both decoders run through ``trap.invalid_rate_by_tokens_per_step``: exact
    recursion (``invalid_exact``, NaN when ``exact=False``) and ``n_samples`` simulated chains
    (``invalid_sim`` with a 95% Wilson interval). ``models`` maps language names to models
    (default: :func:`load_toy_model`). Tidy columns: ``language, order, marginals`` ("exact" or
    "trained"), ``tokens_per_step, n_steps, n_samples, invalid_exact, invalid_sim, sim_ci_low,
    sim_ci_high``. The exact-marginal rows at ``k = 1`` are exactly 0.
    """
    langs = toy_languages(langs)
    loaded = toy_models_for(langs, models, root)
    frames = []
    for lang in langs:
        ks = (
            range(1, lang.length + 1)
            if tokens_per_step is None
            else [k for k in tokens_per_step if int(k) <= lang.length]
        )
        fn = model_marginal_fn(loaded[lang.name], lang)
        for order in orders:
            for label, marg in (("exact", None), ("trained", fn)):
                frames.append(
                    invalid_rate_by_tokens_per_step(
                        lang,
                        ks,
                        order=order,
                        n_samples=n_samples,
                        seed=seed,
                        marginal_fn=marg,
                        exact=exact,
                        marginals_label=label,
                    )
                )
    return pd.concat(frames, ignore_index=True)


def toy_model_quality(
    langs=None,
    n_states: int = 1024,
    seed: int = 0,
    models: Mapping | None = None,
    root: Path | None = None,
) -> pd.DataFrame:
    """How close each trained toy model is to the ideal token-wise model (§4; notebook
    04_marginal_trap, and the training cards).

    One row per language: over ``n_states`` partially masked states drawn like training inputs
    (:func:`sample_partial_states`), the mean / 95th percentile / max of KL(exact || trained)
    and the mean / max TV at the masked positions; ``invalid_k1_left_to_right`` and
    ``invalid_k1_random``: exact probability that one-token-per-step decoding with the trained
    marginals ends invalid (0 for the exact marginals; near 0 iff the conditionals were learned);
    ``eval_loss`` (:func:`evaluation_loss`) next to its floor ``entropy_per_token``.
    """
    langs = toy_languages(langs)
    loaded = toy_models_for(langs, models, root)
    rows = []
    for lang in langs:
        model = loaded[lang.name]
        fn = model_marginal_fn(model, lang)
        div = marginal_divergence(fn, lang, sample_partial_states(lang, n_states, seed))
        dec = ModelMarginalDecoder(lang, fn)
        rows.append(
            dict(
                language=lang.name,
                n_states=int(n_states),
                n_positions=len(div),
                kl_mean=float(div["kl"].mean()),
                kl_p95=float(div["kl"].quantile(0.95)),
                kl_max=float(div["kl"].max()),
                tv_mean=float(div["tv"].mean()),
                tv_max=float(div["tv"].max()),
                invalid_k1_left_to_right=dec.invalid_exact(1, "left_to_right"),
                invalid_k1_random=dec.invalid_exact(1, "random"),
                eval_loss=evaluation_loss(model, lang),
                entropy_per_token=entropy_per_token(lang),
            )
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the real model's sweep


def bootstrap_ci(values: Iterable[float], n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float, int]:
    """``(mean, low, high, n)``: :func:`dlmpaper.core.stats.bootstrap_mean` of the finite ``values``
    (one per prompt) and how many there are; NaNs where none is finite."""
    x = np.asarray(list(values), dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan"), 0
    return (*bootstrap_mean(x, int(n_boot), seed), int(x.size))


def wilson_interval(rate: float, n: int) -> tuple[float, float]:
    """95% Wilson interval of a simulated proportion ``rate`` over ``n`` draws (notebook 04,
    the one-step simulation of "_ _ tennis"); the same interval as :mod:`dlmpaper.core.trap` uses."""
    if n < 1 or not 0.0 <= rate <= 1.0:
        raise ValueError(f"need n >= 1 and 0 <= rate <= 1, got n={n}, rate={rate}")
    return wilson(int(round(rate * n)), int(n))


def summarize_over_prompts(
    frame: pd.DataFrame, by: Sequence[str], metrics: Sequence[str], n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Mean over rows (one per prompt) of each metric per group ``by``, with a bootstrap 95% CI.

    Tidy columns: ``*by, metric, mean, ci_low, ci_high, n`` (``n``: rows with a finite value;
    e.g. the adjacent-duplicate rate is NaN for answers under two tokens). Notebook 04, the
    sweep of :func:`dlmpaper.core.sampling.sweep` and the :func:`revision_rates` table."""
    by = list(by)
    _need(frame, [*by, *metrics], "summarize_over_prompts")
    rows = []
    for key, group in frame.groupby(by, sort=True, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        for m in metrics:
            mean, lo, hi, n = bootstrap_ci(group[m].astype(float), n_boot, seed)
            rows.append({**dict(zip(by, key)), "metric": m, "mean": mean, "ci_low": lo, "ci_high": hi, "n": n})
    return pd.DataFrame(rows, columns=[*by, "metric", "mean", "ci_low", "ci_high", "n"])


def paired_change(
    frame: pd.DataFrame,
    metric: str,
    *,
    baseline,
    compare,
    column: str = "tokens_per_step",
    by: Sequence[str] = ("block_length",),
    key: str = "prompt",
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per group ``by``: mean over prompts of ``metric(compare) - metric(baseline)``, the two
    settings of ``column`` paired by ``key`` (the same prompt), with a bootstrap 95% CI.

    Columns ``*by, metric, baseline, compare, diff, ci_low, ci_high, n, expected`` (the sign
    from :data:`EXPECTED_DIRECTION`) and ``agrees``: True when the CI excludes 0 in the
    expected direction, False when it excludes 0 the other way, NaN (None) otherwise or when
    there is no expectation. Notebook 04's verdict lines."""
    by = list(by)
    _need(frame, [*by, column, key, metric], "paired_change")
    rows = []
    for group_key, group in frame.groupby(by, sort=True, observed=True):
        group_key = group_key if isinstance(group_key, tuple) else (group_key,)
        wide = group.pivot_table(index=key, columns=column, values=metric, aggfunc="mean")
        if baseline not in wide.columns or compare not in wide.columns:
            raise ValueError(f"paired_change: {column}={baseline!r} or {compare!r} missing in group {group_key}")
        mean, lo, hi, n = bootstrap_ci(wide[compare] - wide[baseline], n_boot, seed)
        expected = EXPECTED_DIRECTION.get(metric, 0)
        if expected == 0 or n == 0 or lo <= 0 <= hi:
            agrees = None
        else:
            agrees = bool(np.sign(mean) == expected)
        rows.append(
            {
                **dict(zip(by, group_key)),
                "metric": metric,
                "baseline": baseline,
                "compare": compare,
                "diff": mean,
                "ci_low": lo,
                "ci_high": hi,
                "n": n,
                "expected": expected,
                "agrees": agrees,
            }
        )
    out = pd.DataFrame(rows)
    out["agrees"] = pd.Series([r["agrees"] for r in rows], index=out.index, dtype=object)  # True / False / None
    return out


def example_answers(
    sweep: pd.DataFrame,
    tokens_per_step: Sequence[int] = (1, 4, 16),
    *,
    prompts: Sequence[int] = (0, 1),
    block_lengths: Sequence[int] | None = None,
    width: int = 60,
) -> pd.DataFrame:
    """Side-by-side answers (rows ``prompt, block_length``; one column ``k=<t>`` per tokens per
    step), each shortened to ``width`` characters on one line (notebook 04, after figure
    ``04_real_model_sweep``). ``sweep`` is :func:`dlmpaper.core.sampling.sweep`'s table."""
    _need(sweep, ["prompt", "block_length", "tokens_per_step", "text"], "example_answers")
    d = sweep[sweep["prompt"].isin(list(prompts)) & sweep["tokens_per_step"].isin(list(tokens_per_step))]
    if block_lengths is not None:
        d = d[d["block_length"].isin(list(block_lengths))]
    if d.empty:
        raise ValueError("example_answers: no row matches these prompts / tokens_per_step / block lengths")
    short = d["text"].map(
        lambda s: textwrap.shorten(" ".join(str(s).split()) or "(empty)", width=width, placeholder=" ...")
    )
    wide = d.assign(text=short).pivot(index=["prompt", "block_length"], columns="tokens_per_step", values="text")
    wide = wide.reindex(columns=[t for t in tokens_per_step if t in wide.columns])
    wide.columns = [f"k={t}" for t in wide.columns]
    return wide


def end_fill_by_step(tokens: pd.DataFrame, end_ids: Iterable[int]) -> pd.DataFrame:
    """Per decoding step: tokens committed, how many are end ids, and the mean position (0 =
    first generated token) of the committed end tokens and of the others (notebook 04: without
    blocks, low-confidence decoding commits end tokens at the tail first and answers shrink).
    ``tokens`` is :meth:`dlmpaper.core.sampling.GenerationResult.to_frame`."""
    _need(tokens, ["step", "position", "token_id"], "end_fill_by_step")
    ends = set(int(e) for e in end_ids)
    d = tokens.assign(is_end=tokens["token_id"].isin(ends))
    out = d.groupby("step", sort=True).agg(
        committed=("token_id", "size"),
        end_tokens=("is_end", "sum"),
    )
    out["end_share"] = out["end_tokens"] / out["committed"]
    out["mean_end_position"] = d[d["is_end"]].groupby("step")["position"].mean()
    out["mean_other_position"] = d[~d["is_end"]].groupby("step")["position"].mean()
    return out.reset_index()


# --------------------------------------------------------------------------- committed states


def commit_phase(check: pd.DataFrame, steps: int, labels: Sequence[str] = ("early", "late")) -> pd.DataFrame:
    """Add ``phase`` to a :func:`dlmpaper.core.sampling.remask_check` table: the global commit step
    ``0 .. steps-1`` cut into ``len(labels)`` equal parts (step ``s`` falls in part
    ``floor(s * len(labels) / steps)``): with two labels, the first and second half of the
    decoding. Notebook 04, figure ``04_committed_states``."""
    _need(check, ["step"], "commit_phase")
    if steps < 1 or not labels:
        raise ValueError(f"commit_phase needs steps >= 1 and at least one label, got steps={steps}")
    step = check["step"].to_numpy()
    if np.any((step < 0) | (step >= steps)):
        raise ValueError(f"commit steps must lie in 0..{steps - 1}; pass the GenerationResult's settings.steps")
    part = np.minimum(step * len(labels) // steps, len(labels) - 1)
    phase = pd.Categorical(np.asarray(labels, dtype=object)[part], categories=list(labels), ordered=True)
    return check.assign(phase=phase)


def revision_rates(check: pd.DataFrame, by: Sequence[str] = ("tokens_per_step",)) -> pd.DataFrame:
    """Per prompt and group ``by``: ``would_revise`` = share of checked committed tokens whose
    re-masked prediction differs, ``n_tokens`` checked. One row per prompt, ready for
    :func:`summarize_over_prompts` (prompts are the unit of the bootstrap)."""
    by = list(by)
    _need(check, [*by, "prompt", "would_revise"], "revision_rates")
    out = (
        check.assign(would_revise=check["would_revise"].astype(float))
        .groupby([*by, "prompt"], observed=True, sort=True)["would_revise"]
        .agg(["mean", "size"])
        .reset_index()
        .rename(columns={"mean": "would_revise", "size": "n_tokens"})
    )
    return out
