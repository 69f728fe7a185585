"""The report stage on a synthetic results tree: cells from params, OOM and missing cells shown, deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers.factories import make_result

from helpers.repository import REPO_ROOT
from inference_study.compose import compose_yaml
from inference_study.config import StudyConfig, validate_params
from inference_study.report import build_report
from inference_study.results import ResultError, write_result

REPO = REPO_ROOT


@pytest.fixture(scope="module")
def study() -> StudyConfig:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        raw = yaml.safe_load(compose_yaml(
            ["sweep.backends=[hf_eager,hf_static_compiled]", "sweep.batch_sizes=[1,4]", "sweep.input_lens=[32]"]
        ))
    return validate_params(raw)


@pytest.fixture
def results_dir(study: StudyConfig, tmp_path: Path) -> Path:
    """Eager at 10 ms/token, static at 5 ms/token; static at batch 4 ran out of memory; one stale extra file."""
    root = tmp_path / "results"
    for cell in study.cells():
        if cell.backend == "hf_static_compiled" and cell.batch_size == 4:
            write_result(cell.result_path(root), make_result(cell, status="oom"))
        else:
            step = 0.01 if cell.backend == "hf_eager" else 0.005
            write_result(cell.result_path(root), make_result(cell, step_s=step))
    stale = study.cells()[0].model_copy(update={"batch_size": 64})
    write_result(stale.result_path(root), make_result(stale))  # a removed cell's file: never read
    return root


def _build(study: StudyConfig, results_dir: Path, out: Path) -> dict:
    return build_report(study, results_dir, out, results_dir / "roofline.json")


def test_report_reads_the_configured_cells_only(study: StudyConfig, results_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    headline = _build(study, results_dir, out)
    frame = pd.read_csv(out / "results.csv")
    assert len(frame) == len(study.cells()) == 4
    assert 64 not in set(frame["batch_size"]), "the stale file of a removed cell is not globbed in"
    assert sorted(frame["status"]) == ["ok", "ok", "ok", "oom"]
    static_b1 = frame[(frame["backend"] == "hf_static_compiled") & (frame["batch_size"] == 1)].iloc[0]
    assert static_b1["greedy_match_pct"] == 100.0, "the factory's backends emit the same tokens"
    assert headline == json.loads((out / "summary.json").read_text())
    assert (headline["cells_total"], headline["cells_ok"], headline["cells_oom"]) == (4, 3, 1)


def test_speedup_uses_only_measured_cells(study: StudyConfig, results_dir: Path, tmp_path: Path) -> None:
    headline = _build(study, results_dir, tmp_path / "report")
    # only batch 1 has both backends measured; 5 ms against 10 ms per token
    key = "tiny_llama.hf_static_compiled.speedup_over_hf_eager_geomean"
    eager = make_result(study.cells()[0], step_s=0.01).throughput.output_tokens_per_s
    static = make_result(study.cells()[0], step_s=0.005).throughput.output_tokens_per_s
    assert headline[key] == pytest.approx(static / eager, rel=1e-3)


def test_report_markdown_shows_oom_and_missing(study: StudyConfig, results_dir: Path, tmp_path: Path) -> None:
    missing = study.cells()[1]
    missing.result_path(results_dir).unlink()
    out = tmp_path / "report"
    headline = _build(study, results_dir, out)
    assert headline["cells_missing"] == 1
    text = (out / "report.md").read_text()
    assert "| oom " in text and "| missing " in text
    assert "GPU out of memory" in text
    assert "The roofline stage has not run" in text
    for png in sorted((out / "figures").glob("*.png")):
        assert f"(figures/{png.name})" in text
    assert {p.name for p in (out / "figures").glob("*.png")} == {
        "latency_vs_input_tiny_llama.png", "throughput_vs_batch_tiny_llama.png", "speedup_heatmap_tiny_llama.png",
    }


def test_report_is_deterministic(study: StudyConfig, results_dir: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    _build(study, results_dir, first)
    _build(study, results_dir, second)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files, "the report wrote files"
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_corrupt_result_fails_the_report_naming_the_file(study: StudyConfig, results_dir: Path,
                                                         tmp_path: Path) -> None:
    path = study.cells()[0].result_path(results_dir)
    path.write_text(path.read_text()[:100])
    with pytest.raises(ResultError, match=str(path)):
        _build(study, results_dir, tmp_path / "report")


def test_result_of_another_cell_is_rejected(study: StudyConfig, results_dir: Path, tmp_path: Path) -> None:
    first, second = study.cells()[0], study.cells()[1]
    second.result_path(results_dir).write_bytes(first.result_path(results_dir).read_bytes())
    with pytest.raises(ResultError, match="expected"):
        _build(study, results_dir, tmp_path / "report")


def test_a_failed_verdict_never_feeds_a_speedup(study: StudyConfig, results_dir: Path, tmp_path: Path) -> None:
    from inference_study.results import read_result
    from inference_study.validity import Verdict

    static_b1 = next(c for c in study.cells() if c.backend == "hf_static_compiled" and c.batch_size == 1)
    path = static_b1.result_path(results_dir)
    failed = read_result(path).model_copy(update={"verdict": Verdict(status="fail", reasons=["memory blind"])})
    write_result(path, failed)
    out = tmp_path / "report"
    headline = _build(study, results_dir, out)
    assert "tiny_llama.hf_static_compiled.speedup_over_hf_eager_geomean" not in headline
    text = (out / "report.md").read_text()
    assert "memory blind" in text and "Verdicts: 2 fail, 2 warn" in text  # the OOM cell fails too


def test_cells_from_another_environment_give_no_speedup(study: StudyConfig, results_dir: Path, tmp_path: Path) -> None:
    from inference_study.environment import collect_environment

    static_b1 = next(c for c in study.cells() if c.backend == "hf_static_compiled" and c.batch_size == 1)
    elsewhere = collect_environment().model_copy(update={"torch": "0.0.0-another-build"})
    write_result(static_b1.result_path(results_dir), make_result(static_b1, step_s=0.005, environment=elsewhere))
    out = tmp_path / "report"
    headline = _build(study, results_dir, out)
    assert "tiny_llama.hf_static_compiled.speedup_over_hf_eager_geomean" not in headline
    text = (out / "report.md").read_text()
    assert "ran in another environment than their `hf_eager` cell" in text
    assert elsewhere.fingerprint in text and "cells were measured in 2 different environments" in text


def test_targets_are_judged_against_measured_cells(study: StudyConfig, results_dir: Path, tmp_path: Path) -> None:
    """Eager runs at 10 ms/token; static (5 ms/token) ran out of memory at batch 4."""
    def target(name: str, backend: str, batch: int, at_least: float, relative_to: int | None = None) -> dict:
        cell = {"model": "tiny_llama", "backend": backend, "batch_size": batch, "input_len": 32, "output_len": 16}
        return {"name": name, "cell": cell, "metric": "output_tokens_per_s", "at_least": at_least,
                "relative_to_batch": relative_to}

    raw = study.model_dump() | {"study": {"name": "bars", "setup_share_at_most_pct": 99.9, "targets": [
        target("eager tok/s", "hf_eager", 1, 90), target("eager too fast", "hf_eager", 1, 1e6),
        target("eager scaling", "hf_eager", 4, 3.9, relative_to=1), target("static b4", "hf_static_compiled", 4, 1),
        target("eager b8", "hf_eager", 8, 1), target("other model", "hf_eager", 1, 1) | {"cell": {
            "model": "tinyllama_1b", "backend": "hf_eager", "batch_size": 1, "input_len": 32, "output_len": 16}}]}}
    out = tmp_path / "report"
    _build(validate_params(raw), results_dir, out)
    text = (out / "report.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in text.splitlines()
            if line.startswith(("| eager", "| static", "| setup", "| other"))}
    assert rows["eager tok/s"].rstrip("| ").endswith("met") and "not met" not in rows["eager tok/s"]
    assert "not met" in rows["eager too fast"]
    assert "4×" in rows["eager scaling"] and "not met" not in rows["eager scaling"]  # 4 requests per step
    assert "not judged: batch 4: oom" in rows["static b4"]
    assert "not judged: tiny_llama hf_eager batch 8, 32/16 is not in this sweep" in rows["eager b8"]
    assert "not judged: tinyllama_1b hf_eager batch 1, 32/16 is not in this sweep" in rows["other model"]
    assert "≤ 99.9%" in rows["setup share of cell wall time"]


def test_setup_share_is_summed_per_model_and_backend(study: StudyConfig, results_dir: Path, tmp_path: Path) -> None:
    """Each factory cell spends 0.03 s loading, 0.18 s warming up and 0.23 s measuring; OOM cells don't count."""
    from inference_study.report import setup_by_backend

    _build(study, results_dir, tmp_path / "report")
    frame = pd.read_csv(tmp_path / "report" / "results.csv")
    totals = setup_by_backend(frame).set_index("backend")
    assert totals.loc["hf_eager", "measure_s"] == pytest.approx(2 * 0.23)
    assert totals.loc["hf_static_compiled", "measure_s"] == pytest.approx(0.23), "the OOM cell measured nothing"
    assert totals["setup_share_pct"].tolist() == pytest.approx([100 * 0.21 / 0.44] * 2)


def test_a_backend_keeps_its_colour_in_every_panel(monkeypatch, tmp_path: Path) -> None:
    """The input-512 panel has a backend the others lack; the shared backends must not change colour."""
    from inference_study import report

    rows = [(backend, length, batch) for length in (128, 512) for batch in (1, 8)
            for backend in (["hf_compiled_loop"] if length == 512 else []) + ["hf_eager", "hf_paged"]]
    frame = pd.DataFrame(rows, columns=["backend", "input_len", "batch_size"]).assign(
        model="m", output_tokens_per_s=1.0)
    figures = []
    monkeypatch.setattr(report, "_save", lambda fig, path: figures.append(fig))
    assert report.plot_against_batch(frame, "m", "output_tokens_per_s", "tok/s", tmp_path / "plot.png")
    panels = [{line.get_label(): line.get_color() for line in ax.get_lines()} for ax in figures[0].axes]
    assert set(panels[1]) == {"hf_compiled_loop", "hf_eager", "hf_paged"}
    assert {backend: panels[1][backend] for backend in panels[0]} == panels[0]
