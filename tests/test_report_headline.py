"""The report's first sections: what each optimization buys (speedups with intervals, per model) and the
validity summary, on synthetic results (factories.make_result) whose repeats jitter like a real machine's.

Every expected number is recomputed here from the result files with `uncertainty`, never written down.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from helpers.factories import make_result
from helpers.markdown import shown_ratio, table_rows
from helpers.repository import cells, composed
from matplotlib.colors import to_rgba

from inference_study.config import Cell, StudyConfig, validate_params
from inference_study.environment import collect_environment
from inference_study.gpu import slowdown_warning
from inference_study.report import build_report, headline
from inference_study.results import CellResult, read_result, write_result
from inference_study.uncertainty import Ratio, geometric_mean, ratio
from inference_study.validity import Verdict, judge

LADDER = ["hf_eager", "hf_static", "hf_static_compiled"]
SWEEP = [f"sweep.backends=[{','.join(LADDER)}]", "sweep.batch_sizes=[1,4]", "sweep.input_lens=[32,64]"]
# hf_static barely faster than the baseline: with jittered repeats some of its ratios cannot be told from 1.
STEP_S = {"hf_eager": 0.010, "hf_static": 0.0099, "hf_static_compiled": 0.005}
ITERATIONS, JITTER = 8, 0.03
KEY = "tiny_llama.{backend}.speedup_over_hf_eager_geomean"


@pytest.fixture(scope="module")
def study() -> StudyConfig:
    return validate_params(composed(*SWEEP))


def _cell(study: StudyConfig, backend: str, batch: int, length: int) -> Cell:
    return next(c for c in cells(study) if (c.backend, c.batch_size, c.input_len) == (backend, batch, length))


def _write(root: Path, result: CellResult) -> None:
    write_result(result.cell.result_path(root / "results"), result)


def _measure_all(study: StudyConfig, root: Path) -> None:
    for cell in cells(study):
        _write(root, make_result(cell, STEP_S[cell.backend], iterations=ITERATIONS, jitter=JITTER))


def _build(study: StudyConfig, root: Path) -> tuple[str, dict]:
    metrics = build_report(study, root / "results", root / "out", root / "results" / "roofline.json")
    return (root / "out" / "report.md").read_text(), metrics


def _part(text: str, heading: str) -> str:
    return text.split(f"{heading}\n", 1)[1].split("\n## ", 1)[0]


def _recomputed(root: Path, cell: Cell) -> Ratio:
    """`cell`'s output tok/s over the baseline cell of its shape, from the two result files."""
    mine, base = (read_result(c.result_path(root / "results")).headline.output_tokens_per_s
                  for c in (cell, cell.model_copy(update={"backend": "hf_eager"})))
    return ratio(mine, base)


def _table(text: str) -> dict[tuple[str, int, int], str]:
    """The headline table of tiny_llama: (backend, batch, input length) → the cell as written."""
    rows = table_rows(_part(text, "### tiny_llama"))
    return {(row["rung"].strip("`"), int(row["batch"]), int(name.removeprefix("input "))): value
            for row in rows for name, value in row.items() if name.startswith("input ")}


