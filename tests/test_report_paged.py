"""A declared pair in the `ratios` view: the h100 preset's paged-KV comparison, rendered from its declaration.

Results are synthetic (factories.make_result): every token of a backend takes a fixed step, so the
expected ratios follow from the steps alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.repository import cells
from helpers.factories import make_result
from helpers.repository import composed

from inference_study.config import StudyConfig, validate_params
from inference_study.report import build_report
from inference_study.report.comparisons import LABELS
from inference_study.results import write_result

# The h100 preset declares `hf_paged` against `hf_static_compiled` and `hf_eager`, with a ratio expected at
# batch 8, 512/512; here on the tiny model at that shape and at batch 1.
PRESET = ["study=h100", "sweep.models=[tiny_llama]", "sweep.batch_sizes=[1,8]", "sweep.input_lens=[512]",
          "sweep.output_lens=[512]"]
SWEEP = [*PRESET, "sweep.backends=[hf_eager,hf_static_compiled,hf_paged]"]
STEP_S = {"hf_eager": 0.012, "hf_static_compiled": 0.010, "hf_compiled_loop": 0.008, "hf_fused_loop": 0.006,
          "hf_paged": 0.011}


def compose(*overrides: str) -> StudyConfig:
    return validate_params(composed(*overrides))


def section(study: StudyConfig, root: Path, measured: set[str], title: str = "Paged KV") -> str:
    for cell in cells(study):
        if cell.backend in measured:
            write_result(cell.result_path(root / "results"), make_result(cell, STEP_S[cell.backend]))
    build_report(study, root / "results", root / "out", root / "results" / "roofline.json")
    return (root / "out" / "report.md").read_text().split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _rows(text: str, heading: str) -> list[dict[str, str]]:
    """The markdown table under `heading`, one dict per row."""
    table = next(block for block in text.split(heading, 1)[1].split("\n\n") if block.startswith("|"))
    header, _, *rows = table.strip().splitlines()
    names = [c.strip() for c in header.split("|")]
    return [dict(zip(names, [c.strip() for c in row.split("|")])) for row in rows]


def test_the_preset_declares_the_pair_and_its_words() -> None:
    (pair,) = compose(*SWEEP).study.comparisons.pairs
    assert (pair.candidate, pair.against, pair.view) == ("hf_paged", ["hf_static_compiled", "hf_eager"], "ratios")
    assert pair.expected.at.model_dump() == {"batch_size": 8, "input_len": 512, "output_len": 512}
    assert "TensorRT-LLM paged-KV benchmark" in pair.expected.source and "seed" not in pair.note.lower()


def test_a_declared_pair_renders_its_ratio_table_per_rung(tmp_path: Path) -> None:
    study = compose(*SWEEP)
    text = section(study, tmp_path, set(STEP_S))
    assert study.study.comparisons.pairs[0].note.split(".")[0] in text, "the preset's note is shown"
    static = _rows(text, "### `hf_paged` ÷ `hf_static_compiled`")
    assert [(row["batch_size"], row["higher tok/s"]) for row in static] == [("1", "hf_static_compiled"),
                                                                            ("8", "hf_static_compiled")]
    # Every token takes its backend's step: throughput scales as 1/step, every latency as step.
    for row in static:
        assert float(row["tok/s ×"]) == pytest.approx(0.010 / 0.011, rel=1e-2)
        assert float(row["E2E P50 ×"]) == pytest.approx(0.011 / 0.010, rel=1e-2)
    assert "`hf_paged` has the higher output tokens/s in 0 of 2 shapes, `hf_static_compiled` in 2." in text
    eager = _rows(text, "### `hf_paged` ÷ `hf_eager`")
    assert {row["higher tok/s"] for row in eager} == {"hf_paged"}


def test_the_expected_ratio_line_is_computed_from_the_cells(tmp_path: Path) -> None:
    """The line carries this run's ratio at the declared shape, and the declared ratio and its side of 1."""
    raw = composed(*SWEEP)
    raw["study"]["comparisons"]["pairs"][0]["expected"]["ratio"] = 1.25
    text = section(validate_params(raw), tmp_path, set(STEP_S))
    label = LABELS["output_tokens_per_s"][0]
    for rung, side, outcome in (("hf_static_compiled", "below 1", "where above 1 was expected"),
                                ("hf_eager", "above 1", "as expected")):
        row = next(r for r in _rows(text, f"### `hf_paged` ÷ `{rung}`") if r["batch_size"] == "8")
        shown = f"{float(row['tok/s ×']):.2f}"
        assert shown == f"{STEP_S[rung] / STEP_S['hf_paged']:.2f}"
        assert (f"At batch 8, input 512, output 512 on `tiny_llama`, `hf_paged` ÷ `{rung}` {label} is {shown}× "
                f"(expected 1.25×): {side}, {outcome}.") in text
    assert "Expected from the TensorRT-LLM paged-KV benchmark" in text and "1.25× output tokens/s" in text


def test_the_expected_shape_absent_is_said(tmp_path: Path) -> None:
    text = section(compose(*SWEEP, "sweep.batch_sizes=[1,4]"), tmp_path, set(STEP_S))
    assert ("Batch 8, input 512, output 512 has no measured `hf_paged` / `hf_static_compiled` pair in this run, "
            "so the expected 0.92× is not checked here.") in text


def test_a_pair_whose_backend_is_not_in_the_study_says_so_and_how_to_add_it(tmp_path: Path) -> None:
    study = compose(*PRESET)  # the preset's own sweep leaves hf_paged out
    text = section(study, tmp_path, set(study.sweep.backends))
    assert ("Not in this study: `hf_paged` has no configured cell, so this comparison is not made. Add it to the "
            "study (`sweep.backends`") in text
    assert "###" not in text and "Ratios are" not in text


def test_a_pair_renders_the_rungs_it_has_and_names_the_one_it_lacks(tmp_path: Path) -> None:
    text = section(compose(*PRESET, "sweep.backends=[hf_eager,hf_paged]"), tmp_path, set(STEP_S))
    assert "Not in this study: `hf_static_compiled` has no configured cell, so the comparison leaves it out." in text
    assert "### `hf_paged` ÷ `hf_eager`" in text and "÷ `hf_static_compiled`" not in text


def test_a_configured_but_unmeasured_candidate_names_its_cells(tmp_path: Path) -> None:
    text = section(compose(*SWEEP), tmp_path, {"hf_eager", "hf_static_compiled"})
    assert "- `hf_paged` on `tiny_llama`: no usable measurement (2 missing)" in text
    assert "###" not in text


def test_the_default_preset_declares_no_pair(tmp_path: Path) -> None:
    study = compose("sweep.backends=[hf_eager,hf_paged]", "sweep.batch_sizes=[1]", "sweep.input_lens=[32]")
    for cell in cells(study):
        write_result(cell.result_path(tmp_path / "results"), make_result(cell, STEP_S[cell.backend]))
    build_report(study, tmp_path / "results", tmp_path / "out", tmp_path / "results" / "roofline.json")
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Paged KV" not in text and "## Speedup over `hf_eager`" in text
