"""Do two runs of the same study agree? Per cell, each headline metric's median and 95% interval in run A
and run B, and whether the intervals overlap.

    python tools/compare_runs.py params.yaml RESULTS_A RESULTS_B

Each results folder holds `cells/` as `dvc repro` writes it. Cells missing from either run are listed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from inference_study.config import load_params
from inference_study.plan import bench_units
from inference_study.results import read_result
from inference_study.tables import markdown_table


def _intervals(path: Path) -> dict[str, tuple[float, float | None, float | None]] | None:
    if not path.is_file():
        return None
    result = read_result(path)
    if result.headline is None:
        return None
    return {name: (value.value, value.ci_low, value.ci_high) for name, value in result.headline}


def compare(params: Path, first: Path, second: Path) -> pd.DataFrame:
    rows = []
    for unit in bench_units(load_params(params, legacy_ok=True)):
        a, b = _intervals(unit.result_path(first)), _intervals(unit.result_path(second))
        row: dict[str, object] = {"cell": unit.cell.key}
        if a is None or b is None:
            rows.append(row | {"overlap": "missing in " + ("A" if a is None else "B")})
            continue
        overlaps = []
        for name in a:
            (va, la, ha), (vb, lb, hb) = a[name], b[name]
            row[f"{name} A"] = f"{va:.4g} [{la:.4g}, {ha:.4g}]" if la is not None else f"{va:.4g}"
            row[f"{name} B"] = f"{vb:.4g} [{lb:.4g}, {hb:.4g}]" if lb is not None else f"{vb:.4g}"
            if None not in (la, ha, lb, hb):
                overlaps.append(la <= hb and lb <= ha)
        row["overlap"] = "all" if overlaps and all(overlaps) else f"{sum(overlaps)} of {len(overlaps)}"
        rows.append(row)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    frame = compare(*(Path(arg) for arg in sys.argv[1:4]))
    print(markdown_table(frame))
    print(f"\n{(frame['overlap'] == 'all').sum()} of {len(frame)} cells: every headline interval overlaps")
