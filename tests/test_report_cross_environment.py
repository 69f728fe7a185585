"""The report's "Across GPUs" section (`study.compare_with`): the committed H200 run beside the frozen H100 run.

Every expected number is recomputed here from the two runs' result files and rooflines, not copied."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from inference_study.config import load_params
from inference_study.report import build_report
from inference_study.report.inputs import INPUTS, ROOFLINE_NAME
from inference_study.results import ResultError, read_result

MEASURED = Path(__file__).parents[1] / "reports" / "measured"


def _comparable_throughputs(inputs: Path) -> dict[tuple, float]:
    """Output tokens/s of each cell file that may enter a ratio (old schemas upgraded and judged again on read)."""
    out = {}
    for path in (p for p in (inputs / "cells").rglob("*.json") if "scenarios" not in p.parts):
        result = read_result(path)
        throughput = result.headline.output_tokens_per_s if result.headline else None
        if result.status == "ok" and result.verdict.comparable and throughput and throughput.ci_low is not None:
            cell = result.cell
            out[(cell.model, cell.backend, cell.batch_size, cell.input_len, cell.output_len)] = throughput.value
    return out


def _h200_run_comparing_with(tmp_path: Path, inputs: str) -> Path:
    copy = tmp_path / "h200"
    shutil.copytree(MEASURED / "h200" / INPUTS, copy / INPUTS)
    params = yaml.safe_load((copy / INPUTS / "params.yaml").read_text())
    params["study"]["compare_with"] = {"label": "h100", "inputs": inputs}
    (copy / INPUTS / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return copy


def test_cells_both_gpus_measured_are_set_side_by_side_with_bandwidth_normalised_ratios(tmp_path: Path) -> None:
    run = _h200_run_comparing_with(tmp_path, str(MEASURED / "h100" / INPUTS))
    study = load_params(run / INPUTS / "params.yaml", legacy_ok=True)
    build_report(study, run / INPUTS, run, run / INPUTS / ROOFLINE_NAME)
    here, there = (_comparable_throughputs(MEASURED / name / INPUTS) for name in ("h200", "h100"))
    both = sorted(set(here) & set(there))
    assert both, "the committed runs share comparable cells"
    bandwidth = {name: json.loads((MEASURED / name / INPUTS / ROOFLINE_NAME).read_text())["measured_bandwidth_gb_s"]
                 for name in ("h200", "h100")}
    report = (run / "report.md").read_text()
    section = report.split("## Across GPUs: h200 against h100", 1)[1].split("\n## ", 1)[0]
    assert f"a ratio of {bandwidth['h200'] / bandwidth['h100']:.3g}" in section
    rows = [line for line in section.splitlines() if line.startswith("| tinyllama") or line.startswith("| qwen")]
    table = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        table[(*cells[:2], *(int(c) for c in cells[2:5]))] = cells
    assert sorted(table) == both
    for key, cells in table.items():
        assert float(cells[5]) == pytest.approx(there[key], abs=0.06)
        assert float(cells[6]) == pytest.approx(here[key], abs=0.06)
        speed = here[key] / there[key]
        normalised = speed * bandwidth["h100"] / bandwidth["h200"]
        shown = cells[7].split()[0]
        assert shown == "≈1" or float(shown.rstrip("×")) == pytest.approx(speed, rel=5e-3)
        shown = cells[8].split()[0]
        assert shown == "≈1" or float(shown.rstrip("×")) == pytest.approx(normalised, rel=5e-3)
    assert (run / "figures" / "cross_environment.png").stat().st_size > 10_000


def test_a_missing_other_run_is_one_line_naming_the_key(tmp_path: Path) -> None:
    run = _h200_run_comparing_with(tmp_path, str(tmp_path / "nowhere"))
    study = load_params(run / INPUTS / "params.yaml", legacy_ok=True)
    with pytest.raises(ResultError) as error:
        build_report(study, run / INPUTS, run, run / INPUTS / ROOFLINE_NAME)
    assert "study.compare_with.inputs" in str(error.value) and "\n" not in str(error.value)
