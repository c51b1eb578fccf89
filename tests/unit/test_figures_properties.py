"""Figures of notebook 02 (dlmpaper.figures.properties): layout and what the L1 panel reports."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dlmpaper.figures.properties import ROUNDING_TOL, ROWS, plot_d3, plot_l1, plot_property_matrices  # noqa: E402

FAMS = ["masked", "uniform", "continuous", "autoregressive"]


def _tables():
    props = ["D1", "D2", "D3", "L1", "L2"]
    paper = pd.DataFrame([{"family": f, "property": p, "value": "yes", "source": "paper"} for f in ROWS for p in props])
    measured = pd.DataFrame(
        [
            {
                "family": f,
                "property": p,
                "judgement": "no",
                "value": 0.5,
                "agrees": False,
                "counted": p != "D2",
                "status": "by construction" if p == "D2" else "measured",
            }
            for f in FAMS
            for p in props
        ]
    )
    return paper, measured


def test_property_matrix_has_four_measured_rows_and_hatches_cells_by_construction():
    fig = plot_property_matrices(*_tables())
    measured_ax = fig.axes[1]
    assert [t.get_text() for t in measured_ax.get_yticklabels()] == [
        "masked (discrete)",
        "uniform (discrete)",
        "continuous",
        "autoregressive",
    ]
    hatched = [p for p in measured_ax.patches if p.get_hatch()]
    assert len(hatched) == 4  # the D2 column
    thick = [p for p in measured_ax.patches if p.get_linewidth() > 2]
    assert len(thick) == 16  # counted cells that differ


def test_d3_shows_revisions_next_to_quality_with_intervals():
    d3 = pd.DataFrame(
        {
            "family": FAMS,
            "revisions": [0.0, 0.3, 1.2, 0.0],
            "revisions_lo": [0.0, 0.2, 1.0, 0.0],
            "revisions_hi": [0.0, 0.4, 1.4, 0.0],
            "judge_loglik": [-3.0, -8.0, -6.0, -1.0],
            "judge_lo": [-3.5, -9.0, -7.0, -1.2],
            "judge_hi": [-2.5, -7.0, -5.0, -0.8],
        }
    )
    per_step = pd.DataFrame({"family": ["masked"] * 2, "progress": [0.5, 1.0], "changed": [0.5, 0.5]})
    fig = plot_d3(d3, per_step)
    heights = [round(b.get_height(), 3) for b in fig.axes[1].patches]
    assert heights == [-3.0, -8.0, -6.0, -1.0]
    assert len(fig.axes[0].collections) == 1  # the error bars


def test_property_matrix_legend_sits_below_the_tick_labels():
    fig = plot_property_matrices(*_tables())
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    for ax in fig.axes:
        ticks = ax.get_tightbbox(renderer)  # the axes with its tick labels
        assert legend.y1 <= ticks.y0 + 1, "the legend overlaps the tick labels"
    assert "our reading" in fig.legends[0].get_title().get_text()


def test_l1_panel_counts_positions_off_the_lattice():
    lattice = pd.DataFrame({"family": ["masked"] * 3, "progress": [0.3, 0.6, 1.0], "on_lattice": [1.0, 1.0, 1.0]})
    distances = np.array([0.0] * 7 + [0.5 * ROUNDING_TOL, 0.2, 0.9])
    fig = plot_l1(lattice, {"continuous": distances})
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == [f"continuous: 2 of 10 positions > {ROUNDING_TOL:g}"]
    assert fig.axes[1].get_xscale() == "symlog"
    _, y = fig.axes[1].lines[0].get_data()
    assert y[-1] == 1.0 and np.all(np.diff(y) >= 0)
