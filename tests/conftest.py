"""Shared fixtures: the repository root, a throwaway copy of it for pipeline tests, and the tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

from inference_study.config import validate_params
from inference_study.models import prepare_model

from helpers.repository import composed, copy_repository


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


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A fresh git repository holding the project's files, with no results and no DVC cache."""
    return copy_repository(tmp_path / "study")
