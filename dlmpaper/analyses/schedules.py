"""Information-aware corruption on the exact toy languages (paper §5, the remedy for §4 issue (i):
corruption that follows where information is; notebook 05_remedies, section 3).

Uniform masking corrupts every position at the same rate whatever it carries. The toy languages
give each position's information exactly, so a schedule can follow it: position ``i`` is masked
with probability ``t ** w_i`` (:func:`dlmpaper.core.objectives.scheduled_corrupt`, GenMD4's
``alpha_t = 1 - t^w`` per position). :data:`SCHEDULES` compares four choices of ``w`` at equal
training compute (same steps, batch, model and seed):

* ``uniform``: ``w_i = 1``, LLaDA's linear schedule;
* ``position``: ``w_i = 2 ** (1 - 2 i / (L - 1))``, the first positions (nearest a prompt) kept
  longest, the last masked soonest;
* ``entropy``: ``w_i = 2 ** -z_i`` with ``z_i`` the standardised exact conditional entropy
  ``H(X_i | X_<i)`` (:func:`conditional_entropies`): the informative positions masked sooner, so
  more of the training signal lands on them;
* ``entropy_inverse``: ``w_i = 2 ** z_i``, the opposite (a control).

Each trained model is then measured the same way, whatever its training schedule:
:func:`any_order_nll` computes exactly, over every state, the model's expected negative
log-likelihood when its tokens are revealed in a uniformly random order (what LLaDA's linear-schedule
ELBO averages; equal to the entropy ``H(X)`` for the exact model), and :func:`schedule_table` puts
its gap to ``H(X)`` next to the exact invalid rate of one decoder
(:class:`dlmpaper.core.trap.ModelMarginalDecoder`) at one token per step and at ``ceil(L / 2)``;
:func:`schedule_summary` compares each schedule with ``uniform`` over three training seeds.
"""

from __future__ import annotations

import itertools
import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from dlmpaper.core.trap import MarginalFn, ModelMarginalDecoder, ToyLanguage, exact_marginal_fn
from dlmpaper.lm.toymodels import (
    entropy_per_token,
    evaluation_loss,
    load_schedule_model,
    model_marginal_fn,
    toy_language,
    toy_languages,
)

__all__ = [
    "METRICS",
    "SCHEDULES",
    "any_order_nll",
    "conditional_entropies",
    "load_schedule_models",
    "schedule_exponents",
    "schedule_summary",
    "schedule_table",
]

SCHEDULES: tuple[str, ...] = ("uniform", "position", "entropy", "entropy_inverse")
#: What :func:`schedule_summary` compares (lower is better for each): the any-order NLL gap, and the
#: exact invalid rate at one token per step in random and left-to-right order and at ceil(L / 2)
#: tokens per step in random order.
#: The measures of :func:`schedule_table`, each with the title its figure panel carries (notebook 05).
METRICS: dict[str, str] = {
    "nll_gap": "any-order NLL - H(X), nats / token",
    "invalid_k1_random": "P(invalid), 1 token / step, random order",
    "invalid_k1_left_to_right": "P(invalid), 1 token / step, left to right",
    "invalid_budget_random": "P(invalid), ceil(L/2) tokens / step, random",
}


def conditional_entropies(lang: ToyLanguage) -> np.ndarray:
    """``H(X_i | X_<i)`` in nats for each position ``i`` (exact, from the language's support and
    probabilities); they sum to ``H(X)``."""
    seqs, probs = lang.sequences, lang.probs
    prefix_entropy = [0.0]
    for i in range(1, lang.length + 1):
        mass: dict[bytes, float] = {}
        for row, p in zip(seqs[:, :i], probs):
            key = row.tobytes()
            mass[key] = mass.get(key, 0.0) + float(p)
        q = np.array(list(mass.values()))
        prefix_entropy.append(float(-(q * np.log(q)).sum()))
    return np.diff(np.array(prefix_entropy))


def schedule_exponents(lang: ToyLanguage | str, schedule: str) -> np.ndarray:
    """The exponents ``w`` (one per position, all > 0) of ``schedule`` on ``lang`` (module docstring)."""
    lang = toy_language(lang)
    L = lang.length
    if schedule == "uniform":
        return np.ones(L)
    if schedule == "position":
        return 2.0 ** (1.0 - 2.0 * np.arange(L) / max(L - 1, 1))
    if schedule in ("entropy", "entropy_inverse"):
        h = conditional_entropies(lang)
        z = (h - h.mean()) / h.std() if h.std() > 0 else np.zeros(L)
        return 2.0 ** (-z if schedule == "entropy" else z)
    raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


