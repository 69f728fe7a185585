"""A declared pair in the `best_of` view: the h100_trtllm preset's TensorRT-LLM backends beside the PyTorch
rungs, with × baseline and × the best of `against`; or what is missing.

The TensorRT-LLM results here are synthetic fixtures (factories.make_result) that claim an installed
version; they exercise the tables and never leave the test's temporary directory.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from helpers.repository import cells
from helpers.factories import make_result
from helpers.repository import composed

from inference_study.config import StudyConfig, validate_params
from inference_study.environment import collect_environment
from inference_study.report import build_report
from inference_study.results import write_result

# The preset sets each TensorRT-LLM backend against hf_eager, hf_static_compiled and hf_compiled_loop;
# this sweep leaves hf_static_compiled out.
SWEEP = ["study=h100_trtllm", "sweep.models=[tiny_llama]", "sweep.backends=[hf_eager,hf_compiled_loop]",
         "sweep.batch_sizes=[1,4]", "sweep.input_lens=[32]", "sweep.output_lens=[16]"]
STEP_S = {"hf_eager": 0.010, "hf_compiled_loop": 0.005, "trtllm_engine_latency": 0.004,
          "trtllm_engine_throughput": 0.002, "trtllm_pytorch": 0.0025}
TRTLLM = ("trtllm_engine_latency", "trtllm_engine_throughput", "trtllm_pytorch")


def compose(*overrides: str) -> StudyConfig:
    return validate_params(composed(*SWEEP, *overrides))


def report(study: StudyConfig, root: Path, measured: set[str]) -> str:
    environment = collect_environment().model_copy(update={"tensorrt_llm": "1.2.1"})
    for cell in cells(study):
        if cell.backend in measured:
            result = make_result(cell, STEP_S[cell.backend], environment=environment, iterations=8)
            write_result(cell.result_path(root / "results"), result)
    build_report(study, root / "results", root / "out", root / "results" / "roofline.json")
    return (root / "out" / "report.md").read_text()


def section(markdown: str, backend: str) -> str:
    return markdown.split(f"## `{backend}` against the PyTorch rungs\n", 1)[1].split("\n## ", 1)[0]


def test_without_trtllm_cells_each_pair_says_it_is_not_in_this_study(tmp_path: Path) -> None:
    text = report(compose("trtllm.models=[]", "trtllm.pytorch_models=[]"), tmp_path, {"hf_eager", "hf_compiled_loop"})
    for backend in TRTLLM:
        assert f"Not in this study: `{backend}`, `hf_static_compiled` have no configured cell, so this comparison " \
               "is not made." in section(text, backend)
    assert "### " not in section(text, "trtllm_pytorch")


def test_trtllm_cells_sit_beside_every_pytorch_rung_with_speedups(tmp_path: Path) -> None:
    study = compose("trtllm.models=[tiny_llama]", "trtllm.pytorch_models=[tiny_llama]")
    text = report(study, tmp_path, set(STEP_S))
    for backend in TRTLLM:
        part = section(text, backend)
        assert "### tiny_llama, output tokens/s" in part and "### tiny_llama, E2E latency P50 (ms)" in part
        assert "`hf_static_compiled` has no configured cell, so the comparison leaves it out" in part
    assert "serial service" in section(text, "trtllm_engine_latency")  # the preset's note on the latency engine
    table = section(text, "trtllm_engine_throughput").split("### tiny_llama, output tokens/s")[1]
    header, _, first, *_ = table.strip().splitlines()
    row = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in first.split("|")]))
    assert row["best of against"] == "hf_compiled_loop"
    # Same token timings scaled by the step: 10 ms / 2 ms = 5x eager, 5 ms / 2 ms = 2.5x the best rung.
    assert float(row["× hf_eager"].split("×")[0]) == pytest.approx(5.0, rel=1e-3)
    assert float(row["× best of against"].split("×")[0]) == pytest.approx(2.5, rel=1e-3)
    csv = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(csv["backend"]) == set(STEP_S)
    assert "- `trtllm_engine_throughput`: a backend. Settings `{" in text, "described by its result files"


def test_enabled_but_unmeasured_trtllm_backends_are_named_with_their_status(tmp_path: Path) -> None:
    study = compose("trtllm.models=[tiny_llama]", "trtllm.pytorch_models=[]", "trtllm.engines=[throughput]")
    text = report(study, tmp_path, {"hf_eager", "hf_compiled_loop"})
    part = section(text, "trtllm_engine_throughput")
    assert "- `trtllm_engine_throughput` on `tiny_llama`: no usable measurement (2 missing)" in part
    assert "###" not in part
    assert "Not in this study: `trtllm_engine_latency`, `hf_static_compiled` have no configured cell" in \
        section(text, "trtllm_engine_latency")
    assert "- `trtllm_engine_throughput`: no result yet, so neither its description nor its settings are recorded." \
        in text
