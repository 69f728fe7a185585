"""Shared test helpers: the repository root, composed params, throwaway copies of the repository, and a
scenario result measured on the tiny model."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from inference_study.compose import compose_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


def composed(*overrides: str) -> dict:
    """The params `inference-study compose *overrides` would write, composed from this repository's conf/."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO_ROOT)
        return yaml.safe_load(compose_yaml(list(overrides)))


def scenario_result(study, model_dir: Path, record):
    """An `ok` ScenarioResult of `record` on the tiny model, measured here on the CPU (for report and schema tests)."""
    from inference_study.environment import collect_environment
    from inference_study.harness import model_info
    from inference_study.plan import scenario_unit
    from inference_study.results import ScenarioResult

    environment = collect_environment()
    return ScenarioResult(
        scenario=record.scenario,
        status="ok",
        config_hash=scenario_unit(study, {"scenario": record.scenario, "model": "tiny_llama"}).config_hash,
        device="cpu",
        model=model_info("tiny_llama", study.models["tiny_llama"], model_dir, True),
        environment=environment,
        environment_fingerprint=environment.fingerprint,
        record=record,
        null_reasons={},
    )


def tracked_files() -> list[str]:
    """Files git tracks, plus new ones not ignored: what a fresh clone of this working tree would hold."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, check=True, capture_output=True, text=True,
    ).stdout.split()
    return [name for name in listing if (REPO_ROOT / name).is_file()]


def copy_repository(target: Path) -> Path:
    """A fresh git repository at `target` holding the project's files, with no results and no DVC cache."""
    for name in tracked_files():
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, destination)
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)
    git_commit(target, "copy")
    return target


def git_commit(repo: Path, message: str) -> None:
    """Stage everything git does not ignore and commit it, as a user would after a run."""
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], cwd=repo, check=True)




def trtllm_features(study) -> list[str]:
    """The TensorRT-LLM features the study's enabled scenario variants need, as its preflight sees them."""
    from inference_study.plan import variant_features

    return [feature for family, features in variant_features(study).items() if family.name == "tensorrt_llm"
            for feature in features]


def cells(study) -> list:
    """Every cell the study plans, in the plan's order."""
    from inference_study.plan import bench_units

    return [unit.cell for unit in bench_units(study)]