def any_order_nll(marginal_fn: MarginalFn | None, lang: ToyLanguage | str, chunk: int = 8192) -> float:
    """``E_x[ E_order[ -log q(x) revealed in a uniformly random order ] ]`` in nats per sequence,
    computed exactly: for every sequence ``x`` of the language and every set ``S`` of visible
    positions, ``-log q(x_i | x_S)`` at each hidden ``i``, averaged over ``S`` of each size and summed
    over sizes ``0 .. L-1`` (a random order reveals one position of a uniformly drawn ``S`` of each
    size). ``marginal_fn`` maps partial states to marginals (None: the exact ones, which give
    ``H(X)``)."""
    lang = toy_language(lang)
    fn = marginal_fn if marginal_fn is not None else exact_marginal_fn(lang)
    L, V = lang.length, lang.vocab_size
    visible = np.array(list(itertools.product([False, True], repeat=L)), dtype=bool)
    visible = visible[~visible.all(axis=1)]  # at least one hidden position
    sizes = visible.sum(axis=1)
    n_of_size = np.array([math.comb(L, k) for k in range(L)], dtype=np.float64)
    total = np.zeros(len(lang.sequences))
    for a in range(0, len(lang.sequences), max(1, chunk // len(visible))):
        seqs = lang.sequences[a : a + max(1, chunk // len(visible))]
        states = np.where(visible[None], seqs[:, None, :], lang.mask_id).reshape(-1, L)
        q = np.asarray(fn(states), dtype=np.float64)[..., :V]
        q = q / q.sum(axis=-1, keepdims=True)
        gold = np.repeat(seqs, len(visible), axis=0)
        logq = np.log(np.maximum(np.take_along_axis(q, gold[..., None], axis=-1)[..., 0], 1e-300))
        hidden = ~np.tile(visible, (len(seqs), 1))
        per_state = -(logq * hidden).sum(axis=1) / hidden.sum(axis=1)  # mean over hidden positions
        per_state = per_state / n_of_size[np.tile(sizes, len(seqs))]  # mean over S of its size
        total[a : a + len(seqs)] = per_state.reshape(len(seqs), len(visible)).sum(axis=1)
    return float((lang.probs * total).sum())


def load_schedule_models(langs=None, schedules: Sequence[str] = SCHEDULES, seeds: Sequence[int] = (0, 1, 2)) -> dict:
    """The shipped schedule models (``data/schedule_models``) as ``{(language, schedule, seed): model}``."""
    return {
        (lang.name, schedule, int(seed)): load_schedule_model(lang, schedule, seed)
        for schedule in schedules
        for seed in seeds
        for lang in toy_languages(langs)
    }


def schedule_table(
    models: Mapping[tuple[str, str, int], object], orders: Sequence[str] = ("random", "left_to_right")
) -> pd.DataFrame:
    """One row per trained toy model ``models[(language, schedule, seed)]`` (notebook 05, section 3):
    ``exponents`` (as text), ``nll_gap`` = (:func:`any_order_nll` - ``H(X)``) / ``L`` in nats per
    token (0 for the exact model), ``eval_loss`` (LLaDA's linear-schedule objective on fresh samples,
    the same yardstick for every model), and for each order the exact invalid rate of
    :class:`~dlmpaper.core.trap.ModelMarginalDecoder` with the model's marginals at one token per
    step (``invalid_k1_<order>``: model error alone) and at ``ceil(L / 2)`` tokens per step
    (``invalid_budget_<order>``: model error plus the marginal trap)."""
    rows = []
    for (name, schedule, seed), model in models.items():
        lang = toy_language(name)
        fn = model_marginal_fn(model, lang)
        entropy = entropy_per_token(lang) * lang.length
        row = {
            "language": lang.name,
            "schedule": schedule,
            "seed": int(seed),
            "exponents": " ".join(f"{w:.2f}" for w in schedule_exponents(lang, schedule)),
            "nll_gap": (any_order_nll(fn, lang) - entropy) / lang.length,
            "eval_loss": evaluation_loss(model, lang),
        }
        dec = ModelMarginalDecoder(lang, fn)
        for order in orders:
            row[f"invalid_k1_{order}"] = dec.invalid_exact(1, order)
            row[f"invalid_budget_{order}"] = dec.invalid_exact(math.ceil(lang.length / 2), order)
        rows.append(row)
    return pd.DataFrame(rows)


def schedule_summary(table: pd.DataFrame, metrics: Sequence[str] = tuple(METRICS)) -> pd.DataFrame:
    """Per language, schedule and metric: mean, min and max over seeds, and against ``uniform``:
    ``better`` / ``worse`` when every seed of the schedule lies below / above every seed of the
    uniform schedule (lower is better for every metric here), else ``not separable``."""
    rows = []
    for (language, schedule), g in table.groupby(["language", "schedule"], sort=False):
        base = table[(table["language"] == language) & (table["schedule"] == "uniform")]
        for m in metrics:
            x, u = g[m].to_numpy(float), base[m].to_numpy(float)
            if schedule == "uniform":
                verdict = "baseline"
            elif x.max() < u.min():
                verdict = "better"
            elif x.min() > u.max():
                verdict = "worse"
            else:
                verdict = "not separable"
            rows.append(
                {
                    "language": language,
                    "schedule": schedule,
                    "metric": m,
                    "mean": x.mean(),
                    "min": x.min(),
                    "max": x.max(),
                    "n_seeds": len(x),
                    "vs_uniform": verdict,
                }
            )
    return pd.DataFrame(rows)
