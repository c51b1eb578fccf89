"""Tests for dlmpaper.figures.taxonomy: notebook 01's tables, layouts and figures (hand-checked cases)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dlmpaper.analyses import taxonomy as AT  # noqa: E402
from dlmpaper.analyses.taxonomy import load_taxonomy  # noqa: E402
from dlmpaper.core.corruption import GaussianSchedule  # noqa: E402
from dlmpaper.figures import taxonomy as ft  # noqa: E402


def _methods(rows):
    cols = ["name", "year", "arxiv", "family", "corruption", "revisable"]
    return pd.DataFrame([dict(zip(cols, r)) for r in rows], columns=cols)


TOY = _methods(
    [
        ("Late", 2023, "2305.00001", "continuous", "Gaussian", True),
        ("Early", 2022, "2205.00001", "continuous", "Gaussian", True),
        ("Masky", 2021, None, "discrete-absorbing", "mask", False),
    ]
)


# --------------------------------------------------------------------------- tables


def test_family_summary_counts_by_hand():
    s = AT.family_summary(TOY)
    assert list(s["family"]) == ["Continuous", "Discrete (absorbing)"]  # FAMILIES order, absent ones dropped
    assert list(s["methods"]) == [2, 1]
    assert list(s["first_year"]) == [2022, 2021]
    assert list(s["last_year"]) == [2023, 2021]
    assert list(s["revisable"]) == [2, 0]
    assert s["examples"].iloc[0] == "Early, Late"  # earliest first


def test_family_summary_on_shipped_taxonomy_covers_every_method():
    methods, _ = load_taxonomy()
    s = AT.family_summary(methods)
    assert s["methods"].sum() == len(methods)
    assert list(s["family"]) == ["Continuous", "Discrete (absorbing)", "Discrete (uniform)", "Autoregressive"]


def test_methods_overview_orders_and_fills_missing_arxiv():
    o = AT.methods_overview(TOY)
    assert list(o["method"]) == ["Early", "Late", "Masky"]
    assert list(o["arxiv"]) == ["2205.00001", "2305.00001", "-"]
    assert list(o.columns) == ["family", "method", "year", "arxiv", "corruption", "revisable"]


def test_tables_reject_bad_input():
    with pytest.raises(ValueError, match="unknown family"):
        AT.family_summary(_methods([("X", 2022, None, "quantum", "?", True)]))
    with pytest.raises(ValueError, match="lacks column"):
        AT.methods_overview(TOY.drop(columns="corruption"))


# --------------------------------------------------------------------------- timeline


def test_timeline_layout_slots_by_hand():
    m = _methods(
        [
            ("A" * 20, 2021, None, "continuous", "g", True),  # label ends 2021 + 0.2 + 2.0 = 2023.2
            ("B", 2021, None, "continuous", "g", True),  # same year -> slot 1, ends 2021.3
            ("C", 2022, None, "continuous", "g", True),  # slot 0 busy until 2023.2, slot 1 free
            ("D", 2024, None, "continuous", "g", True),  # slot 0 free again
            ("E", 2021, None, "autoregressive", "-", False),
        ]
    )
    lay = ft.timeline_layout(m, char_width=0.1, pad=0.2).set_index("name")
    assert lay.loc["A" * 20, "slot"] == 0 and lay.loc["B", "slot"] == 1
    assert lay.loc["C", "slot"] == 1 and lay.loc["D", "slot"] == 0
    assert lay.loc["A" * 20, "label_end"] == pytest.approx(2023.2)
    # continuous uses 2 slots (y = 0, -1); one blank row; autoregressive starts at y = -3
    assert lay.loc["B", "y"] == -1 and lay.loc["E", "y"] == -3


def test_timeline_layout_shipped_labels_do_not_overlap():
    methods, _ = load_taxonomy()
    lay = ft.timeline_layout(methods)
    for (_, _), rows in lay.groupby(["family", "slot"]):
        rows = rows.sort_values("year")
        assert (rows["year"].to_numpy()[1:] >= rows["label_end"].to_numpy()[:-1]).all()


def test_plot_timeline_labels_every_method_and_marks_revisable():
    methods, _ = load_taxonomy()
    fig = ft.plot_timeline(methods)
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == sorted(methods["name"])
    hollow = [ln for ln in ax.lines if ln.get_markerfacecolor() == "white"]
    assert len(hollow) == int((~methods["revisable"]).sum())
    plt.close(fig)


# --------------------------------------------------------------------------- forward processes

V, D = 12, 12
E = 10.0 * torch.eye(V, D)  # far-apart rows: rounding of an un-noised embedding is exact


def _text(ids):
    return [f" w{i}" for i in ids]


def _grid(seed=0, levels=(0.0, 0.5, 1.0), x0=(2, 3, 5, 7, 11, 4)):
    return AT.forward_processes(
        torch.tensor(x0),
        levels,
        mask_id=0,
        vocab_size=V,
        embedding=E,
        vocab_ids=torch.arange(1, V),
        seed=seed,
        token_text=_text,
    )


def test_content_vocab_drops_special_ids():
    tok = type("Tok", (), {"all_special_ids": [0, 3], "__len__": lambda self: 6})()
    assert AT.content_vocab(tok).tolist() == [1, 2, 4, 5]


def test_forward_processes_endpoints_and_columns():
    g = _grid()
    assert list(g["process"].cat.categories) == list(AT.PROCESS_ORDER)
    clean = g[g["level"] == 0.0]
    assert clean["is_original"].all()  # t = 0: nothing changes, Gaussian z_0 = E[x_0] rounds back exactly
    masked = g[(g["process"] == "mask") & (g["level"] == 1.0)]
    assert (masked["state"] == "masked").all() and (masked["shown"] == "[M]").all()
    uni = g[g["process"] == "uniform"]
    assert uni["noisy_id"].between(1, V - 1).all()
    gauss = g[g["process"] == "gaussian"]
    assert gauss.loc[gauss["level"] == 0.0, "alpha_bar"].eq(1.0).all()
    assert g.loc[g["process"] != "gaussian", "alpha_bar"].isna().all()
    assert (g["token"] == g["token_id"].map(lambda i: f" w{i}")).all()


def test_forward_processes_deterministic_given_seed():
    levels = [i / 10 for i in range(11)]
    x0 = list(range(1, V)) * 3
    a, b, c = _grid(0, levels, x0), _grid(0, levels, x0), _grid(1, levels, x0)
    pd.testing.assert_frame_equal(a, b)
    assert not a["noisy_id"].equals(c["noisy_id"])


def test_forward_processes_rejects_mismatched_embedding():
    with pytest.raises(ValueError, match="rows"):
        AT.forward_processes(torch.tensor([1, 2]), [0.5], mask_id=0, vocab_size=V + 1, embedding=E)


def _hand_grid():
    """Mask: position p changes at level p + 1 of [0, .25, .5, .75, 1]; Gaussian: position 1 never changes."""
    levels = [0.0, 0.25, 0.5, 0.75, 1.0]
    rows = []
    for p in range(4):
        for k, t in enumerate(levels):
            changed = k >= p + 1
            rows.append(("mask", t, p, 10 + p, 0 if changed else 10 + p, "masked" if changed else "kept", not changed))
    for p in range(2):
        for k, t in enumerate(levels):
            changed = p == 0 and k >= 3
            rows.append(
                ("gaussian", t, p, 20 + p, 99 if changed else 20 + p, "substituted" if changed else "kept", not changed)
            )
    return pd.DataFrame(rows, columns=["process", "level", "position", "token_id", "noisy_id", "state", "is_original"])


def test_change_levels_by_hand():
    c = AT.change_levels(_hand_grid())
    mask = c[c["process"] == "mask"]
    assert mask["first_change"].tolist() == [0.25, 0.5, 0.75, 1.0]
    gauss = c[c["process"] == "gaussian"].set_index("position")["first_change"]
    assert gauss[0] == 0.75 and math.isnan(gauss[1])


def test_kept_fraction_and_change_summary_by_hand():
    g = _hand_grid()
    k = AT.kept_fraction(g)
    assert k[k["process"] == "mask"]["kept_fraction"].tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    s = AT.change_summary(g, "cosine").set_index("process")
    assert s.loc["mask", ["first_change", "half_changed", "all_changed", "spread"]].tolist() == [0.25, 0.5, 1.0, 0.75]
    assert math.isnan(s.loc["mask", "alpha_bar_first"])
    assert s.loc["gaussian", "first_change"] == 0.75 and s.loc["gaussian", "half_changed"] == 0.75
    assert math.isnan(s.loc["gaussian", "all_changed"])  # position 1 never flips
    assert s.loc["gaussian", "alpha_bar_first"] == pytest.approx(float(GaussianSchedule("cosine").alpha_bar(0.75)))


def test_plot_forward_processes_panels_and_errors():
    g = _grid(levels=[i / 10 for i in range(11)])
    fig = ft.plot_forward_processes(g, levels=[0.0, 0.5, 1.0], curve=AT.kept_fraction(g))
    grids = [ax for ax in fig.axes if ax.images]
    assert len(grids) == 3 and all(ax.images[0].get_array().shape == (3, 6) for ax in grids)
    assert sum(len(ax.texts) for ax in grids) == 3 * 3 * 6
    plt.close(fig)
    with pytest.raises(ValueError, match="not in the grid"):
        ft.plot_forward_processes(g, levels=[0.05])
    with pytest.raises(ValueError, match="token_text"):
        ft.plot_forward_processes(g.drop(columns=["shown"]))
    plt.close("all")


def test_cell_text():
    assert ft._cell_text(" the", 8) == "the"
    assert ft._cell_text("\ufffd", 8) == "<bytes>"
    assert ft._cell_text(" international", 5) == "inte\u2026"
