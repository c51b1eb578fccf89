"""Tests for dlmpaper.figures.style: style, reproducible atomic saves, palettes, token labels."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from dlmpaper.figures import style as plotting
from dlmpaper.figures.style import FAMILIES, family_color, family_label, save_figure, token_label, use_style


def _figure(seed: int = 0):
    use_style()
    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot(np.arange(8), rng.normal(size=8), label="probe")
    ax.imshow(rng.random((4, 4)), extent=(0, 7, -1, 1), aspect="auto")
    ax.set_xticks([0, 1, 2], [token_label(" the"), token_label("\n"), token_label("<|eot_id|>")])
    ax.set_title("top-3 ␣ tokens")
    ax.legend()
    return fig


def test_use_style_sets_reproducible_rc_and_is_idempotent():
    use_style()
    first = dict(matplotlib.rcParams)
    use_style()
    assert dict(matplotlib.rcParams) == first
    assert matplotlib.rcParams["pdf.fonttype"] == 42
    assert matplotlib.rcParams["ps.fonttype"] == 42
    assert matplotlib.rcParams["svg.hashsalt"] == "dlmpaper"
    assert matplotlib.rcParams["font.sans-serif"][0] == "DejaVu Sans"
    assert matplotlib.get_backend().lower() == "agg"


def test_save_figure_writes_pdf_and_png_and_closes(tmp_path):
    fig = _figure()
    out = save_figure(fig, "probe_top3", figures_dir=tmp_path)
    assert set(out) == {"pdf", "png"}
    assert out["pdf"] == tmp_path / "probe_top3.pdf"
    assert out["pdf"].read_bytes().startswith(b"%PDF")
    assert out["png"].read_bytes().startswith(b"\x89PNG")
    assert not plt.fignum_exists(fig.number)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probe_top3.pdf", "probe_top3.png"]  # no temp leftovers


def test_two_saves_are_byte_identical_and_carry_no_version_or_date(tmp_path):
    a = save_figure(_figure(), "same", figures_dir=tmp_path / "a")
    b = save_figure(_figure(), "same", figures_dir=tmp_path / "b")
    for fmt in ("pdf", "png"):
        assert a[fmt].read_bytes() == b[fmt].read_bytes(), fmt
    pdf = a["pdf"].read_bytes()
    assert b"CreationDate" not in pdf and b"Matplotlib" not in pdf and b"Producer" not in pdf
    assert b"Software" not in a["png"].read_bytes()
    # TrueType (Type 42) fonts, not Type 3
    assert b"/FontFile2" in pdf and b"/Type3" not in pdf
    # A different figure gives different bytes (the comparison above can fail).
    c = save_figure(_figure(seed=1), "same", figures_dir=tmp_path / "c")
    assert c["png"].read_bytes() != a["png"].read_bytes()


def test_default_dir_follows_paths_figures(tmp_path, monkeypatch):
    from dlmpaper import paths

    monkeypatch.setattr(paths, "FIGURES", tmp_path / "figs")
    out = save_figure(plt.figure(figsize=(1, 1)), "default_dir")
    assert out["png"] == tmp_path / "figs" / "default_dir.png"
    assert out["png"].exists()


def test_failed_save_leaves_previous_files_intact(tmp_path, monkeypatch):
    old = save_figure(_figure(seed=0), "fig", figures_dir=tmp_path)
    before = {fmt: p.read_bytes() for fmt, p in old.items()}

    original = matplotlib.figure.Figure.savefig

    def broken_savefig(self, fname, *args, **kwargs):
        # Write part of a file, then fail: on the png, after the pdf succeeded.
        if kwargs.get("format") == "png":
            with open(fname, "wb") as fh:
                fh.write(b"\x89PNG partial")
            raise OSError("disk full")
        return original(self, fname, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken_savefig)
    fig = _figure(seed=1)
    with pytest.raises(OSError, match="disk full"):
        save_figure(fig, "fig", figures_dir=tmp_path)
    assert {fmt: p.read_bytes() for fmt, p in old.items()} == before  # pdf not replaced either
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.pdf", "fig.png"]  # temp files removed
    assert not plt.fignum_exists(fig.number)


@pytest.mark.parametrize("name", ["", "a/b", "../x", "a\\b", "fig.pdf", "fig.PNG", ".hidden", "sp ace"])
def test_bad_names_raise(tmp_path, name):
    fig = _figure()
    with pytest.raises(ValueError):
        save_figure(fig, name, figures_dir=tmp_path)
    plt.close(fig)
    assert list(tmp_path.iterdir()) == []


def test_save_figure_rejects_non_figures(tmp_path):
    with pytest.raises(TypeError):
        save_figure("not a figure", "x", figures_dir=tmp_path)


def test_save_figure_accepts_objects_with_figure_attribute(tmp_path):
    class Grid:
        def __init__(self, figure):
            self.figure = figure

    out = save_figure(Grid(plt.figure(figsize=(1, 1))), "grid", figures_dir=tmp_path)
    assert out["pdf"].exists()


def test_family_palette():
    assert FAMILIES == ("continuous", "discrete-absorbing", "discrete-uniform", "autoregressive")
    colors = [family_color(f) for f in FAMILIES]
    assert len(set(colors)) == 4
    assert all(matplotlib.colors.is_color_like(c) for c in colors)
    assert family_label("discrete-uniform") == "Discrete (uniform)"
    with pytest.raises(ValueError, match="discrete-absorbing"):
        family_color("masked")


@pytest.mark.parametrize(
    "text, expected",
    [
        (" the", "␣the"),
        ("  Yes", "␣␣Yes"),
        ("cells", "cells"),
        ("a b", "a b"),
        ("end ", "end␣"),
        (" ", "␣"),
        ("\n", "\\n"),
        ("\n\n", "\\n\\n"),
        ("a\tb", "a\\tb"),
        ("\r\n", "\\r\\n"),
        ("<|endoftext|>", "<|endoftext|>"),
        ("<|mdm_mask|>", "<|mdm_mask|>"),
        ("[MASK]", "[MASK]"),
        ("$5", "\\$5"),
        ("\x00", "\\x00"),
        ("", "∅"),
    ],
)
def test_token_label(text, expected):
    assert token_label(text) == expected


def test_token_label_truncates_and_rejects_ids():
    assert token_label(" migration", max_chars=4) == "␣mig…"
    with pytest.raises(TypeError):
        token_label(42)


def test_token_labels_render(tmp_path):
    # Every marker is drawable in the style's font (no missing-glyph warnings become errors).
    use_style()
    fig, ax = plt.subplots()
    ax.set_xticks(range(4), [token_label(t) for t in [" the", "\n", "$x$", ""]])
    save_figure(fig, "labels", figures_dir=tmp_path)
    assert plotting.STYLE_RC["pdf.fonttype"] == 42


# ----------------------------------------------------------------------------- snap_figure
# README "Reproducibility": another CPU changes values in their last bits (summation order,
# vector width); the files must not change. Each figure is drawn twice, from exact inputs and
# from inputs moved in their last bits, and both saves must give the same PDF and PNG bytes.


def _nudge(values, k: int = 0):
    """Float values moved in their last bits: alternately one ulp up and times (1 + 1e-12)."""
    array = np.asarray(values, dtype=float)
    if k % 2:
        return array * (1 + 1e-12)
    return np.nextafter(array, np.inf)


def _nudge_frame(frame, columns=None):
    out = frame.copy()
    for k, col in enumerate(columns or [c for c in frame.columns if frame[c].dtype.kind == "f"]):
        out[col] = _nudge(frame[col].to_numpy(), k)
    return out


def _everything(nudge: bool):
    """One figure with every artist kind the notebooks draw, on data with a computed zero."""
    use_style()
    rng = np.random.default_rng(3)
    x = np.linspace(0.0, 1.0, 41)
    y = np.sin(6 * x) / 3 + 0.5
    low, high = y - 0.1, y + 0.1
    heights = rng.random(6)
    samples = rng.normal(size=300)
    grid = rng.random((5, 8))
    zero = (0.1 + 0.2) - 0.3  # 5.6e-17: "zero" that another summation order makes exactly 0
    if nudge:
        y, low, high, heights, grid = (_nudge(a, k) for k, a in enumerate((y, low, high, heights, grid)))
        samples, zero = _nudge(samples, 1), 0.0
    fig, axes = plt.subplots(2, 2, figsize=(5, 3.6))
    ax = axes[0, 0]
    ax.fill_between(x, low, high, alpha=0.3, linewidth=0)
    ax.plot(x, y, marker=".", label="mean")
    ax.step(x, np.clip(y - zero, 0, None), where="post")
    ax.axvline(float(y[5]), color="black", linestyle="--")
    ax.text(float(x[10]), float(y[10]), "peak", fontsize=6)
    ax.legend(fontsize=6)
    ax = axes[0, 1]
    ax.bar(np.arange(6) + zero, heights, width=0.8)
    ax.errorbar(np.arange(6), heights, yerr=heights / 10, fmt="o", capsize=2)
    ax.scatter(np.arange(6), heights * 0.5 + zero, s=8)
    ax = axes[1, 0]
    ax.hist(samples, bins=20)
    ax.set_yscale("log")
    ax = axes[1, 1]
    image = ax.imshow(grid, aspect="auto")
    fig.colorbar(image, ax=ax)
    return fig


def _likes(nudge: bool):
    from dlmpaper.core import trap
    from dlmpaper.figures import trap as figures_trap

    table = trap.likes_example("tennis")
    return figures_trap.plot_likes_exact(_nudge_frame(table) if nudge else table)


def _rates(nudge: bool):
    import pandas as pd

    from dlmpaper.figures import trap as figures_trap

    rows = []
    for order in ("left_to_right", "random"):
        for marginals in ("exact", "trained"):
            for k in (1, 2, 4, 8):
                # Measured-looking values (not decimal halves such as 0.3140375, which sit exactly
                # on a rounding boundary of the grid and flip with the last bit: see the README).
                v = (1 - 1 / k) / np.pi + (0.01 * np.e if marginals == "trained" else 0.0)
                rows.append(
                    dict(
                        language="agreement",
                        order=order,
                        marginals=marginals,
                        tokens_per_step=k,
                        invalid_exact=v,
                        invalid_sim=v + 0.01 / np.sqrt(7),
                        sim_ci_low=max(v - 0.04 / np.sqrt(3), 0.0),
                        sim_ci_high=v + 0.05 / np.sqrt(5),
                    )
                )
    frame = pd.DataFrame(rows)
    return figures_trap.plot_invalid_rates(_nudge_frame(frame) if nudge else frame)


@pytest.mark.parametrize("make", [_everything, _likes, _rates], ids=["every-artist", "likes-exact", "invalid-rates"])
def test_last_bit_changes_give_identical_files(tmp_path, make):
    exact = save_figure(make(False), "exact", figures_dir=tmp_path)
    nudged = save_figure(make(True), "nudged", figures_dir=tmp_path)
    for fmt in ("pdf", "png"):
        assert exact[fmt].read_bytes() == nudged[fmt].read_bytes(), fmt


def test_without_snapping_last_bit_changes_reach_the_files(tmp_path, monkeypatch):
    # The control: the nudges above are large enough to change unsnapped files.
    monkeypatch.setattr(plotting, "snap_figure", lambda fig, digits=plotting.PLOT_DIGITS: None)
    exact = save_figure(_everything(False), "exact", figures_dir=tmp_path)
    nudged = save_figure(_everything(True), "nudged", figures_dir=tmp_path)
    assert exact["pdf"].read_bytes() != nudged["pdf"].read_bytes()


def test_snap_grid_follows_the_axis_span_and_is_idempotent():
    use_style()
    fig, (lin, log) = plt.subplots(1, 2)
    lin.plot([0.0, 5.6e-17, 0.123456789, 2.0], [1.0, 1.5, 2.0, 3.0])
    lin.set_xlim(0, 2)  # span 2: grid 1e-6
    log.plot([1.0, 2.0], [1e-9 * 1.23456789, 1.0])
    log.set_yscale("log")
    plotting.snap_figure(fig)
    assert list(lin.lines[0].get_xdata()) == [0.0, 0.0, 0.123457, 2.0]
    assert log.lines[0].get_ydata()[0] == 1.23457e-9  # significant digits on a log axis
    before = [np.array(ln.get_xydata()) for ax in fig.axes for ln in ax.lines]
    limits = [(ax.get_xlim(), ax.get_ylim()) for ax in fig.axes]
    plotting.snap_figure(fig)
    assert all(
        np.array_equal(a, np.array(ln.get_xydata()))
        for a, ln in zip(before, [ln for ax in fig.axes for ln in ax.lines])
    )
    assert limits == [(ax.get_xlim(), ax.get_ylim()) for ax in fig.axes]
    plt.close(fig)
