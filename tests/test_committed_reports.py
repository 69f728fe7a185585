"""Every committed report can be rebuilt, without a GPU, from the raw results committed beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from inference_study.config import load_params
from inference_study.report import INPUTS, ROOFLINE_NAME, build_report

REPORTS = Path(__file__).parents[1] / "reports"
COMMITTED = sorted(path.parent.parent for path in REPORTS.glob(f"*/{INPUTS}/params.yaml"))


def test_there_are_committed_reports() -> None:
    assert {path.name for path in COMMITTED} >= {"default", "h100"}


@pytest.mark.parametrize("report_dir", COMMITTED, ids=lambda path: path.name)
def test_report_rebuilds_identically_from_its_inputs(report_dir: Path, tmp_path: Path) -> None:
    inputs = report_dir / INPUTS
    study = load_params(inputs / "params.yaml")
    assert study.study.name == report_dir.name
    headline = build_report(study, inputs, tmp_path, inputs / ROOFLINE_NAME)
    assert headline["cells_total"] == len(study.cells())
    for name in ("report.md", "results.csv", "summary.json"):
        assert (tmp_path / name).read_bytes() == (report_dir / name).read_bytes(), name
    committed_figures = sorted(p.name for p in (report_dir / "figures").glob("*.png"))
    assert committed_figures and committed_figures == sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
