"""Tests for dlmpaper.figures.remedies: the Pareto figures of notebook 05_remedies (paper §5,
issue (ii), remedies for the marginal trap)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=True)

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from dlmpaper.figures import remedies as fr  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def small_table() -> pd.DataFrame:
    """A remedy_table-shaped frame: two languages, a few families, one infinite KL."""
    rows = []
    for lang, L in (("a", 3), ("b", 4)):
        for dec, nfe, inv, kl in [
            ("low_confidence", 1, 0.4, 0.6),
            ("low_confidence", L, 0.0, 0.0),
            ("dilated", 2, 0.1, 0.2),
            ("verifier", 2.5, 0.001, float("inf")),
            ("autoregressive", L, 0.001, 0.002),
            ("naive left_to_right", 1, 0.4, float("nan")),
        ]:
            rows.append(
                dict(language=lang, length=L, decoder=dec, label=f"{dec} {nfe}", nfe=float(nfe), invalid=inv, kl=kl)
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("metric", ["invalid", "kl"])
def test_plot_pareto_returns_a_figure_with_one_panel_per_language(metric):
    fig = fr.plot_pareto(small_table(), metric)
    assert isinstance(fig, Figure)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["a (L = 3)", "b (L = 4)"]
    # one line per family with a finite value: the naive curve has no KL, the verifier's KL is infinite
    n_lines = 5 if metric == "invalid" else 3
    assert all(len([ln for ln in ax.lines if ln.get_marker() not in (None, "None", "")]) == n_lines for ax in panels)
    assert (panels[0].get_yscale() == "symlog") == (metric == "kl")


def test_plot_pareto_rejects_missing_columns_and_unknown_metric():
    with pytest.raises(ValueError, match=r"needs columns \['nfe'\]"):
        fr.plot_pareto(small_table().drop(columns="nfe"))
    with pytest.raises(ValueError, match="kl"):
        fr.plot_pareto(small_table().drop(columns="kl"), "kl")
    with pytest.raises(ValueError, match="metric"):
        fr.plot_pareto(small_table(), "nfe")
