"""The report's Paged KV section: hf_paged ÷ each contiguous rung per shape, seed 000's check, or why not.

Results are synthetic (factories.make_result): every token of a backend takes a fixed step, so the
expected ratios follow from the steps alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers.factories import make_result

from helpers.repository import REPO_ROOT
from inference_study.compose import compose_yaml
from inference_study.config import StudyConfig, validate_params
from inference_study.report import build_report
from inference_study.results import write_result

REPO = REPO_ROOT
# Seed 000's shape (batch 8, 512/512) and one more batch; the pool holds 8 x 1024 tokens in 256 blocks.
SWEEP = ["sweep.backends=[hf_eager,hf_static_compiled,hf_paged]", "sweep.batch_sizes=[1,8]",
         "sweep.input_lens=[512]", "sweep.output_lens=[512]", "backends.hf_paged.num_blocks=256"]
STEP_S = {"hf_eager": 0.012, "hf_static_compiled": 0.010, "hf_compiled_loop": 0.008, "hf_paged": 0.011}


def compose(*overrides: str) -> StudyConfig:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        return validate_params(yaml.safe_load(compose_yaml(list(overrides))))


def section(study: StudyConfig, root: Path, measured: set[str]) -> str:
    for cell in study.cells():
        if cell.backend in measured:
            write_result(cell.result_path(root / "results"), make_result(cell, STEP_S[cell.backend]))
    build_report(study, root / "results", root / "out", root / "results" / "roofline.json")
    return (root / "out" / "report.md").read_text().split("## Paged KV", 1)[1].split("\n## ", 1)[0]


def _rows(text: str, heading: str) -> list[dict[str, str]]:
    """The markdown table under `heading`, one dict per row."""
    header, _, *rows = text.split(heading, 1)[1].split("\n\n")[2].strip().splitlines()
    names = [c.strip() for c in header.split("|")]
    return [dict(zip(names, [c.strip() for c in row.split("|")])) for row in rows]


def test_without_hf_paged_in_the_sweep_the_section_says_so_and_why(tmp_path: Path) -> None:
    study = compose()
    text = section(study, tmp_path, set(study.sweep.backends))
    assert "Not run: this study's `sweep.backends` does not list `hf_paged`" in text
    assert "0.92×" in text and "###" not in text


def test_ratio_per_shape_against_each_contiguous_rung_and_seed_000(tmp_path: Path) -> None:
    text = section(compose(*SWEEP), tmp_path, set(STEP_S))
    static = _rows(text, "### `hf_paged` ÷ `hf_static_compiled`")
    winners = [(row["batch_size"], row["higher tok/s"]) for row in static]
    assert winners == [("1", "contiguous"), ("8", "contiguous")]
    # Every token takes its backend's step: throughput scales as 1/step, every latency as step.
    for row in static:
        assert float(row["tok/s ×"]) == pytest.approx(0.010 / 0.011, rel=1e-2)
        assert float(row["E2E P50 ×"]) == pytest.approx(0.011 / 0.010, rel=1e-2)
    assert "Paged has the higher throughput in 0 of 2 shapes and the lower in 2." in text
    assert "paged ÷ `hf_static_compiled` output tokens/s is 0.91× (seed 000: 0.92× on TensorRT-LLM): " \
           "paged loses, as in the seed." in text
    eager = _rows(text, "### `hf_paged` ÷ `hf_eager`")
    assert {row["higher tok/s"] for row in eager} == {"paged"}
    assert "paged does not lose, unlike the seed" in text


def test_seed_000_shape_absent_is_said(tmp_path: Path) -> None:
    study = compose(*SWEEP, "sweep.batch_sizes=[1,4]")
    text = section(study, tmp_path, set(STEP_S))
    assert "has no measured `hf_paged` / `hf_static_compiled` pair in this run" in text


def test_hf_paged_in_the_sweep_but_unmeasured_names_its_cells(tmp_path: Path) -> None:
    text = section(compose(*SWEEP), tmp_path, {"hf_eager", "hf_static_compiled"})
    assert "No shape has usable measurements of both `hf_paged` and a contiguous rung " \
           "(hf_paged cells: 2 missing)" in text
    assert "###" not in text


def test_hf_paged_without_a_contiguous_rung(tmp_path: Path) -> None:
    text = section(compose(*SWEEP, "sweep.backends=[hf_compiled_loop,hf_paged]"), tmp_path, set(STEP_S))
    assert "Not compared: `sweep.backends` lists `hf_paged` but no contiguous-KV rung" in text
