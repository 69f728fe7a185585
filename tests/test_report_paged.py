"""A declared pair in the `ratios` view: the h100 preset's paged-KV comparison, rendered from its declaration.

Results are synthetic (factories.make_result): every token of a backend takes a fixed step, so the
expected ratios follow from the steps alone; with jitter, the repeats of a cell differ and a ratio's
interval is recomputed from the result files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.factories import make_result
from helpers.markdown import shown_ratio, table_rows
from helpers.repository import cells, composed

from inference_study.config import StudyConfig, validate_params
from inference_study.report import build_report
from inference_study.report.comparisons import LABELS
from inference_study.results import read_result, write_result
from inference_study.uncertainty import ratio

# The h100 preset declares `hf_paged` against `hf_static_compiled` and `hf_eager`, with a ratio expected at
# batch 8, 512/512; here on the tiny model at that shape and at batch 1.
PRESET = ["study=h100", "sweep.models=[tiny_llama]", "sweep.batch_sizes=[1,8]", "sweep.input_lens=[512]",
          "sweep.output_lens=[512]"]
SWEEP = [*PRESET, "sweep.backends=[hf_eager,hf_static_compiled,hf_paged]"]
STEP_S = {"hf_eager": 0.012, "hf_static_compiled": 0.010, "hf_compiled_loop": 0.008, "hf_fused_loop": 0.006,
          "hf_paged": 0.011}
ITERATIONS = 8  # enough repeats for an interval: the factory's cells converge and pass


def compose(*overrides: str) -> StudyConfig:
    return validate_params(composed(*overrides))


def write_cells(study: StudyConfig, root: Path, measured: set[str], steps: dict | None = None,
                **options: object) -> None:
    """Results of the `measured` backends' cells at `steps` (STEP_S by default); `options` go to make_result."""
    steps = steps or STEP_S
    for cell in cells(study):
        if cell.backend in measured:
            write_result(cell.result_path(root / "results"),
                         make_result(cell, steps[cell.backend], **{"iterations": ITERATIONS, **options}))


def rendered(study: StudyConfig, root: Path, title: str = "Paged KV") -> str:
    """The report's section `title`, built from the results under `root`."""
    build_report(study, root / "results", root / "out", root / "results" / "roofline.json")
    return (root / "out" / "report.md").read_text().split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def section(study: StudyConfig, root: Path, measured: set[str], steps: dict | None = None, **options: object) -> str:
    write_cells(study, root, measured, steps, **options)
    return rendered(study, root)


def _ratio(root: Path, study: StudyConfig, backend: str, other: str, batch: int):
    """`backend` ÷ `other` output tokens/s at `batch`, recomputed from the two result files."""
    cell = next(c for c in cells(study) if (c.backend, c.batch_size) == (backend, batch))
    mine, theirs = (read_result(c.result_path(root / "results")).headline.output_tokens_per_s
                    for c in (cell, cell.model_copy(update={"backend": other})))
    return ratio(mine, theirs)


def test_the_preset_declares_the_pair_and_its_words() -> None:
    (pair,) = compose(*SWEEP).study.comparisons.pairs
    assert (pair.candidate, pair.against, pair.view) == ("hf_paged", ["hf_static_compiled", "hf_eager"], "ratios")
    assert pair.expected.at.model_dump() == {"batch_size": 8, "input_len": 512, "output_len": 512}
    assert "TensorRT-LLM paged-KV benchmark" in pair.expected.source and "seed" not in pair.note.lower()


def test_a_declared_pair_renders_its_ratio_table_per_rung(tmp_path: Path) -> None:
    study = compose(*SWEEP)
    text = section(study, tmp_path, set(STEP_S))
    assert study.study.comparisons.pairs[0].note.split(".")[0] in text, "the preset's note is shown"
    static = table_rows(text.split("### `hf_paged` ÷ `hf_static_compiled`", 1)[1])
    assert [(row["batch_size"], row["throughput"]) for row in static] == [("1", "slower"), ("8", "slower")]
    # Every token takes its backend's step: throughput scales as 1/step, every latency as step.
    for row in static:
        value, low, high = shown_ratio(row["tok/s ×"])
        assert value == pytest.approx(0.010 / 0.011, rel=1e-2) and low <= value <= high < 1
        assert shown_ratio(row["TPOT P50 ×"])[0] == pytest.approx(0.011 / 0.010, rel=1e-2)
        assert row["E2E P50 ×"].endswith("× (no interval)"), "E2E P50 has no per-repeat values"
        assert float(row["E2E P50 ×"].split("×")[0]) == pytest.approx(0.011 / 0.010, rel=1e-2)
    assert ("`hf_paged` has more output tokens/s than `hf_static_compiled` in 0 of the 2 shapes compared, fewer "
            "in 2; in 0 the difference is not distinguishable.") in text
    eager = table_rows(text.split("### `hf_paged` ÷ `hf_eager`", 1)[1])
    assert {row["throughput"] for row in eager} == {"faster"}


