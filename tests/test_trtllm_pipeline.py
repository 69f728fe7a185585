"""The TensorRT-LLM stages in the real dvc.yaml: absent from the default DAG, present when a preset enables
them, and a `dvc repro` that enables them without tensorrt_llm stops before any stage does work."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from helpers.runs import composed_stages, run_in_copy as run

from inference_study.trtllm.version import installed_version

TRTLLM_STAGE = re.compile(r"^(trtllm_\w+)@(\S+)", re.MULTILINE)


def stages(repo: Path, *overrides: str) -> set[str]:
    return composed_stages(repo, TRTLLM_STAGE, *overrides)


def test_default_and_h100_dags_have_no_trtllm_stage(repo_copy: Path) -> None:
    assert stages(repo_copy) == set()
    assert stages(repo_copy, "study=h100") == set()


def test_trtllm_preset_adds_convert_build_and_bench_stages(repo_copy: Path) -> None:
    assert stages(repo_copy, "study=h100_trtllm_paged_kv") == {
        "trtllm_convert@tinyllama_1b",
        "trtllm_build@tinyllama_1b-throughput", "trtllm_build@tinyllama_1b-throughput_contiguous",
        "trtllm_bench_engine@tinyllama_1b-throughput", "trtllm_bench_engine@tinyllama_1b-throughput_contiguous",
    }
    assert len(stages(repo_copy, "study=h100_trtllm")) == 2 * (1 + 2 + 2 + 1)


@pytest.mark.skipif(installed_version() is not None, reason="tensorrt_llm is installed here")
def test_repro_with_trtllm_enabled_but_not_installed_stops_before_any_work(repo_copy: Path) -> None:
    stages(repo_copy, "study=h100_trtllm")
    done = run(repo_copy, sys.executable, "-m", "dvc", "repro")
    assert done.returncode != 0
    assert "tensorrt_llm is not installed" in done.stderr and "nvcr.io/nvidia/tensorrt-llm/release" in done.stderr
    assert "study=h100" in done.stderr
    assert not (repo_copy / "results").exists(), "a stage did work before the TensorRT-LLM check"
