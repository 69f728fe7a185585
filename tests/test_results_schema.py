"""Cell result files: validated round trip, atomic writes, and rejection of anything else by file name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from helpers.factories import make_result
from helpers.repository import REPO_ROOT

from inference_study import results
from inference_study.config import Cell
from inference_study.environment import collect_environment
from inference_study.results import SCHEMA_VERSION, CellResult, Phases, ResultError, read_result, write_result
from inference_study.validity import Verdict



@pytest.fixture(scope="module")
def environment():
    return collect_environment()


def _ok_result(environment) -> CellResult:
    """A realistic CPU result of one cell: 2 iterations of a batch of 2, 4 output tokens each."""
    cell = Cell(model="tiny_llama", backend="hf_eager", batch_size=2, input_len=16, output_len=4)
    return make_result(cell, environment=environment)


@pytest.fixture
def ok_result(environment) -> CellResult:
    return _ok_result(environment)


@pytest.fixture
def result_file(tmp_path: Path, ok_result: CellResult) -> Path:
    path = tmp_path / "cells" / "tiny_llama" / "hf_eager" / "b2_i16_o4.json"
    write_result(path, ok_result)
    return path


def _others(directory: Path, keep: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p != keep)


# ---------------------------------------------------------------- round trip and atomic writes


def test_round_trip(result_file: Path, ok_result: CellResult) -> None:
    loaded = read_result(result_file)
    assert loaded == ok_result
    assert loaded.latency is not None and loaded.latency.itl_s.n == 2 * 2 * 3
    assert json.loads(result_file.read_text())["schema_version"] == SCHEMA_VERSION == 4


def test_write_creates_parents_and_leaves_no_temp_files(result_file: Path) -> None:
    assert result_file.is_file()
    assert _others(result_file.parent, result_file) == []


def test_non_ok_result_round_trips(tmp_path: Path, ok_result: CellResult) -> None:
    oom = ok_result.model_copy(
        update={
            "status": "oom",
            "error": "GPU out of memory: CUDA out of memory. Tried to allocate 2.00 GiB",
            "tokens": None,
            "latency": None,
            "throughput": None,
            "headline": None,
            "verdict": Verdict(status="fail", reasons=["no measurement (oom)"]),
            "phases": Phases(load_s=0.03, warmup_s=0.01),
            "null_reasons": {**ok_result.null_reasons, "phases.measure_s": "cell oom"},
        }
    )
    path = tmp_path / "oom.json"
    write_result(path, oom)
    loaded = read_result(path)
    assert loaded == oom
    assert loaded.status == "oom" and loaded.latency is None


def test_overwrite_replaces_whole_file(result_file: Path, ok_result: CellResult) -> None:
    before = result_file.read_bytes()
    changed = ok_result.model_copy(update={"config_hash": "ffffffffffffffff"})
    write_result(result_file, changed)
    assert result_file.read_bytes() != before
    assert read_result(result_file).config_hash == "ffffffffffffffff"
    assert _others(result_file.parent, result_file) == []


@pytest.mark.parametrize(
    "update",
    [
        {"latency": None},
        {"status": "failed", "error": None},
        {"environment_fingerprint": "0000000000000000"},
        {"null_reasons": {}},
    ],
    ids=["ok-without-latency", "failed-without-error", "foreign-fingerprint", "null-gpu-without-reason"],
)
def test_invalid_result_is_not_written(tmp_path: Path, ok_result: CellResult, update: dict[str, Any]) -> None:
    """`model_copy` skips validation, so the invalid result reaches write_result, which must refuse it."""
    path = tmp_path / "result.json"
    write_result(path, ok_result)
    before = path.read_bytes()
    with pytest.raises(ValueError):
        write_result(path, ok_result.model_copy(update=update))
    assert path.read_bytes() == before
    assert _others(tmp_path, path) == []

    fresh = tmp_path / "fresh" / "result.json"
    with pytest.raises(ValueError):
        write_result(fresh, ok_result.model_copy(update=update))
    assert not fresh.exists()


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_failed_write_keeps_old_file_and_removes_temp(
    tmp_path: Path, ok_result: CellResult, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "result.json"
    write_result(path, ok_result)
    before = path.read_bytes()

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(f"simulated {failing} failure (disk full)")

    monkeypatch.setattr(results.os, failing, broken)
    with pytest.raises(OSError, match="simulated"):
        write_result(path, ok_result.model_copy(update={"config_hash": "ffffffffffffffff"}))
    assert path.read_bytes() == before
    assert _others(tmp_path, path) == []


# ---------------------------------------------------------------- rejection on read


def _edit(change: Callable[[dict[str, Any]], None]) -> Callable[[str], str]:
    def apply(text: str) -> str:
        data = json.loads(text)
        change(data)
        return json.dumps(data)

    return apply


def _drop_gpu_reason(data: dict[str, Any]) -> None:
    assert data["gpu"]["power_mean_w"] is None
    del data["null_reasons"]["gpu.power_mean_w"]


def _drop_phase(data: dict[str, Any]) -> None:
    data["phases"]["measure_s"] = None


def _other_torch(data: dict[str, Any]) -> None:
    data["environment"]["torch"] = "0.0.1"


REJECTIONS = [
    pytest.param(lambda text: text[: len(text) // 2], "not valid JSON", id="truncated"),
    pytest.param(lambda text: "", "not valid JSON", id="empty"),
    pytest.param(lambda text: "[1, 2, 3]", "schema_version 'list'", id="json-list"),
    pytest.param(lambda text: '"ok"', "schema_version 'str'", id="json-string"),
    pytest.param(_edit(lambda d: d.update(schema_version=99)), "schema_version 99", id="foreign-schema-version"),
    pytest.param(_edit(lambda d: d.update(schema_version="1")), "schema_version '1'", id="schema-version-string"),
    pytest.param(_edit(lambda d: d.pop("schema_version")), "schema_version None", id="no-schema-version"),
    pytest.param(_edit(lambda d: d.pop("config_hash")), "config_hash", id="missing-required-field"),
    pytest.param(_edit(lambda d: d["cell"].pop("output_len")), "output_len", id="missing-nested-field"),
    pytest.param(_edit(lambda d: d.update(latency=None)), "status 'ok' needs latency", id="ok-latency-none"),
    pytest.param(_edit(lambda d: d.update(tokens=None)), "status 'ok' needs latency", id="ok-tokens-none"),
    pytest.param(_edit(lambda d: d.update(status="oom", verdict={"status": "fail", "reasons": ["oom"]})),
                 "needs an error message", id="oom-without-error"),
    pytest.param(_edit(lambda d: d.update(status="oom", error="GPU out of memory")),
                 "cannot have verdict 'warn'", id="oom-with-a-passing-verdict"),
    pytest.param(_edit(lambda d: d.update(status="crashed", error="x")), "status", id="unknown-status"),
    pytest.param(_edit(_drop_gpu_reason), "gpu.power_mean_w is null without a reason", id="gpu-null-no-reason"),
    pytest.param(_edit(_drop_phase), "phases.measure_s is null without a reason", id="phase-null-no-reason"),
    pytest.param(_edit(lambda d: d.update(environment_fingerprint="0123456789abcdef")),
                 "environment_fingerprint does not match", id="fingerprint-mismatch"),
    pytest.param(_edit(_other_torch), "environment_fingerprint does not match", id="environment-edited"),
    pytest.param(_edit(lambda d: d.update(comment="hand edited")), "Extra inputs", id="unknown-field"),
    pytest.param(_edit(lambda d: d["latency"]["ttft_s"].update(p50="fast")), "p50", id="wrong-type"),
]


@pytest.mark.parametrize(("corrupt", "fragment"), REJECTIONS)
def test_read_rejects_naming_the_file(result_file: Path, corrupt: Callable[[str], str], fragment: str) -> None:
    original = result_file.read_text()
    text = corrupt(original)
    assert text != original
    result_file.write_text(text)
    with pytest.raises(ResultError) as caught:
        read_result(result_file)
    message = str(caught.value)
    assert str(result_file) in message
    assert fragment in message, message


def test_read_rejects_garbage_bytes(result_file: Path) -> None:
    result_file.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe\xfd not json \x80\x81")
    with pytest.raises(ResultError) as caught:
        read_result(result_file)
    assert str(result_file) in str(caught.value)
    assert "not valid JSON" in str(caught.value)


def test_read_rejects_binary_noise_that_is_valid_utf8(result_file: Path) -> None:
    result_file.write_text("\x00\x01{{{\u2603 ]]")
    with pytest.raises(ResultError) as caught:
        read_result(result_file)
    assert str(result_file) in str(caught.value) and "not valid JSON" in str(caught.value)


def test_read_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "cells" / "never_ran.json"
    with pytest.raises(ResultError) as caught:
        read_result(path)
    assert str(path) in str(caught.value) and "missing" in str(caught.value)


def test_stages_treat_result_error_as_expected() -> None:
    """Stages turn a ResultError into one clear line on stderr instead of a traceback."""
    from inference_study.stage import EXPECTED_ERRORS

    assert ResultError in EXPECTED_ERRORS


def test_schema_1_results_are_read_as_schema_3() -> None:
    """The first H100 probe was recorded with schema 1: it stays readable, nothing measured is lost."""
    path = Path(__file__).parent / "data" / "schema1_result.json"  # a real H100 cell of that probe
    raw = json.loads(path.read_text())
    assert raw["schema_version"] == 1
    result = read_result(path)
    assert result.schema_version == 4
    for metric, stats in raw["latency"].items():
        kept = getattr(result.latency, metric).model_dump()
        assert {k: v for k, v in kept.items() if v is not None} == {k: v for k, v in stats.items() if k in kept and
                                                                    kept[k] is not None}
    assert result.throughput.model_dump() == raw["throughput"]
    assert result.headline is None and "schema 1" in result.null_reasons["headline"]
    assert result.stopping.reason == "fixed_iterations" and result.stopping.iterations == raw["iterations"]
    assert result.verdict.status == "warn"
    assert any("schema 1" in reason for reason in result.verdict.reasons)


def test_schema_2_results_keep_their_measurements_identity_and_fixed_count() -> None:
    """Every committed schema-2 cell reads as schema 3: same config hash as its params give today, its fixed
    count as the stopping record, tail percentiles short of samples null with their reason, and no verdict
    warning about sample counts (schema 3 gives none)."""
    from inference_study.config import load_params
    from inference_study.plan import bench_units

    checked = 0
    for inputs in sorted((REPO_ROOT / "reports" / "measured").glob("*/inputs")):
        study = load_params(inputs / "params.yaml", legacy_ok=True)
        for unit in bench_units(study):
            path = unit.result_path(inputs)
            if not path.is_file() or json.loads(path.read_text())["schema_version"] != 2:
                continue
            raw, result = json.loads(path.read_text()), read_result(path)
            checked += 1
            assert result.config_hash == raw["config_hash"]
            if study.bench.iterations is not None and raw["config_hash"] == unit.config_hash:
                assert unit.bench.identity() == {k: v for k, v in study.bench.model_dump().items()
                                                 if v is not None and k != "processes"}
            assert not any(r.startswith("too few samples") for r in result.verdict.reasons)
            if result.status != "ok":
                continue
            assert (result.stopping.reason, result.stopping.iterations) == ("fixed_iterations", raw["iterations"])
            assert result.stopping.requests == raw["iterations"] * raw["cell"]["batch_size"]
            requests = raw["latency"]["e2e_s"]["n"]
            assert (result.latency.e2e_s.p99 is None) == (requests < 100)
            if requests < 100:
                assert result.null_reasons["latency.e2e_s.p99"] == f"P99 needs >= 100 samples; {requests} were timed"
            assert result.latency.e2e_s.p50 == raw["latency"]["e2e_s"]["p50"]
    assert checked >= 50, "the committed reports hold schema-2 cells"


def test_schema_2_config_hashes_match_the_params_that_planned_them() -> None:
    """Old params (a fixed `bench.iterations`) plan units whose hash is the one their results were written with."""
    from inference_study.config import load_params
    from inference_study.plan import bench_units

    inputs = REPO_ROOT / "tests" / "data" / "scenarios_cpu_old_inputs"  # a CPU run committed under schema 2
    study = load_params(inputs / "params.yaml", legacy_ok=True)
    units = [u for u in bench_units(study) if u.result_path(inputs).is_file()]
    assert units and study.bench.iterations is not None
    assert all(read_result(u.result_path(inputs)).config_hash == u.config_hash for u in units)