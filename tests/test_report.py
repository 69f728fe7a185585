"""The report stage on a synthetic results tree: cells from params, OOM and missing cells shown, deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers.factories import make_result
from helpers.repository import REPO_ROOT, cells, composed

from inference_study.config import StudyConfig, validate_params
from inference_study.report import build_report
from inference_study.report import figures as report_figures
from inference_study.report.table import setup_by_backend
from inference_study.results import ResultError, read_result, write_result
from inference_study.tables import markdown_table
from inference_study.uncertainty import ratio

SWEEP = ["sweep.backends=[hf_eager,hf_static_compiled]", "sweep.batch_sizes=[1,4]", "sweep.input_lens=[32]"]
ITERATIONS = 8  # enough repeats for an interval: the factory's cells converge and pass


@pytest.fixture(scope="module")
def study() -> StudyConfig:
    return validate_params(composed(*SWEEP))


@pytest.fixture
def results_dir(study: StudyConfig, tmp_path: Path) -> Path:
    """Eager at 10 ms/token, static at 5 ms/token, every cell passing; static at batch 4 ran out of memory; one
    stale extra file."""
    root = tmp_path / "results"
    for cell in cells(study):
        if cell.backend == "hf_static_compiled" and cell.batch_size == 4:
            write_result(cell.result_path(root), make_result(cell, status="oom"))
        else:
            step = 0.01 if cell.backend == "hf_eager" else 0.005
            write_result(cell.result_path(root), make_result(cell, step_s=step, iterations=ITERATIONS))
    stale = cells(study)[0].model_copy(update={"batch_size": 64})
    write_result(stale.result_path(root), make_result(stale))  # a removed cell's file: never read
    return root


def _build(study: StudyConfig, results_dir: Path, out: Path) -> dict:
    return build_report(study, results_dir, out, results_dir / "roofline.json")


def test_report_reads_the_configured_cells_only(study: StudyConfig, results_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    headline = _build(study, results_dir, out)
    frame = pd.read_csv(out / "results.csv")
    assert len(frame) == len(cells(study)) == 4
    assert 64 not in set(frame["batch_size"]), "the stale file of a removed cell is not globbed in"
    assert sorted(frame["status"]) == ["ok", "ok", "ok", "oom"]
    static_b1 = frame[(frame["backend"] == "hf_static_compiled") & (frame["batch_size"] == 1)].iloc[0]
    assert static_b1["greedy_match_pct"] == 100.0, "the factory's backends emit the same tokens"
    assert headline == json.loads((out / "summary.json").read_text())
    assert (headline["cells_total"], headline["cells_ok"], headline["cells_oom"]) == (4, 3, 1)


def test_speedup_uses_only_measured_cells(study: StudyConfig, results_dir: Path, tmp_path: Path) -> None:
    headline = _build(study, results_dir, tmp_path / "report")
    # only batch 1 has both backends measured; 5 ms against 10 ms per token: the geomean of one ratio is it
    key = "tiny_llama.hf_static_compiled.speedup_over_hf_eager_geomean"
    eager, static = (read_result(cell.result_path(results_dir)) for cell in cells(study) if cell.batch_size == 1)
    expected = ratio(static.headline.output_tokens_per_s, eager.headline.output_tokens_per_s)
    assert expected.value == pytest.approx(2.0, rel=1e-3)
    assert headline[key] == pytest.approx(expected.value, rel=1e-3)
    assert (headline[f"{key}_ci_low"], headline[f"{key}_ci_high"]) == pytest.approx(
        (expected.ci_low, expected.ci_high), rel=1e-3)
    assert (headline["speedup_pairs"], headline["speedup_pairs_left_out"]) == (2, 1), "batch 4 is an OOM"


def test_report_markdown_shows_oom_and_missing(study: StudyConfig, results_dir: Path, tmp_path: Path) -> None:
    missing = cells(study)[1]
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
        "latency_vs_input_tiny_llama.png", "throughput_vs_batch_tiny_llama.png", "pareto_tiny_llama.png",
        "speedup_heatmap_tiny_llama.png", "headline_speedup_tiny_llama.png",
    }


def test_the_csv_carries_energy_stopping_and_null_tail_percentiles(study: StudyConfig, results_dir: Path,
                                                                    tmp_path: Path) -> None:
    """Energy per token where the device measured it, every measured cell's stopping record, and a tail
    percentile short of samples as NaN in the CSV and "—" in the markdown, never 0."""
    eager_b1 = cells(study)[0]
    result = read_result(eager_b1.result_path(results_dir))
    energy = {"energy_j": 3.2, "joules_per_output_token": 0.025, "output_tokens_per_joule": 40.0}
    reasons = {k: v for k, v in result.null_reasons.items() if k.removeprefix("gpu.") not in energy}
    write_result(eager_b1.result_path(results_dir), result.model_copy(update={
        "gpu": result.gpu.model_copy(update=energy), "null_reasons": reasons}))
    out = tmp_path / "report"
    _build(study, results_dir, out)
    frame = pd.read_csv(out / "results.csv")
    at = frame.set_index(["backend", "batch_size"])
    assert (at.loc[("hf_eager", 1), "joules_per_output_token"], at.loc[("hf_eager", 1), "output_tokens_per_joule"]) \
        == (0.025, 40.0)
    assert at.loc[("hf_eager", 4), ["joules_per_output_token", "output_tokens_per_joule"]].isna().all()
    ok = frame[frame["status"] == "ok"]
    assert set(ok["stop_reason"]) == {"converged"} and ok["converged"].all()
    assert (ok["iterations"] == ITERATIONS).all()
    assert frame[frame["status"] == "oom"][["stop_reason", "iterations"]].isna().all(axis=None)
    null_and_not = set()
    for _, row in ok.iterrows():
        cell = next(c for c in cells(study) if (c.backend, c.batch_size) == (row["backend"], row["batch_size"]))
        latency = read_result(cell.result_path(results_dir)).latency
        for metric in ("e2e", "itl"):
            stats = getattr(latency, f"{metric}_s")
            assert row[f"{metric}_p50_ms"] == pytest.approx(stats.p50 * 1000, rel=1e-5)
            assert pd.isna(row[f"{metric}_p99_ms"]) == (stats.n < 100)
            null_and_not.add(stats.n < 100)
    assert null_and_not == {True, False}, "the fixture has tails both short of samples and not"
    results = (out / "report.md").read_text().split("## Results\n", 1)[1].strip().split("\n\n")[0].splitlines()
    columns = [c.strip() for c in results[0].split("|")]
    eager_row = [c.strip() for c in results[2].split("|")]
    assert (eager_row[columns.index("backend")], eager_row[columns.index("e2e_p99_ms")]) == ("hf_eager", "—")


def test_null_reasons_are_grouped_by_field_with_cell_counts(study: StudyConfig, results_dir: Path,
                                                             tmp_path: Path) -> None:
    """Per-cell sample counts make every tail-percentile reason distinct; the list still says each kind of gap
    once, with its range of counts and how many cells have it."""
    out = tmp_path / "report"
    _build(study, results_dir, out)
    section = (out / "report.md").read_text().split("were not measured, for these reasons:", 1)[1].split("\n## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("- ")]
    results = [read_result(cell.result_path(results_dir)) for cell in cells(study)]
    ok = [result for result in results if result.status == "ok"]
    timed = sorted({result.latency.e2e_s.n for result in ok})
    assert len(timed) > 1, "the cells timed different numbers of requests"
    (p99,) = [line for line in lines if "`latency.e2e_s.p99`" in line]
    assert f"P99 needs >= 100 samples; {timed[0]}–{timed[-1]} were timed ({len(ok)} cells)" in p99
    assert "`latency.ttft_s.p99`" in p99, "fields whose reasons read alike share a line"
    (gpu,) = [line for line in lines if "`gpu.power_mean_w`" in line]
    assert f"device is cpu: no GPU to measure ({len(results)} cells)" in gpu and "`gpu.energy_j`" in gpu
    assert len(lines) < len({field for result in results for field in result.null_reasons})


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
    path = cells(study)[0].result_path(results_dir)
    path.write_text(path.read_text()[:100])
    with pytest.raises(ResultError, match=str(path)):
        _build(study, results_dir, tmp_path / "report")


def test_result_of_another_cell_is_rejected(study: StudyConfig, results_dir: Path, tmp_path: Path) -> None:
    first, second = cells(study)[0], cells(study)[1]
    second.result_path(results_dir).write_bytes(first.result_path(results_dir).read_bytes())
    with pytest.raises(ResultError, match="expected"):
        _build(study, results_dir, tmp_path / "report")


def test_a_failed_verdict_never_feeds_a_speedup(study: StudyConfig, results_dir: Path, tmp_path: Path) -> None:
    from inference_study.results import read_result
    from inference_study.validity import Verdict

    static_b1 = next(c for c in cells(study) if c.backend == "hf_static_compiled" and c.batch_size == 1)
    path = static_b1.result_path(results_dir)
    failed = read_result(path).model_copy(update={"verdict": Verdict(status="fail", reasons=["memory blind"])})
    write_result(path, failed)
    out = tmp_path / "report"
    headline = _build(study, results_dir, out)
    assert "tiny_llama.hf_static_compiled.speedup_over_hf_eager_geomean" not in headline
    text = (out / "report.md").read_text()
    assert "memory blind" in text and "Verdicts: 2 fail, 2 pass" in text  # the OOM cell fails too
    assert "`hf_static_compiled` cell fails (memory blind)" in text


def test_cells_from_another_environment_give_no_speedup(study: StudyConfig, results_dir: Path, tmp_path: Path) -> None:
    from inference_study.environment import collect_environment

    static_b1 = next(c for c in cells(study) if c.backend == "hf_static_compiled" and c.batch_size == 1)
    elsewhere = collect_environment().model_copy(update={"torch": "0.0.0-another-build"})
    write_result(static_b1.result_path(results_dir), make_result(static_b1, step_s=0.005, environment=elsewhere,
                                                                 iterations=ITERATIONS))
    out = tmp_path / "report"
    headline = _build(study, results_dir, out)
    assert "tiny_llama.hf_static_compiled.speedup_over_hf_eager_geomean" not in headline
    text = (out / "report.md").read_text()
    assert "ran in another environment than their `hf_eager` cell" in text
    assert elsewhere.fingerprint in text and "cells were measured in 2 different environments" in text
    assert "1 pairs with `hf_eager` span two of them and give no speedup" in text


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
    _build(study, results_dir, tmp_path / "report")
    frame = pd.read_csv(tmp_path / "report" / "results.csv")
    totals = setup_by_backend(frame).set_index("backend")
    assert totals.loc["hf_eager", "measure_s"] == pytest.approx(2 * 0.23)
    assert totals.loc["hf_static_compiled", "measure_s"] == pytest.approx(0.23), "the OOM cell measured nothing"
    assert totals["setup_share_pct"].tolist() == pytest.approx([100 * 0.21 / 0.44] * 2)


def test_a_backend_keeps_its_colour_in_every_panel() -> None:
    """The input-512 panel has a backend the others lack; the shared backends must not change colour."""
    rows = [(backend, length, batch) for length in (128, 512) for batch in (1, 8)
            for backend in (["hf_compiled_loop"] if length == 512 else []) + ["hf_eager", "hf_paged"]]
    frame = pd.DataFrame(rows, columns=["backend", "input_len", "batch_size"]).assign(
        model="m", output_len=16, output_tokens_per_s_median=1.0)
    figure = report_figures.throughput_figure(frame, "m", ["hf_eager", "hf_compiled_loop", "hf_paged"])
    panels = [{bars.get_label(): bars.lines[0].get_color() for bars in ax.containers} for ax in figure.axes]
    assert set(panels[1]) == {"hf_compiled_loop", "hf_eager", "hf_paged"}
    assert {backend: panels[1][backend] for backend in panels[0]} == panels[0]


def with_baseline(study: StudyConfig, baseline: str | None) -> StudyConfig:
    raw = study.model_dump(mode="json")
    raw["study"]["comparisons"]["baseline"] = baseline
    return validate_params(raw)


def test_the_default_preset_declares_the_baseline_and_no_pair(study: StudyConfig) -> None:
    assert study.study.comparisons.baseline == "hf_eager"
    assert study.study.comparisons.pairs == []


@pytest.mark.parametrize("baseline", ["hf_static_compiled", None, "hf_compiled_loop"])
def test_speedups_are_over_the_declared_baseline_or_say_why_not(study: StudyConfig, results_dir: Path,
                                                                 tmp_path: Path, baseline: str | None) -> None:
    out = tmp_path / "report"
    headline = _build(with_baseline(study, baseline), results_dir, out)
    text = (out / "report.md").read_text()
    speedup_keys = [key for key in headline if "speedup_over" in key]
    if baseline == "hf_static_compiled":  # eager at 10 ms/token over static at 5 ms/token
        key = "tiny_llama.hf_eager.speedup_over_hf_static_compiled_geomean"
        assert speedup_keys == [key, f"{key}_ci_low", f"{key}_ci_high"]
        assert headline[key] == pytest.approx(0.5, rel=1e-2)
        assert "## Speedup over `hf_static_compiled`" in text and "against `hf_static_compiled` on the same" in text
    elif baseline is None:
        assert speedup_keys == [] and "greedy_match_pct" not in pd.read_csv(out / "results.csv")
        assert "No baseline is declared (`study.comparisons.baseline`), so no speedup is computed." in text
        assert "so no greedy tokens are compared" in text
        assert "speedup_heatmap_tiny_llama.png" not in {p.name for p in (out / "figures").glob("*.png")}
    else:
        assert speedup_keys == []
        assert "The baseline `hf_compiled_loop` (`study.comparisons.baseline`) has no cell in this study" in text


def test_one_markdown_table_helper_shows_missing_values_one_way() -> None:
    frame = pd.DataFrame({"backend": ["a", "b"], "rate": [1234.5678, float("nan")], "ratio": [0.123456, None]})
    readable = markdown_table(frame, ["backend", "rate", "absent"], readable_numbers=True)
    assert "1,235" in readable and "—" in readable and "absent" not in readable and "nan" not in readable
    formatted = markdown_table(frame, floatfmt=".3g")
    assert "0.123" in formatted and "nan" not in formatted and formatted.count("—") == 2


ALLOWED = {"inference_study", "inference_study.comparisons", "inference_study.config", "inference_study.equivalence",
           "inference_study.plan", "inference_study.results", "inference_study.roofline", "inference_study.tables",
           "inference_study.uncertainty"}


def test_the_report_package_imports_no_backend_and_no_scenario() -> None:
    """What a backend is comes from its result files; a scenario's tables come through the registry."""
    import ast

    package = REPO_ROOT / "src" / "inference_study" / "report"
    assert not (REPO_ROOT / "src" / "inference_study" / "report.py").exists()
    for path in sorted(package.glob("*.py")):
        assert len(path.read_text().splitlines()) < 400, path.name
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                if name.startswith("inference_study") and not name.startswith("inference_study.report"):
                    assert name in ALLOWED, f"{path.name} imports {name}"


def test_the_comparison_model_is_import_light() -> None:
    """conf/ is validated through it, so it needs pydantic and the shared strict base only (no backend, no report)."""
    import ast

    tree = ast.parse((REPO_ROOT / "src" / "inference_study" / "comparisons.py").read_text())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert modules <= {"__future__", "typing", "pydantic", "inference_study.strict"}, modules


@pytest.mark.parametrize(("change", "message"), [
    (lambda pairs: pairs.append(dict(pairs[0])), "titles must be unique"),
    (lambda pairs: pairs[0].update(against=[pairs[0]["candidate"]]), "is also in against"),
    (lambda pairs: pairs[0].update(finding="paged loses"), "pairs.0.finding: Extra inputs are not permitted"),
])
def test_a_bad_comparison_stops_the_run_naming_the_key(change, message: str) -> None:
    from inference_study.config import ConfigError

    raw = composed("study=h100")
    change(raw["study"]["comparisons"]["pairs"])
    with pytest.raises(ConfigError, match=message):
        validate_params(raw)
