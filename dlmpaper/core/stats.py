"""Interval estimates shared by the analyses: percentile bootstraps over prompts and Spearman's rho.

The one home of the bootstrap: every confidence interval over prompts in notebooks 02-05 and in
``python -m dlmpaper.train.goals`` is a 95% percentile bootstrap over rows drawn by
:func:`resample_index` with a fixed seed, so the same inputs give the same interval byte for byte.
NaN rows (a prompt where a statistic is undefined) are left out of means. Wilson intervals for
simulated proportions are :func:`dlmpaper.core.trap.wilson`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

__all__ = [
    "bootstrap_mean",
    "bootstrap_statistic",
    "nanmean",
    "percentile_interval",
    "resample_index",
    "resample_weights",
    "spearman",
    "weighted_bootstrap_interval",
]


def nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    """Mean ignoring NaN; NaN (no warning) where every value is NaN."""
    valid = ~np.isnan(x)
    count = valid.sum(axis=axis)
    total = np.where(valid, x, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def percentile_interval(boots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2.5% and 97.5% percentiles over axis 0, ignoring NaN resamples (NaN if all are NaN)."""
    if np.isnan(boots).all():
        nan = np.full(boots.shape[1:], np.nan)
        return nan, nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanpercentile(boots, 2.5, axis=0), np.nanpercentile(boots, 97.5, axis=0)


def resample_index(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n)`` row indices drawn with replacement (``numpy.random.default_rng(seed)``)."""
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be an integer >= 1, got {n_boot!r}")
    if n < 1:
        raise ValueError("no prompts to bootstrap over")
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def resample_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n)`` resample counts: row b says how often each prompt is in bootstrap sample b
    (the same draws as :func:`resample_index`). For many columns at once: see
    :func:`weighted_bootstrap_interval`."""
    idx = resample_index(n, n_boot, seed)
    weights = np.zeros((n_boot, n))
    np.add.at(weights, (np.repeat(np.arange(n_boot), n), idx.reshape(-1)), 1.0)
    return weights


def weighted_bootstrap_interval(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Percentile 95% interval of the mean over the rows of ``values`` ``(N, M)``, every column under
    the same resamples (``weights`` from :func:`resample_weights`): one matrix product for all
    positions of the probe (:func:`dlmpaper.core.probe.position_summary`)."""
    boots = weights @ values / values.shape[0]  # (n_boot, M)
    return np.percentile(boots, 2.5, axis=0), np.percentile(boots, 97.5, axis=0)


def bootstrap_mean(values: Iterable[float], n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``values`` (one per prompt) and its percentile-bootstrap 95% CI: ``(mean, low, high)``.

    Notebook 03 uses it for shares over prompts (the headword copying check, the copy and recall
    measures of :mod:`dlmpaper.analyses.probe`).
    """
    x = np.asarray(list(values), dtype=np.float64)
    idx = resample_index(len(x), n_boot, seed)
    boots = x[idx].mean(axis=1)
    return float(x.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def bootstrap_statistic(
    values: np.ndarray, stat: Callable[[np.ndarray], float] = np.mean, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """``(estimate, low, high)``: any statistic of the rows of ``values`` (e.g. :func:`spearman` of
    ``(n, 2)`` pairs) and its 95% percentile-bootstrap interval over rows; NaN resamples are left out.
    ``(nan, nan, nan)`` for no rows."""
    values = np.asarray(values)
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    idx = resample_index(len(values), n_boot, seed)
    draws = np.array([stat(values[row]) for row in idx], dtype=float)
    low, high = percentile_interval(draws[:, None])
    return float(stat(values)), float(low[0]), float(high[0])


def spearman(pairs: np.ndarray) -> float:
    """Spearman's rho of the two columns of ``pairs`` (average ranks for ties); NaN for fewer than
    three rows or a constant column."""
    pairs = np.asarray(pairs, dtype=float)
    if len(pairs) < 3 or np.ptp(pairs[:, 0]) == 0 or np.ptp(pairs[:, 1]) == 0:
        return float("nan")
    ranks = pd.DataFrame(pairs).rank().to_numpy()
    return float(np.corrcoef(ranks[:, 0], ranks[:, 1])[0, 1])
