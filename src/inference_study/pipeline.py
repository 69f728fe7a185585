"""The work of each DVC stage, as plain functions of the validated config (stage scripts stay thin)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inference_study.config import ConfigError, StudyConfig
from inference_study.results import write_json_atomic
from inference_study.roofline import ROOFLINE_NAME

RESULTS_DIR = Path("results")
REPORTS_DIR = Path("reports")
ENV_NAME = "env.json"


def model_dir(name: str) -> Path:
    return RESULTS_DIR / "models" / name


def environment_stage(study: StudyConfig, cell: dict[str, Any], output_root: Path) -> None:
    """Fingerprint the machine; the file changes only when the machine or its software does."""
    from inference_study.environment import collect_environment

    write_json_atomic(output_root / ENV_NAME, collect_environment().model_dump())


def roofline_stage(study: StudyConfig, cell: dict[str, Any], output_root: Path) -> None:
    """Measure the GPU's memory bandwidth and matmul throughput once per environment."""
    from inference_study.environment import collect_environment
    from inference_study.roofline import measure_roofline

    roofline = measure_roofline(collect_environment().gpu_name)
    write_json_atomic(output_root / ROOFLINE_NAME, roofline.model_dump())


def model_stage(study: StudyConfig, cell: dict[str, Any], output_root: Path) -> None:
    from inference_study.models import prepare_model

    name = _require(cell, "model")
    if name not in study.models:
        raise ConfigError(f"cell.model: unknown model {name!r}; allowed: {sorted(study.models)}")
    prepare_model(name, study.models[name], output_root / "models" / name)


def bench_stage(study: StudyConfig, cell: dict[str, Any], output_root: Path) -> None:
    """Measure one cell and write its result; an OOM is a recorded outcome, not a stage failure.

    The model always comes from the pipeline's prepared copy under results/models/.
    """
    from inference_study.environment import collect_environment
    from inference_study.harness import run_cell
    from inference_study.results import write_result

    target = study.validate_cell(cell)
    result = run_cell(study, target, model_dir(target.model), collect_environment())
    write_result(target.result_path(output_root), result)
    print(f"{target.key}: {result.status}" + (f" ({result.error})" if result.error else ""))


def scenario_stage(study: StudyConfig, cell: dict[str, Any], output_root: Path) -> None:
    """Run one scenario (`+cell.scenario`) on one model (`+cell.model`) and write its result."""
    from inference_study.environment import collect_environment
    from inference_study.results import scenario_result_path, write_scenario_result
    from inference_study.scenarios.run import run_scenario

    scenario, model = _require(cell, "scenario"), _require(cell, "model")
    enabled = study.scenarios.enabled()
    if scenario not in enabled or model not in enabled[scenario].models:
        runs = {name: settings.models for name, settings in enabled.items()}
        raise ConfigError(f"cell.scenario: {scenario!r} on {model!r} is not configured to run; "
                          f"configured: {runs}")
    result = run_scenario(study, scenario, model, model_dir(model), collect_environment())
    write_scenario_result(scenario_result_path(output_root, scenario, model), result)
    print(f"scenario {scenario} on {model}: {result.status}" + (f" ({result.error})" if result.error else ""))


def report_stage(study: StudyConfig, cell: dict[str, Any], output_root: Path) -> None:
    from inference_study.report import build_report

    build_report(study, output_root, REPORTS_DIR / study.study.name, output_root / ROOFLINE_NAME)


def _require(cell: dict[str, Any], key: str) -> Any:
    if key not in cell:
        raise ConfigError(f"cell.{key}: missing; pass it as an override, e.g. +cell.{key}=...")
    return cell[key]