def test_the_headline_speedups_are_recomputed_from_the_results(study: StudyConfig, tmp_path: Path) -> None:
    _measure_all(study, tmp_path)
    text, metrics = _build(study, tmp_path)
    table = _table(_part(text, "## What each optimization buys"))
    assert len(table) == 2 * 2 * 2, "two rungs × two batch sizes × two input lengths"
    assert [key[0] for key in table][::4] == ["hf_static", "hf_static_compiled"], "rungs in ladder order"
    similar = 0
    for (backend, batch, length), shown in table.items():
        expected = _recomputed(tmp_path, _cell(study, backend, batch, length))
        value, low, high = shown_ratio(shown)
        assert (low, high) == pytest.approx((expected.ci_low, expected.ci_high), rel=5e-3)
        if expected.distinguishable:
            assert value == pytest.approx(expected.value, rel=5e-3) and not low <= 1 <= high
        else:
            assert value is None and low <= 1 <= high, "no number to quote where the interval spans 1"
            similar += 1
    assert 0 < similar < 4, "the fixture has hf_static ratios both told and not told apart from 1"
    csv = pd.read_csv(tmp_path / "out" / "results.csv").set_index(["backend", "batch_size", "input_len"])
    for (backend, batch, length), shown in table.items():  # the quoted values are the CSV's medians' ratios
        value, _, _ = shown_ratio(shown)
        from_csv = (csv.loc[(backend, batch, length), "output_tokens_per_s_median"]
                    / csv.loc[("hf_eager", batch, length), "output_tokens_per_s_median"])
        assert value is None or value == pytest.approx(from_csv, rel=5e-3)
    for backend in LADDER[1:]:
        mean = geometric_mean([_recomputed(tmp_path, cell) for cell in cells(study) if cell.backend == backend])
        key = KEY.format(backend=backend)
        assert (metrics[key], metrics[f"{key}_ci_low"], metrics[f"{key}_ci_high"]) == pytest.approx(
            (mean.value, mean.ci_low, mean.ci_high), abs=1e-4)
        assert mean.ci_low < mean.value < mean.ci_high
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == metrics


def _slowed(result: CellResult) -> CellResult:
    """`result` with an SM clock that fell by a quarter during its timing, judged as the harness judges."""
    gpu = result.gpu.model_copy(update={"sm_clock_min_mhz": 1500, "sm_clock_max_mhz": 1980})
    verdict = judge(status="ok", error=None, warmup_iterations=1, headline=result.headline, stopping=result.stopping,
                    gpu=gpu, memory_seen_by_torch_allocator=True, on_gpu=True, max_cv=1.0)
    assert verdict.status == "warn" and not verdict.comparable
    return result.model_copy(update={"gpu": gpu, "verdict": verdict, "null_reasons": {
        k: v for k, v in result.null_reasons.items() if "sm_clock" not in k}})


def test_bias_keeps_a_cell_out_of_speedups_and_spread_only_widens_them(study: StudyConfig, tmp_path: Path) -> None:
    """A baseline cell whose repeats vary too much warns, yet its ratios stand, with wider intervals; a rung's
    cell timed twice has no interval, and one whose SM clock fell is biased: neither enters a speedup or a
    geomean, and the report says which and why."""
    _measure_all(study, tmp_path)
    short = _cell(study, "hf_static_compiled", 1, 64)
    _write(tmp_path, make_result(short, STEP_S["hf_static_compiled"], iterations=2))
    noisy = _cell(study, "hf_eager", 4, 64)
    _write(tmp_path, make_result(noisy, STEP_S["hf_eager"], iterations=ITERATIONS, jitter=0.6))
    assert read_result(noisy.result_path(tmp_path / "results")).verdict.status == "warn"
    slowed = _cell(study, "hf_static", 1, 32)
    _write(tmp_path, _slowed(read_result(slowed.result_path(tmp_path / "results"))))
    text, metrics = _build(study, tmp_path)
    part = _part(text, "## What each optimization buys")
    table = _table(part)
    notes = {why: number for number, why in re.findall(r"^- \((\d+)\) left out: (.+)$", part, flags=re.MULTILINE)}
    short_note, slowed_note = (notes.pop(why) for why in (
        "`hf_static_compiled` cell has no interval (2 repeats)", "`hf_static` cell warns (GPU slowed down)"))
    assert not notes, "one note per cell and kind of reason, nothing else"
    assert table["hf_static_compiled", 1, 64] == f"— ({short_note})"
    assert table["hf_static", 1, 32] == f"— ({slowed_note})"
    for backend in LADDER[1:]:
        wide = _recomputed(tmp_path, noisy.model_copy(update={"backend": backend}))
        assert shown_ratio(table[backend, 4, 64])[1:] == pytest.approx((wide.ci_low, wide.ci_high), rel=5e-3)
        steady = _recomputed(tmp_path, _cell(study, backend, 4, 32))
        assert wide.ci_high - wide.ci_low > 3 * (steady.ci_high - steady.ci_low), "the noisy baseline widens it"
    kept = {backend: [cell for cell in cells(study) if cell.backend == backend and cell not in (short, slowed)]
            for backend in LADDER[1:]}
    for backend, usable in kept.items():
        mean = geometric_mean([_recomputed(tmp_path, cell) for cell in usable])
        assert metrics[KEY.format(backend=backend)] == pytest.approx(mean.value, abs=1e-4)
        assert metrics[f"{KEY.format(backend=backend)}_ci_high"] == pytest.approx(mean.ci_high, abs=1e-4)
        assert f"`{backend}` " in part and f" over {len(usable)} of 4 shapes" in part
    assert (metrics["speedup_pairs"], metrics["speedup_pairs_left_out"]) == (8, 2)
    speedup = _part(text, "## Speedup over `hf_eager` (output tokens/s ratio)")
    assert "Left out of the speedups: 2 of 8 pairs, because" in speedup
    assert "- `hf_static` cell warns (GPU slowed down): 1 pair" in speedup
    assert "- `hf_static_compiled` cell has no interval (2 repeats): 1 pair" in speedup


