"""Table helpers (dlmpaper.core.tables) and the weighted bootstrap (dlmpaper.core.stats), by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlmpaper.core.stats import resample_index, resample_weights, weighted_bootstrap_interval
from dlmpaper.core.tables import ci_text, require_columns, rounded


def test_ci_text_formats_each_row():
    frame = pd.DataFrame({"mean": [0.5, 0.12345], "ci_low": [0.25, -0.0004], "ci_high": [0.75, 1.0]})
    assert ci_text(frame).tolist() == ["0.500 [0.250, 0.750]", "0.123 [-0.000, 1.000]"]
    assert ci_text(frame, digits=1).tolist() == ["0.5 [0.2, 0.8]", "0.1 [-0.0, 1.0]"]
    with pytest.raises(ValueError, match=r"ci_text needs columns \['ci_high'\]"):
        ci_text(frame.drop(columns="ci_high"))


def test_rounded_rounds_numbers_and_drops_negative_zero():
    frame = pd.DataFrame({"name": ["a", "b"], "x": [-0.00001, 1.23456], "n": [1, 2]})
    out = rounded(frame)
    assert out["x"].tolist() == [0.0, 1.2346] and str(out["x"].iloc[0]) == "0.0"
    assert out["name"].tolist() == ["a", "b"] and out["n"].tolist() == [1, 2]


def test_require_columns_names_what_is_missing():
    require_columns(pd.DataFrame({"a": [1]}), ["a"], "f")
    with pytest.raises(ValueError, match=r"f needs columns \['b', 'c'\]"):
        require_columns(pd.DataFrame({"a": [1]}), ["a", "b", "c"], "f")


def test_resample_weights_count_the_resampled_rows():
    idx = resample_index(5, 7, seed=3)
    weights = resample_weights(5, 7, seed=3)
    assert weights.shape == (7, 5) and (weights.sum(axis=1) == 5).all()
    for b in range(7):
        assert weights[b].tolist() == np.bincount(idx[b], minlength=5).tolist()


def test_weighted_interval_equals_the_plain_bootstrap():
    values = np.arange(12, dtype=float).reshape(6, 2) ** 2
    weights = resample_weights(6, 200, seed=0)
    low, high = weighted_bootstrap_interval(values, weights)
    boots = values[resample_index(6, 200, seed=0)].mean(axis=1)
    np.testing.assert_allclose(low, np.percentile(boots, 2.5, axis=0))
    np.testing.assert_allclose(high, np.percentile(boots, 97.5, axis=0))
    const = np.ones((4, 3))
    lo, hi = weighted_bootstrap_interval(const, resample_weights(4, 50, seed=1))
    assert np.allclose(lo, 1) and np.allclose(hi, 1)
