"""Markdown tables for the reports: the one place that says how a value and a missing value look."""

from __future__ import annotations

import math

import pandas as pd

MISSING = "—"


def readable(value: object) -> object:
    """A float to three significant digits, without scientific notation for large rates; NaN as "—"."""
    if isinstance(value, float):
        if math.isnan(value):
            return MISSING
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return value


def markdown_table(frame: pd.DataFrame, columns: list[str] | None = None, *, readable_numbers: bool = False,
                   **options: object) -> str:
    """`frame` (or those of `columns` it has) as a markdown table without its index, every missing value
    (None or NaN) shown as "—".

    With `readable_numbers`, floats are written by `readable` and every cell is shown as written (left
    aligned); otherwise tabulate formats the numbers (`floatfmt=` and the like in `options`). tabulate shows
    None as its `missingval` but prints a float NaN as `nan`, and pandas turns None into NaN in numeric
    columns (a shape one backend measured and another did not), so NaN becomes None first.
    """
    shown = frame if columns is None else frame[[c for c in columns if c in frame.columns]]
    if readable_numbers:
        return shown.map(readable).to_markdown(index=False, missingval=MISSING, disable_numparse=True)
    shown = shown.astype(object).where(shown.notna(), None)
    return shown.to_markdown(index=False, missingval=MISSING, **options)