def test_a_speedup_whose_interval_spans_1_reads_as_no_measurable_difference(study: StudyConfig,
                                                                             tmp_path: Path, monkeypatch) -> None:
    """hf_static at the baseline's step: every ratio is "≈1 (low–high)" in the tables, hollow in the figure."""
    for cell in cells(study):
        step = STEP_S["hf_eager"] if cell.backend == "hf_static" else STEP_S[cell.backend]
        _write(tmp_path, make_result(cell, step, iterations=ITERATIONS, jitter=JITTER))
    closed: list[plt.Figure] = []
    monkeypatch.setattr(headline.plt, "close", closed.append)
    text, metrics = _build(study, tmp_path)
    table = _table(_part(text, "## What each optimization buys"))
    for (backend, batch, length), shown in table.items():
        if backend == "hf_static":
            value, low, high = shown_ratio(shown)
            assert value is None and low < 1 < high
            assert not _recomputed(tmp_path, _cell(study, backend, batch, length)).distinguishable
    key = KEY.format(backend="hf_static")
    assert metrics[f"{key}_ci_low"] < 1 < metrics[f"{key}_ci_high"]
    assert re.search(r"`hf_static` ≈1 \([\d.]+–[\d.]+\) over 4 of 4 shapes", text), "the geomean is no difference too"
    speedup = table_rows(_part(text, "## Speedup over `hf_eager` (output tokens/s ratio)"))
    assert all(row["hf_static"].startswith("≈1 (") for row in speedup)
    (figure,) = [fig for fig in closed if fig.get_suptitle().startswith("tiny_llama: what each rung buys")]
    faces = {to_rgba(line.get_markerfacecolor()) for ax in figure.axes
             for bars in ax.containers for line in bars.lines[:1] if line.get_color() == "C1"}
    assert faces == {(1.0, 1.0, 1.0, 1.0)}, "hf_static's points are hollow: none is a difference"


def test_the_headline_figure_has_a_panel_per_input_length_centred_on_1(study: StudyConfig, tmp_path: Path,
                                                                        monkeypatch) -> None:
    _measure_all(study, tmp_path)
    oom = _cell(study, "hf_static_compiled", 4, 64)
    _write(tmp_path, make_result(oom, status="oom"))
    closed: list[plt.Figure] = []
    monkeypatch.setattr(headline.plt, "close", closed.append)
    text, _ = _build(study, tmp_path)
    path = tmp_path / "out" / "figures" / "headline_speedup_tiny_llama.png"
    assert path.read_bytes().startswith(b"\x89PNG")
    assert "](figures/headline_speedup_tiny_llama.png)" in _part(text, "## What each optimization buys")
    (figure,) = [fig for fig in closed if fig.get_suptitle().startswith("tiny_llama: what each rung buys")]
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["input 32", "input 64"]
    for ax in panels:
        low, high = ax.get_ylim()
        assert ax.get_yscale() == "log" and low * high == pytest.approx(1.0)
        assert [label.get_text() for label in ax.get_xticklabels()] == ["1", "4"]
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend[:2] == LADDER[1:], "rungs in ladder order"
    bars = sum(len(ax.containers) for ax in panels)
    crosses = [line for ax in panels for line in ax.get_lines() if line.get_marker() == "x"]
    assert (bars, len(crosses)) == (7, 1), "a point with its interval per speedup, a grey cross at 1 for the OOM"
    assert crosses[0].get_ydata()[0] == 1.0


