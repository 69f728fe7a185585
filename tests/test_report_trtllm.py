"""The report's TensorRT-LLM section: beside every PyTorch rung with speedups when measured, else why not.

The TensorRT-LLM results here are synthetic fixtures (factories.make_result) that claim an installed
version; they exercise the tables and never leave the test's temporary directory.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers.factories import make_result

from helpers.repository import REPO_ROOT
from inference_study.compose import compose_yaml
from inference_study.config import StudyConfig, validate_params
from inference_study.environment import collect_environment
from inference_study.report import build_report
from inference_study.results import write_result

REPO = REPO_ROOT
SWEEP = ["sweep.backends=[hf_eager,hf_compiled_loop]", "sweep.batch_sizes=[1,4]", "sweep.input_lens=[32]"]
STEP_S = {"hf_eager": 0.010, "hf_compiled_loop": 0.005, "trtllm_engine_latency": 0.004,
          "trtllm_engine_throughput": 0.002, "trtllm_pytorch": 0.0025}


def compose(*overrides: str) -> StudyConfig:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        return validate_params(yaml.safe_load(compose_yaml([*SWEEP, *overrides])))


def report(study: StudyConfig, root: Path, measured: set[str]) -> str:
    environment = collect_environment().model_copy(update={"tensorrt_llm": "1.2.1"})
    for cell in study.all_cells():
        if cell.backend in measured:
            write_result(cell.result_path(root / "results"), make_result(cell, STEP_S[cell.backend], environment=environment))
    build_report(study, root / "results", root / "out", root / "results" / "roofline.json")
    return (root / "out" / "report.md").read_text()


def section(markdown: str) -> str:
    return markdown.split("## TensorRT-LLM", 1)[1].split("\n## ", 1)[0]


def test_without_trtllm_the_report_says_it_was_not_run_and_why(tmp_path: Path) -> None:
    text = section(report(compose(), tmp_path, {"hf_eager", "hf_compiled_loop"}))
    assert "Not run" in text and "study=h100_trtllm" in text and "###" not in text


def test_trtllm_cells_sit_beside_every_pytorch_rung_with_speedups(tmp_path: Path) -> None:
    study = compose("trtllm.models=[tiny_llama]", "trtllm.pytorch_models=[tiny_llama]")
    text = section(report(study, tmp_path, set(STEP_S)))
    for backend in ("trtllm_engine_latency", "trtllm_engine_throughput", "trtllm_pytorch"):
        assert f"### `{backend}` against the PyTorch rungs: tiny_llama, output tokens/s" in text
    assert "serial service" in text  # the latency engine at batch 4
    table = text.split("### `trtllm_engine_throughput` against the PyTorch rungs: tiny_llama, output tokens/s")[1]
    header, _, first, *_ = table.strip().splitlines()
    row = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in first.split("|")]))
    assert row["best PyTorch"] == "hf_compiled_loop"
    # Same token timings scaled by the step: 10 ms / 2 ms = 5x eager, 5 ms / 2 ms = 2.5x the best rung.
    assert float(row["× hf_eager"]) == pytest.approx(5.0, rel=1e-3)
    assert float(row["× best PyTorch"]) == pytest.approx(2.5, rel=1e-3)
    csv = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(csv["backend"]) == set(STEP_S)


def test_enabled_but_unmeasured_trtllm_backends_are_named_with_their_status(tmp_path: Path) -> None:
    study = compose("trtllm.models=[tiny_llama]", "trtllm.engines=[throughput]")
    text = section(report(study, tmp_path, {"hf_eager", "hf_compiled_loop"}))
    assert "`trtllm_engine_throughput` on `tiny_llama`: no usable measurement (2 missing)" in text
    assert "###" not in text