def test_the_expected_ratio_line_is_computed_from_the_cells(tmp_path: Path) -> None:
    """The line carries this run's ratio at the declared shape with its interval, and the declared ratio and
    its side of 1."""
    raw = composed(*SWEEP)
    raw["study"]["comparisons"]["pairs"][0]["expected"]["ratio"] = 1.25
    study = validate_params(raw)
    text = section(study, tmp_path, set(STEP_S), jitter=0.01)
    label = LABELS["output_tokens_per_s"][0]
    for rung, side, outcome in (("hf_static_compiled", "below 1", "where above 1 was expected"),
                                ("hf_eager", "above 1", "as expected")):
        rows = table_rows(text.split(f"### `hf_paged` ÷ `{rung}`", 1)[1])
        row = next(r for r in rows if r["batch_size"] == "8")
        value, low, high = shown_ratio(row["tok/s ×"])
        expected = _ratio(tmp_path, study, "hf_paged", rung, 8)
        assert (value, low, high) == pytest.approx((expected.value, expected.ci_low, expected.ci_high), rel=5e-3)
        assert expected.distinguishable and low < high, "the jittered repeats give an interval that excludes 1"
        assert (f"At batch 8, input 512, output 512 on `tiny_llama`, `hf_paged` ÷ `{rung}` {label} is "
                f"{row['tok/s ×']} (expected 1.25×): {side}, {outcome}.") in text
    assert "Expected from the TensorRT-LLM paged-KV benchmark" in text and "1.25× output tokens/s" in text


def test_a_ratio_whose_interval_spans_1_is_not_distinguishable(tmp_path: Path) -> None:
    """Paged and static at the same step, with noisy repeats: no number to quote, and the expected 0.92× is
    not confirmed."""
    study = compose(*SWEEP)
    text = section(study, tmp_path, set(STEP_S), steps=STEP_S | {"hf_paged": 0.010}, jitter=0.04)
    static = table_rows(text.split("### `hf_paged` ÷ `hf_static_compiled`", 1)[1])
    for row in static:
        value, low, high = shown_ratio(row["tok/s ×"])
        expected = _ratio(tmp_path, study, "hf_paged", "hf_static_compiled", int(row["batch_size"]))
        assert value is None and row["tok/s ×"].startswith("≈1 (") and low < 1 < high
        assert (low, high) == pytest.approx((expected.ci_low, expected.ci_high), rel=5e-3)
        assert row["throughput"] == "not distinguishable"
    assert "in 2 the difference is not distinguishable." in text
    assert ("`hf_paged` ÷ `hf_static_compiled` output tokens/s is ≈1 (") in text
    assert "(expected 0.92×): not distinguishable from 1, where below 1 was expected." in text


def test_a_cell_without_an_interval_is_left_out_of_the_ratios(tmp_path: Path) -> None:
    """Paged at batch 8 timed twice only: no interval (and not converged), so no ratio rests on it."""
    study = compose(*SWEEP)
    write_cells(study, tmp_path, set(STEP_S))
    paged_b8 = next(c for c in cells(study) if (c.backend, c.batch_size) == ("hf_paged", 8))
    write_result(paged_b8.result_path(tmp_path / "results"), make_result(paged_b8, STEP_S["hf_paged"], iterations=2))
    text = rendered(study, tmp_path)
    for rung in ("hf_static_compiled", "hf_eager"):
        rows = {row["batch_size"]: row for row in table_rows(text.split(f"### `hf_paged` ÷ `{rung}`", 1)[1])}
        assert rows["8"]["tok/s ×"] == rows["8"]["throughput"] == "—"
        assert rows["1"]["tok/s ×"] != "—"
    assert "Left out of the ratios: 1 of 2 pairs, because\n- `hf_paged` cell has no interval (2 repeats): 1 pair" in text
    assert "is left out (`hf_paged` cell has no interval (2 repeats)), so the expected 0.92× is not checked." in text


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
        write_result(cell.result_path(tmp_path / "results"), make_result(cell, STEP_S[cell.backend],
                                                                        iterations=ITERATIONS))
    build_report(study, tmp_path / "results", tmp_path / "out", tmp_path / "results" / "roofline.json")
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Paged KV" not in text and "## Speedup over `hf_eager`" in text
