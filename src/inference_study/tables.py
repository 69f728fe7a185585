"""Markdown tables for the reports: one place that says how a missing value looks."""

from __future__ import annotations

import pandas as pd

MISSING = "—"


def markdown_table(frame: pd.DataFrame, **options: object) -> str:
    """`frame` as a markdown table without its index, every missing value (None or NaN) shown as "—".

    tabulate shows None as its `missingval` but prints a float NaN as `nan`, and pandas turns None into NaN
    in numeric columns (a shape one backend measured and another did not), so NaN becomes None first."""
    shown = frame.astype(object).where(frame.notna(), None)
    return shown.to_markdown(index=False, missingval=MISSING, **options)