def test_the_validity_summary_counts_cells_and_groups_reasons_by_kind(study: StudyConfig, tmp_path: Path) -> None:
    _measure_all(study, tmp_path)
    root = tmp_path / "results"
    _write(tmp_path, make_result(_cell(study, "hf_static", 1, 32), STEP_S["hf_static"], iterations=2))
    _write(tmp_path, make_result(_cell(study, "hf_static", 4, 32), STEP_S["hf_static"], iterations=ITERATIONS,
                                 jitter=0.6))
    _write(tmp_path, make_result(_cell(study, "hf_static_compiled", 4, 64), status="oom"))
    _cell(study, "hf_static_compiled", 1, 64).result_path(root).unlink()
    slowed = read_result(_cell(study, "hf_static_compiled", 1, 32).result_path(root))
    gpu = slowed.gpu.model_copy(update={"sm_clock_min_mhz": 1500, "sm_clock_max_mhz": 1980})
    _write(tmp_path, slowed.model_copy(update={
        "gpu": gpu, "verdict": Verdict(status="warn", reasons=[slowdown_warning(gpu)]),
        "null_reasons": {k: v for k, v in slowed.null_reasons.items() if "sm_clock" not in k}}))
    diverging = read_result(_cell(study, "hf_static", 4, 64).result_path(root))
    _write(tmp_path, diverging.model_copy(update={"output_ids": [[7] * 16] * 4}))
    elsewhere = collect_environment().model_copy(update={"torch": "0.0.0-another-build"})
    _write(tmp_path, make_result(_cell(study, "hf_static", 1, 64), STEP_S["hf_static"], iterations=ITERATIONS,
                                 environment=elsewhere))
    text, _ = _build(study, tmp_path)
    frame = pd.read_csv(tmp_path / "out" / "results.csv")
    verdicts = frame["verdict"].value_counts()
    summary = _part(text, "## Validity summary")
    assert (f"Of the {len(frame)} configured cells, {verdicts['pass']} pass, {verdicts['warn']} warn, "
            f"{verdicts['fail']} fail and {(frame['status'] == 'missing').sum()} is missing (not run yet).") in summary
    reasons = {row["reason"]: (int(row["warn"]), int(row["fail"])) for row in table_rows(summary)}
    assert reasons == {"not converged": (2, 0), "varies across repeats": (1, 0), "GPU slowed down": (1, 0),
                       "no measurement (oom)": (0, 1)}, "a cell counts once per kind, whatever its metrics"
    early = int(frame["early_divergence"].fillna(False).astype(bool).sum())
    assert early == 1 and (f"in {early} of {frame['greedy_match_pct'].notna().sum()} compared cells") in summary
    assert "- cells ran in 2 environments" in summary and "1 pairs with `hf_eager` span two of them" in summary
    assert text.index("## What each optimization buys") < text.index("## Validity summary") < text.index("## Results")


def test_without_a_baseline_the_headline_says_why_and_the_summary_stays(study: StudyConfig, tmp_path: Path) -> None:
    raw = study.model_dump(mode="json")
    raw["study"]["comparisons"]["baseline"] = None
    _measure_all(study, tmp_path)
    text, metrics = _build(validate_params(raw), tmp_path)
    assert ("No baseline is declared (`study.comparisons.baseline`), so no speedup is computed."
            in _part(text, "## What each optimization buys"))
    assert f"Of the 12 configured cells, {metrics['cells_pass']} pass" in _part(text, "## Validity summary")
    assert not list((tmp_path / "out" / "figures").glob("headline_*.png"))
