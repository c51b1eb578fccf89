"""One figure style and one save function for every figure (all notebooks, 00-04).

showyourwork habit: a fixed matplotlib style (Agg, TrueType fonts in PDF, a font
shipped with matplotlib) and figures that are reproducible byte for byte, so
``make figures`` on unchanged code leaves ``git status`` clean.

* :func:`use_style` - the style; call once at the top of every notebook.
* :func:`save_figure` - ``figures/NAME.pdf`` + ``figures/NAME.png``, atomic and
  without timestamps or software versions in the metadata, drawn from coordinates
  rounded by :func:`snap_figure` (README "Reproducibility": same bytes on another CPU).
* :data:`FAMILY_COLORS` / :func:`family_color` - one colour per model family
  (§2 taxonomy; notebooks 01_taxonomy, 02_five_properties).
* :data:`PROPERTY_LABELS` - the five properties D1-D3, L1-L2 (§3; notebook 02).
* :func:`token_label` - readable tokens on axes (§4 issue (i) probe, notebook
  03_positional_probe; §4 issue (ii) marginal trap, notebook 04_marginal_trap).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import matplotlib
import numpy as np

from dlmpaper.analyses.taxonomy import FAMILIES, FAMILY_LABELS, family_label

__all__ = [
    "FAMILIES",
    "FAMILY_COLORS",
    "FAMILY_LABELS",
    "PROPERTY_LABELS",
    "STYLE_RC",
    "SAVE_FORMATS",
    "PDF_METADATA",
    "PNG_METADATA",
    "PLOT_DIGITS",
    "use_style",
    "save_figure",
    "snap_figure",
    "family_color",
    "family_label",
    "token_label",
]

#: One fixed colour per family (seaborn "colorblind" hues, written out so they never drift).
FAMILY_COLORS: dict[str, str] = {
    "continuous": "#0173B2",
    "discrete-absorbing": "#DE8F05",
    "discrete-uniform": "#029E73",
    "autoregressive": "#7F7F7F",
}

#: The five properties of §3 (diffusion side D1-D3, language side L1-L2), notebook 02.
PROPERTY_LABELS: dict[str, str] = {
    "D1": "D1 smooth corruption",
    "D2": "D2 tractable intermediate states",
    "D3": "D3 iterative refinement",
    "L1": "L1 discreteness",
    "L2": "L2 structural dependency",
}

#: Formats written by :func:`save_figure`, in writing order.
SAVE_FORMATS: tuple[str, ...] = ("pdf", "png")

#: PDF info dict: drop matplotlib's defaults (creation time and version strings).
PDF_METADATA: dict[str, Any] = {"CreationDate": None, "Producer": None, "Creator": None}
#: PNG text chunks: drop the default ``Software: Matplotlib version...``.
PNG_METADATA: dict[str, Any] = {"Software": None}

#: Digits kept of every coordinate drawn in data space, relative to its axis: a grid of
#: span * 10**-PLOT_DIGITS (about 0.001 pixel of a 1200-pixel axis), see :func:`snap_figure`.
PLOT_DIGITS: int = 6

#: rcParams set by :func:`use_style` after the seaborn theme.
STYLE_RC: dict[str, Any] = {
    # Fonts: DejaVu Sans ships with matplotlib, so every machine renders the same glyphs.
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "mathtext.fontset": "dejavusans",
    "text.usetex": False,
    "axes.unicode_minus": False,
    # TrueType (Type 42) fonts in PDF/PS: editable text, no Type 3 bitmaps.
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    # Fixed ids in SVG output (otherwise random per run).
    "svg.hashsalt": "dlmpaper",
    # Fixed resolution and layout.
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.format": "pdf",
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.05,
    "savefig.transparent": False,
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
    "figure.figsize": (6.0, 3.6),
    "figure.constrained_layout.use": True,
    "pdf.compression": 6,
    "image.interpolation": "nearest",
    "legend.frameon": False,
}

_INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def use_style() -> None:
    """Apply the project's figure style (idempotent; every notebook calls it first).

    Selects the non-interactive Agg backend, except inside a Jupyter kernel whose
    inline backend (Agg-based) is kept so figures still show in the notebook. Then
    sets a seaborn ``paper``/``whitegrid`` theme and :data:`STYLE_RC`.
    """
    import seaborn as sns

    if not _inline_backend_active():
        matplotlib.use("Agg", force=True)
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font="DejaVu Sans")
    matplotlib.rcParams.update(STYLE_RC)


def _inline_backend_active() -> bool:
    if "ipykernel" not in sys.modules:
        return False
    getter = getattr(matplotlib.rcParams, "_get_backend_or_none", None)  # does not resolve the backend
    backend = getter() if getter else dict.__getitem__(matplotlib.rcParams, "backend")
    return backend in (_INLINE_BACKEND, "inline")


def save_figure(
    fig: Any, name: str, *, figures_dir: str | os.PathLike | None = None, show: bool | None = None
) -> dict[str, Path]:
    """Write ``NAME.pdf`` and ``NAME.png`` to the figures dir, atomically and reproducibly.

    ``fig`` is a matplotlib Figure (or anything with a ``.figure``, e.g. a seaborn
    FacetGrid). ``figures_dir`` defaults to :data:`dlmpaper.paths.FIGURES` (which
    ``DLMPAPER_FIGURES`` redirects). Both files are first rendered to temporary files
    in the same directory and only then moved over the targets with :func:`os.replace`,
    so a failure leaves any previous files intact. Metadata holds no timestamp and no
    software version (:data:`PDF_METADATA`, :data:`PNG_METADATA`), so the same figure
    gives the same bytes on every run. The figure is closed afterwards; in a notebook
    with the inline backend (``show=None``) or with ``show=True`` the saved PNG is
    displayed first, so the notebook shows exactly the file in ``figures/``.

    Before rendering, :func:`snap_figure` rounds what the figure draws, so values that
    differ only in their last bits (another CPU's summation order) give the same files.

    Returns ``{"pdf": Path, "png": Path}``. Used by every notebook.
    """
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    _check_name(name)
    figure = fig if isinstance(fig, Figure) else getattr(fig, "figure", None)
    if not isinstance(figure, Figure):
        raise TypeError(f"save_figure needs a matplotlib Figure (or an object with .figure), got {type(fig).__name__}")
    if figures_dir is None:
        from dlmpaper import paths

        figures_dir = paths.FIGURES
    out_dir = Path(figures_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    snap_figure(figure)
    temps: dict[str, Path] = {}
    try:
        # Render every format first; only move into place once all of them succeeded.
        for fmt in SAVE_FORMATS:
            fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=f".{fmt}.tmp")
            os.close(fd)
            temps[fmt] = Path(tmp)
            os.chmod(tmp, _file_mode())  # mkstemp creates 0600; use the usual 0644 (umask)
            metadata = PDF_METADATA if fmt == "pdf" else PNG_METADATA
            figure.savefig(temps[fmt], format=fmt, metadata=dict(metadata))
        written: dict[str, Path] = {}
        for fmt, tmp in temps.items():
            target = out_dir / f"{name}.{fmt}"
            os.replace(tmp, target)
            written[fmt] = target
        if show or (show is None and _inline_backend_active()):
            _display_png(written["png"])
        return written
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        plt.close(figure)


def snap_figure(fig: Any, digits: int = PLOT_DIGITS) -> None:
    """Round, in place, everything ``fig`` draws in data coordinates (README "Reproducibility").

    On a linear axis each coordinate goes to a grid of ``10**(E - digits)`` where ``10**E``
    is the order of magnitude of the axis' span (the autoscaled or set limits), so values
    that differ by much less than that, including noise around zero, draw identically;
    on a log axis, and for colour values (images, colour-mapped collections, norms),
    each value keeps ``digits`` significant digits. Covered: lines, rectangles, polygons
    and path patches, collections (offsets, path vertices, colour arrays), images, texts
    and annotations anchored in data coordinates, and the view limits, which are then
    recomputed from the rounded artists (autoscaled axes) and rounded themselves.
    Coordinates in axes or figure space (legends, titles, ``fig.text``) are set by code
    and left alone. The grid is exact decimal arithmetic, the same on every machine.
    Called by :func:`save_figure`; idempotent.
    """
    for ax in fig.axes:
        _snap_axes(ax, digits)


def _snap_axes(ax: Any, digits: int) -> None:
    from matplotlib.collections import QuadMesh
    from matplotlib.patches import PathPatch, Polygon, Rectangle
    from matplotlib.text import Annotation

    rx = _axis_rounder(ax.get_xlim(), ax.get_xscale(), digits)
    ry = _axis_rounder(ax.get_ylim(), ax.get_yscale(), digits)
    by_transform = {
        id(ax.transData): (rx, ry),
        id(ax.get_xaxis_transform()): (rx, None),
        id(ax.get_yaxis_transform()): (None, ry),
    }

    def rounders(transform: Any) -> tuple[Callable | None, Callable | None]:
        return by_transform.get(id(transform), (None, None))

    def snap_xy(xy: Any, fx: Callable | None, fy: Callable | None) -> np.ndarray:
        xy = np.array(xy, dtype=float).reshape(-1, 2)
        if fx is not None:
            xy[:, 0] = fx(xy[:, 0])
        if fy is not None:
            xy[:, 1] = fy(xy[:, 1])
        return xy

    for line in ax.lines:
        fx, fy = rounders(line.get_transform())
        x = np.asarray(line.get_xdata(orig=False), dtype=float)
        y = np.asarray(line.get_ydata(orig=False), dtype=float)
        line.set_data(fx(x) if fx else x, fy(y) if fy else y)
    for patch in ax.patches:
        fx, fy = rounders(patch.get_data_transform())
        if fx is None and fy is None:
            continue
        if isinstance(patch, Rectangle):
            (x0, y0), (x1, y1) = snap_xy(
                [patch.get_xy(), (patch.get_x() + patch.get_width(), patch.get_y() + patch.get_height())], fx, fy
            )
            patch.set_bounds(x0, y0, x1 - x0, y1 - y0)
        elif isinstance(patch, Polygon):
            patch.set_xy(snap_xy(patch.get_xy(), fx, fy))
        elif isinstance(patch, PathPatch):
            path = patch.get_path()
            path.vertices = snap_xy(path.vertices, fx, fy)
    for coll in ax.collections:
        offsets = coll.get_offsets()
        if offsets is not None and len(offsets):
            fx, fy = rounders(coll.get_offset_transform())
            if fx is not None or fy is not None:
                coll.set_offsets(snap_xy(offsets, fx, fy))
        fx, fy = rounders(coll.get_transform())
        if (fx is not None or fy is not None) and not isinstance(coll, QuadMesh):
            for path in coll.get_paths():
                path.vertices = snap_xy(path.vertices, fx, fy)
            coll.stale = True
        _snap_colors(coll, digits)
    for image in ax.images:
        _snap_colors(image, digits)
    for text in ax.texts:
        fx, fy = rounders(text.get_transform())
        if fx is not None or fy is not None:
            text.set_position(tuple(snap_xy([text.get_position()], fx, fy)[0]))
        if isinstance(text, Annotation) and text.xycoords == "data":
            text.xy = tuple(snap_xy([text.xy], rx, ry)[0])
    if ax.get_autoscalex_on() or ax.get_autoscaley_on():
        ax.relim()
        ax.autoscale_view()
    ax.set_xlim(*rx(np.array(ax.get_xlim(), dtype=float)))
    ax.set_ylim(*ry(np.array(ax.get_ylim(), dtype=float)))


def _snap_colors(mappable: Any, digits: int) -> None:
    """Colour values and the norm's limits to ``digits`` significant digits (the colour map picks bins)."""
    values = mappable.get_array()
    if values is not None and np.issubdtype(np.asarray(values).dtype, np.floating):
        rounded = _significant(values, digits)
        if hasattr(mappable, "set_data"):
            mappable.set_data(rounded)  # AxesImage
        else:
            mappable.set_array(rounded)
    norm = mappable.norm
    if norm.vmin is not None and norm.vmax is not None:
        vmin, vmax = _significant(np.array([norm.vmin, norm.vmax], dtype=float), digits)
        if (vmin, vmax) != (norm.vmin, norm.vmax):
            norm.vmin, norm.vmax = float(vmin), float(vmax)  # a colorbar follows (norm callbacks)


def _axis_rounder(limits: tuple[float, float], scale: str, digits: int) -> Callable[[np.ndarray], np.ndarray]:
    """Rounding for one axis: an absolute decimal grid below its span (linear), or significant digits."""
    if scale != "linear":
        return lambda values: _significant(values, digits)
    span = abs(float(limits[1]) - float(limits[0]))
    if not np.isfinite(span) or span == 0.0:
        span = max(abs(float(v)) for v in limits if np.isfinite(v)) if any(np.isfinite(limits)) else 1.0
        span = span or 1.0
    exponent = Decimal(span).adjusted() - digits  # floor(log10(span)) - digits, exactly
    if exponent < 0:
        scale_up = float(f"1e{-exponent}")  # an exact float for the exponents used here (< 23)
        return lambda values: np.rint(np.asarray(values, dtype=float) * scale_up) / scale_up
    step = float(f"1e{exponent}")
    return lambda values: np.rint(np.asarray(values, dtype=float) / step) * step


def _significant(values: Any, digits: int) -> Any:
    """Each value to ``digits`` significant digits by correctly rounded decimal formatting."""
    array = np.ma.asarray(values, dtype=float) if np.ma.isMaskedArray(values) else np.asarray(values, dtype=float)
    flat = np.asarray(array, dtype=float).ravel()
    out = np.array([float(f"{v:.{digits - 1}e}") if np.isfinite(v) else v for v in flat.tolist()], dtype=float)
    out = out.reshape(np.shape(array))
    if np.ma.isMaskedArray(array):
        return np.ma.array(out, mask=np.ma.getmaskarray(array))
    return out


def _display_png(path: Path) -> None:
    """Show the saved PNG in Jupyter at screen size (figure.dpi / savefig.dpi of its pixels)."""
    try:
        from IPython.display import Image, display
    except ImportError:
        return
    data = path.read_bytes()
    width_px = int.from_bytes(data[16:20], "big")  # PNG IHDR width
    scale = matplotlib.rcParams["figure.dpi"] / matplotlib.rcParams["savefig.dpi"]
    display(Image(data=data, format="png", width=max(1, round(width_px * scale))))


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError("figure name must be a non-empty string such as 'probe_top3'")
    if "/" in name or "\\" in name or os.sep in name:
        raise ValueError(
            f"figure name {name!r} contains a path separator; pass a bare name, use figures_dir= for the folder"
        )
    if name.lower().endswith(tuple(f".{fmt}" for fmt in SAVE_FORMATS)):
        raise ValueError(f"figure name {name!r} has a suffix; pass it without (both .pdf and .png are written)")
    if not _NAME_RE.match(name):
        raise ValueError(f"figure name {name!r} must match {_NAME_RE.pattern} (letters, digits, '_', '-', '.')")


def family_color(family: str) -> str:
    """Colour of a model family (§2 taxonomy); raises ValueError naming the known families."""
    try:
        return FAMILY_COLORS[family]
    except KeyError:
        raise ValueError(f"unknown family {family!r}; use one of {', '.join(FAMILIES)}") from None


_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
_SPACE_MARK = "\u2423"  # OPEN BOX, in DejaVu Sans


def token_label(text: str, *, max_chars: int | None = None) -> str:
    """Make a decoded token readable on a plot axis (§4 issue (i) probe tables, notebook 03).

    * leading and trailing spaces become ``"␣"`` (one per space), so ``" the"`` -> ``"␣the"``;
      inner spaces are kept;
    * newline, tab and carriage return become the escapes ``\\n``, ``\\t``, ``\\r``;
      other control characters become ``\\xNN`` / ``\\uNNNN``;
    * ``$`` is escaped so matplotlib does not start mathtext;
    * special tokens such as ``<|endoftext|>`` or ``<|mdm_mask|>`` are kept as they are;
    * the empty string becomes ``"∅"``; ``max_chars`` truncates with ``"…"``.
    """
    if not isinstance(text, str):
        raise TypeError(f"token_label expects a str, got {type(text).__name__}; decode token ids first")
    if text == "":
        return "\u2205"
    stripped = text.lstrip(" ")
    lead = len(text) - len(stripped)
    core = stripped.rstrip(" ")
    trail = len(stripped) - len(core)
    if max_chars is not None and max_chars >= 1 and len(core) > max_chars:
        core = core[: max_chars - 1] + "\u2026"
    out = []
    for ch in core:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch == "$":
            out.append("\\$")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif not ch.isprintable() and ch != " ":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return _SPACE_MARK * lead + "".join(out) + _SPACE_MARK * trail
