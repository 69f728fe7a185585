"""Reading the report's Markdown back in tests: its tables as rows, its ratios as numbers."""

from __future__ import annotations

import re

SHOWN = re.compile(r"^(?:(?P<value>[\d.]+)×|≈1) \((?P<low>[\d.]+)–(?P<high>[\d.]+)\)$")


def table_rows(text: str) -> list[dict[str, str]]:
    """The first Markdown table in `text`, one dict per row."""
    table = next(block for block in map(str.strip, text.split("\n\n")) if block.startswith("|"))
    header, _, *rows = table.splitlines()
    names = [c.strip() for c in header.split("|")]
    return [dict(zip(names, [c.strip() for c in row.split("|")])) for row in rows]


def shown_ratio(text: str) -> tuple[float | None, float, float]:
    """A ratio as written ("2.03× (1.98–2.07)", or "≈1 (0.97–1.04)": no value to quote) → value, low, high."""
    found = SHOWN.match(text)
    assert found, text
    return (float(found["value"]) if found["value"] else None), float(found["low"]), float(found["high"])
