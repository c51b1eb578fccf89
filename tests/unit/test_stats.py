"""Hand-checked cases for dlmpaper.core.stats (the bootstraps and Spearman's rho behind every CI)."""

import numpy as np
import pytest

from dlmpaper.core import stats


def test_bootstrap_mean_of_a_constant_is_that_constant_and_is_deterministic():
    assert stats.bootstrap_mean([1.0, 1.0, 1.0]) == (1.0, 1.0, 1.0)
    first = stats.bootstrap_mean([0, 0, 1, 1], n_boot=500, seed=1)
    assert first[0] == 0.5 and first[1] < 0.5 < first[2]
    assert stats.bootstrap_mean([0, 0, 1, 1], n_boot=500, seed=1) == first
    with pytest.raises(ValueError, match="n_boot"):
        stats.bootstrap_mean([1.0], n_boot=0)
    with pytest.raises(ValueError, match="no prompts"):
        stats.bootstrap_mean([])


def test_bootstrap_statistic_brackets_the_estimate_and_handles_no_rows():
    est, lo, hi = stats.bootstrap_statistic(np.array([0.0, 1.0] * 50))
    assert est == 0.5 and lo < 0.5 < hi
    assert all(np.isnan(stats.bootstrap_statistic(np.array([]))))
    # the same resamples as bootstrap_mean: identical intervals for the mean
    values = np.arange(10.0)
    assert stats.bootstrap_statistic(values, n_boot=200, seed=3) == pytest.approx(stats.bootstrap_mean(values, 200, 3))


def test_spearman_by_hand():
    assert stats.spearman(np.array([[1, 10], [2, 20], [3, 30]])) == pytest.approx(1.0)
    assert stats.spearman(np.array([[1, 30], [2, 20], [3, 10]])) == pytest.approx(-1.0)
    # ties take average ranks: x ranks (1.5, 1.5, 3), y ranks (1, 2, 3) -> rho = 0.866...
    assert stats.spearman(np.array([[1, 1], [1, 2], [2, 3]])) == pytest.approx(np.sqrt(3) / 2)
    assert np.isnan(stats.spearman(np.array([[1, 1], [1, 2], [1, 3]])))  # constant column
    assert np.isnan(stats.spearman(np.array([[1, 1], [2, 2]])))  # fewer than three rows


def test_nanmean_leaves_nan_rows_out_without_warnings():
    x = np.array([[1.0, np.nan], [3.0, np.nan]])
    with np.errstate(all="raise"):
        out = stats.nanmean(x, axis=0)
    assert out[0] == 2.0 and np.isnan(out[1])
