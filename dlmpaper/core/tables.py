"""The tidy tables that pass between analyses, notebooks and figures (docs/ARCHITECTURE.md "Data flow"):
column checks before any work, and the one way a notebook prints an estimate with its interval."""

from __future__ import annotations

from typing import Iterable

import pandas as pd


def require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise ``ValueError`` naming the columns of ``columns`` that ``frame`` lacks (``what`` names
    the function that needs them), before any work is done on the table."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} needs columns {missing}; pass the table named in its docstring")


def ci_text(
    frame: pd.DataFrame, *, mean: str = "mean", low: str = "ci_low", high: str = "ci_high", digits: int = 3
) -> pd.Series:
    """``"mean [low, high]"`` per row, each number with ``digits`` decimals: how every notebook
    prints an estimate with its 95% interval (notebooks 03, 04 and 05)."""
    require_columns(frame, [mean, low, high], "ci_text")
    fmt = f"{{:.{digits}f}}".format
    return frame[mean].map(fmt) + " [" + frame[low].map(fmt) + ", " + frame[high].map(fmt) + "]"


def rounded(frame: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """``frame`` with its numeric columns rounded to ``digits`` for printing, and -0.0 shown as 0.0
    (notebook 05's tables)."""
    numeric = frame.select_dtypes("number").columns
    return frame.assign(**{c: frame[c].round(digits) + 0.0 for c in numeric})
