"""Every committed report can be rebuilt, without a GPU, from the raw results committed beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.repository import cells
from helpers.repository import composed

from inference_study.config import load_params, validate_params
from inference_study.report import build_report
from inference_study.report.inputs import INPUTS, ROOFLINE_NAME

REPORTS = Path(__file__).parents[1] / "reports" / "measured"
COMMITTED = sorted(path.parent.parent for path in REPORTS.glob(f"*/{INPUTS}/params.yaml"))


def test_there_are_committed_reports() -> None:
    assert {path.name for path in COMMITTED} >= {"cpu", "h100"}


@pytest.mark.parametrize("report_dir", COMMITTED, ids=lambda path: path.name)
def test_report_rebuilds_identically_from_its_inputs(report_dir: Path, tmp_path: Path) -> None:
    inputs = report_dir / INPUTS
    study = load_params(inputs / "params.yaml", legacy_ok=True)
    headline = build_report(study, inputs, tmp_path, inputs / ROOFLINE_NAME)
    assert headline["cells_total"] == len(cells(study))
    for name in ("report.md", "results.csv", "summary.json"):
        assert (tmp_path / name).read_bytes() == (report_dir / name).read_bytes(), name
    committed_figures = sorted(p.name for p in (report_dir / "figures").glob("*.png"))
    assert committed_figures and committed_figures == sorted(p.name for p in (tmp_path / "figures").glob("*.png"))


@pytest.mark.parametrize("report_dir", COMMITTED, ids=lambda path: path.name)
def test_committed_inputs_declare_their_presets_comparisons(report_dir: Path) -> None:
    """What a committed report compares is its preset's declaration, copied into its inputs' `study` node
    (presentation only: no cell's config hash covers it)."""
    study = load_params(report_dir / INPUTS / "params.yaml", legacy_ok=True)
    name = study.study.name
    preset = validate_params(composed(*([] if name == "default" else [f"study={name}"])))
    assert study.study.comparisons == preset.study.comparisons
    assert study.study.comparisons.baseline is not None


def test_a_report_keeps_its_inputs_byte_for_byte_in_the_schema_they_were_written_in(tmp_path: Path) -> None:
    """Building from another results folder copies each result file, never the upgraded reading of it."""
    inputs = REPORTS / "h100" / INPUTS
    study = load_params(inputs / "params.yaml", legacy_ok=True)
    build_report(study, inputs, tmp_path, inputs / ROOFLINE_NAME)
    kept = sorted((tmp_path / INPUTS / "cells").rglob("*.json"))
    assert kept and any('"schema_version": 2' in path.read_text() for path in kept), "old schemas are kept"
    for path in kept:
        assert path.read_bytes() == (inputs / path.relative_to(tmp_path / INPUTS)).read_bytes(), path
