"""Shared fixtures: the repository root, a throwaway copy of it for pipeline tests, and the tiny model."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from inference_study.compose import compose_yaml
from inference_study.config import validate_params
from inference_study.models import prepare_model

REPO_ROOT = Path(__file__).resolve().parents[1]


def composed(*overrides: str) -> dict:
    """The params `inference-study compose *overrides` would write, composed from this repository's conf/."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO_ROOT)
        return yaml.safe_load(compose_yaml(list(overrides)))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default study's tiny random Llama, built once for every test that runs a real model on CPU."""
    study = validate_params(composed())
    out_dir = tmp_path_factory.mktemp("models") / "tiny_llama"
    prepare_model("tiny_llama", study.models["tiny_llama"], out_dir)
    return out_dir


@pytest.fixture(scope="module")
def backend(model_dir: Path):
    """The tiny model loaded as the scenarios' eager baseline (fp32, CPU), once per test module."""
    from inference_study.scenarios.common import load_eager

    loaded = load_eager(model_dir, "float32", "cpu")
    yield loaded
    loaded.release()


def scenario_result(study, model_dir: Path, record):
    """An `ok` ScenarioResult of `record` on the tiny model, measured here on the CPU (for report and schema tests)."""
    from inference_study.environment import collect_environment
    from inference_study.results import ScenarioResult
    from inference_study.scenarios.run import model_info

    environment = collect_environment()
    return ScenarioResult(
        scenario=record.scenario,
        status="ok",
        config_hash=study.scenario_config_hash(record.scenario, "tiny_llama"),
        device="cpu",
        model=model_info("tiny_llama", study, model_dir, True),
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


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A fresh git repository holding the project's files, with no results and no DVC cache."""
    return copy_repository(tmp_path / "study")
