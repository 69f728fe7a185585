"""The work of each DVC stage, as plain functions of the validated config (stage scripts stay thin)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inference_study.config import StudyConfig
from inference_study.environment import collect_environment
from inference_study.models import prepare_model
from inference_study.plan import bench_unit, scenario_unit
from inference_study.preflight import check_before_work
from inference_study.results import write_json_atomic, write_result, write_scenario_result
from inference_study.roofline import ROOFLINE_NAME, measure_roofline
from inference_study.run import run_unit
from inference_study.strict import ConfigError

RESULTS_DIR = Path("results")
REPORTS_DIR = Path("reports")
ENV_NAME = "env.json"


def model_dir(name: str) -> Path:
    return RESULTS_DIR / "models" / name


def environment_stage(study: StudyConfig, cell: dict[str, Any], output_root: Path) -> None:
    """Check what needs the machine before any other stage works, then fingerprint it; the file changes only
    when the machine or its software does."""
    check_before_work(study, output_root, output_root / "models")
    write_json_atomic(output_root / ENV_NAME, collect_environment().model_dump())


def roofline_stage(study: StudyConfig, cell: dict[str, Any], output_root: Path) -> None:
    """Measure the GPU's memory bandwidth and matmul throughput once per environment."""
    roofline = measure_roofline(collect_environment().gpu_name)
    write_json_atomic(output_root / ROOFLINE_NAME, roofline.model_dump())


def model_stage(study: StudyConfig, cell: dict[str, Any], output_root: Path) -> None:
    name = _require(cell, "model")
    if name not in study.models:
        raise ConfigError(f"cell.model: unknown model {name!r}; allowed: {sorted(study.models)}")
    prepare_model(name, study.models[name], output_root / "models" / name)


def bench_stage(study: StudyConfig, cell: dict[str, Any], output_root: Path) -> None:
    """Measure one cell and write its result; an OOM is a recorded outcome, not a stage failure.

    The model always comes from the pipeline's prepared copy under results/models/.
    """
    unit = bench_unit(study, cell)
    declared = output_root / "cells" / str(cell["model"]) / str(cell["backend"]) / (
        f"b{cell['batch_size']}_i{cell['input_len']}_o{cell['output_len']}.json")
    if unit.result_path(output_root) != declared:  # the path DVC names from the raw values, and no other
        raise ConfigError(f"cell: {cell} would be written to {unit.result_path(output_root)}, not to this stage's "
                          f"declared output {declared}")
    result = run_unit(unit, model_dir(unit.cell.model), collect_environment())
    write_result(unit.result_path(output_root), result)
    print(f"{unit.cell.key}: {result.status}" + (f" ({result.error})" if result.error else ""))


def scenario_stage(study: StudyConfig, cell: dict[str, Any], output_root: Path) -> None:
    """Run one scenario (`+cell.scenario`) on one model (`+cell.model`) and write its result."""
    unit = scenario_unit(study, cell)
    result = run_unit(unit, model_dir(unit.model_name), collect_environment())
    write_scenario_result(unit.result_path(output_root), result)
    print(f"{unit.key}: {result.status}" + (f" ({result.error})" if result.error else ""))


def _require(cell: dict[str, Any], key: str) -> Any:
    if key not in cell:
        raise ConfigError(f"cell.{key}: missing; pass it as an override, e.g. +cell.{key}=...")
    return cell[key]
