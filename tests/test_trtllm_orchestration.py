"""TensorRT-LLM orchestration with a STAND-IN `tensorrt_llm` that records calls: dispatch, errors, result assembly.

Nothing here measures TensorRT-LLM. The last tests check the stand-in's output can never become a
TensorRT-LLM result: it cannot be written, read, or reported.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers.repository import REPO_ROOT
from helpers.trtllm_contract import callee_objects, unlisted
from helpers.trtllm_stand_in import FIRST_TOKEN, write_engine
from helpers.trtllm_stand_in import install_stand_in as install

from inference_study.backends.trtllm import engine_dir
from inference_study.compose import compose_yaml
from inference_study.config import ConfigError, StudyConfig, validate_params
from inference_study.environment import STAND_IN_MARK, collect_environment
from inference_study.harness import run_cell
from inference_study.models import prepare_model
from inference_study.plan import BenchUnit, bench_units
from inference_study.registry import backend_class
from inference_study.report import build_report
from inference_study.results import ResultError, read_result, write_result
from inference_study.trtllm import stages
from inference_study.trtllm.version import TrtllmUnavailable, band_for, preflight

REPO = REPO_ROOT
MODEL = "tiny_llama"
SWEEP = ["sweep.backends=[hf_eager]", "sweep.batch_sizes=[1,2]", "sweep.input_lens=[8]", "sweep.output_lens=[3]",
         f"trtllm.models=[{MODEL}]", f"trtllm.pytorch_models=[{MODEL}]",
         # exactly 2 timed iterations of the batch-2 cells the tests measure
         "bench.stopping.min_requests=4", "bench.stopping.max_requests=4", "bench.stopping.min_seconds=0"]


@pytest.fixture(scope="module")
def study() -> StudyConfig:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        return validate_params(yaml.safe_load(compose_yaml(SWEEP)))


@pytest.fixture(scope="module")
def model_stage_dir(study: StudyConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("results") / "models" / MODEL
    prepare_model(MODEL, study.models[MODEL], out)
    return out


@pytest.mark.parametrize(("version", "flow", "llm_class"), [
    ("0.15.0", "engine", "tensorrt_llm.LLM"),
    ("0.21.0", "engine", "tensorrt_llm.LLM"),
    ("1.0.0rc3", "engine", "tensorrt_llm._tensorrt_engine.LLM"),
    ("1.2.1", "engine", "tensorrt_llm._tensorrt_engine.LLM"),
    ("1.2.1", "pytorch", "tensorrt_llm.LLM"),
    ("1.3.0rc4", "pytorch", "tensorrt_llm.LLM"),
])
def test_version_picks_the_flows_llm_class(version: str, flow: str, llm_class: str) -> None:
    assert band_for(version, flow).llm_class_path(flow) == llm_class


@pytest.mark.parametrize(("version", "flow", "message"), [
    ("0.12.0", "engine", "supported 0.15 <= version < 1.3"),
    ("0.21.0", "pytorch", "supported 1.0 <= version < 1.5"),
    ("1.3.0rc4", "engine", "removed trtllm-build"),
    ("2.0.0", "pytorch", "outside what the API contract covers"),
    ("nightly", "engine", "not a version number"),
])
def test_versions_outside_the_contract_are_refused_naming_the_range(version: str, flow: str, message: str) -> None:
    with pytest.raises(TrtllmUnavailable, match=message):
        band_for(version, flow)


def test_preflight_without_tensorrt_llm_names_the_install_route_and_the_preset_without_it() -> None:
    with pytest.raises(TrtllmUnavailable) as stop:
        preflight(["engine", "pytorch"], None, "h100_trtllm")
    message = str(stop.value)
    assert "not installed" in message and "nvcr.io/nvidia/tensorrt-llm/release" in message
    assert "pip install tensorrt_llm" in message and "study=h100" in message
    preflight([], None, "default")  # a study without TensorRT-LLM needs nothing


def test_preflight_refuses_an_engine_study_on_a_version_without_engines() -> None:
    preflight(["pytorch"], "1.3.0", "s")
    with pytest.raises(TrtllmUnavailable, match="no TensorRT engine flow"):
        preflight(["engine", "pytorch"], "1.3.0", "s")


@pytest.mark.parametrize(("override", "message"), [
    ("trtllm.profiles.latency.max_batch_size=2", "a latency engine serves one request"),
    ("trtllm.profiles.throughput.max_batch_size=1", "trtllm.profiles.throughput.max_batch_size: 1 < largest swept batch 2"),
    ("trtllm.profiles.throughput.use_paged_context_fmha=true", None),
    ("trtllm.profiles.throughput_contiguous.use_paged_context_fmha=true", "needs paged_kv_cache: true"),
    ("trtllm.pytorch.max_seq_len=10", "trtllm.pytorch.max_seq_len: 10 < longest swept input \\+ output 11"),
    ("trtllm.pytorch_models=[qwen2_5_7b]", "not in sweep.models"),
    ("trtllm.engines=[fastest]", "unknown profile"),
])
def test_trtllm_config_errors_name_the_key(override: str, message: str | None) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        raw = yaml.safe_load(compose_yaml([*SWEEP, "trtllm.engines=[latency,throughput,throughput_contiguous]"]))
    section, _, assignment = override.partition("=")
    keys = section.split(".")
    target = raw
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = yaml.safe_load(assignment)
    if message is None:
        validate_params(raw)
        return
    with pytest.raises(ConfigError, match=message):
        validate_params(raw)


def trtllm_units(study: StudyConfig) -> list[BenchUnit]:
    return [unit for unit in bench_units(study) if unit.cell.backend not in study.sweep.backends]


def test_trtllm_cells_follow_the_trtllm_section(study: StudyConfig) -> None:
    backends = {unit.cell.backend for unit in trtllm_units(study)}
    assert backends == {"trtllm_engine_latency", "trtllm_engine_throughput", "trtllm_pytorch"}
    rungs = [unit.cell.backend for unit in bench_units(study)][: -len(trtllm_units(study))]
    assert len(trtllm_units(study)) == 3 * 2 and set(rungs) == set(study.sweep.backends)


@pytest.mark.parametrize(("version", "backend", "llm_class", "shutdown"), [
    ("0.15.1", "trtllm_engine_latency", "tensorrt_llm.LLM", "__exit__"),
    ("1.2.1", "trtllm_engine_throughput", "tensorrt_llm._tensorrt_engine.LLM", "shutdown"),
    ("1.2.1", "trtllm_pytorch", "tensorrt_llm.LLM", "shutdown"),
    ("1.3.0rc4", "trtllm_pytorch", "tensorrt_llm.LLM", "shutdown"),
])
def test_stand_in_run_calls_the_versions_api_with_contract_names_and_assembles_a_result(
    monkeypatch: pytest.MonkeyPatch, study: StudyConfig, model_stage_dir: Path, tmp_path: Path,
    version: str, backend: str, llm_class: str, shutdown: str,
) -> None:
    log = install(monkeypatch, version)
    profile = backend.removeprefix("trtllm_engine_") if backend.startswith("trtllm_engine_") else None
    monkeypatch.chdir(tmp_path)  # the units name the engine the trtllm_build stage writes under results/
    if profile:
        write_engine(tmp_path / engine_dir(MODEL, profile), paged=True)  # the latency and throughput profiles
    unit = next(u for u in trtllm_units(study) if u.cell.backend == backend and u.cell.batch_size == 2)
    cell = unit.cell
    result = run_cell(unit, model_stage_dir, collect_environment())

    flow = "engine" if profile else "pytorch"
    band = band_for(version, flow)
    assert [name for name, _ in log.calls][:2] == ["tensorrt_llm.llmapi.KvCacheConfig", llm_class]
    assert [name for name, _ in log.calls][-1] == f"{llm_class}.{shutdown}"
    checks = callee_objects(llm_class, flow)
    for callee, kwargs in log.calls:
        if callee in checks:
            assert unlisted(kwargs, band, checks[callee]) == [], callee
    (llm_kwargs,) = log.keywords(llm_class)
    if profile:
        assert llm_kwargs["model"] == engine_dir(MODEL, profile)
    else:
        assert llm_kwargs["model"] == str(model_stage_dir.resolve()) and llm_kwargs["max_batch_size"] == 32
    sampling = log.keywords("tensorrt_llm.SamplingParams")
    assert sampling and all(s["max_tokens"] == 3 and s["ignore_eos"] is True for s in sampling)
    calls_per_batch = cell.batch_size  # one streamed request per row, for every warmup and timed iteration
    assert result.stopping.iterations == 4 // cell.batch_size
    iterations = study.bench.warmup_iterations + result.stopping.iterations
    assert len(log.keywords(f"{llm_class}.generate_async")) == calls_per_batch * iterations

    assert result.status == "ok", result.error
    assert result.backend.memory_seen_by_torch_allocator is False
    assert result.output_ids == [[FIRST_TOKEN, FIRST_TOKEN + 1, FIRST_TOKEN + 2]] * 2
    assert result.tokens.produced_min == result.tokens.produced_max == 3
    assert result.latency.ttft_s.n == result.stopping.requests == 4
    assert STAND_IN_MARK in result.environment.tensorrt_llm


def test_stand_in_results_are_never_written_read_or_reported(
    monkeypatch: pytest.MonkeyPatch, study: StudyConfig, model_stage_dir: Path, tmp_path: Path,
) -> None:
    install(monkeypatch, "1.2.1")
    unit = next(u for u in trtllm_units(study) if u.cell.backend == "trtllm_pytorch")
    cell = unit.cell
    result = run_cell(unit, model_stage_dir, collect_environment())
    path = cell.result_path(tmp_path)
    with pytest.raises(ResultError, match="only results measured with an installed tensorrt_llm"):
        write_result(path, result)
    assert not path.exists()

    # Forged on disk anyway (bypassing write_result): reading refuses it, and so does the report.
    path.parent.mkdir(parents=True)
    path.write_text(result.model_dump_json())
    with pytest.raises(ResultError, match="stand-in"):
        read_result(path)
    with pytest.raises(ResultError, match="trtllm_pytorch result"):
        build_report(study, tmp_path, tmp_path / "report", tmp_path / "roofline.json")

    # Without the stand-in mark, a TensorRT-LLM result that records no TensorRT-LLM version is refused too.
    unversioned = json.loads(result.model_dump_json())
    unversioned["environment"]["tensorrt_llm"] = None
    unversioned["environment_fingerprint"] = type(result.environment)(**unversioned["environment"]).fingerprint
    path.write_text(json.dumps(unversioned))
    with pytest.raises(ResultError, match="tensorrt_llm=None"):
        read_result(path)


def test_bench_stage_with_the_stand_in_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, study: StudyConfig, model_stage_dir: Path, tmp_path: Path,
) -> None:
    install(monkeypatch, "1.2.1")
    monkeypatch.setattr(stages, "model_dir", lambda name: model_stage_dir)
    with pytest.raises(ResultError):
        stages.bench_stage(study, {"model": MODEL, "backend": "trtllm_pytorch"}, tmp_path)
    assert not (tmp_path / "cells").exists()


def test_convert_and_build_stages_run_the_versions_commands(
    monkeypatch: pytest.MonkeyPatch, study: StudyConfig, model_stage_dir: Path, tmp_path: Path,
) -> None:
    install(monkeypatch, "1.2.1")
    examples = tmp_path / "examples"
    script = examples / "models/core/llama/convert_checkpoint.py"
    script.parent.mkdir(parents=True)
    script.touch()
    ran: list[list[str]] = []
    monkeypatch.setattr(stages.subprocess, "run", lambda argv, check: ran.append(argv))
    monkeypatch.setattr(stages, "model_dir", lambda name: model_stage_dir)
    view = study.model_copy(update={"trtllm": study.trtllm.model_copy(
        update={"convert": study.trtllm.convert.model_copy(update={"examples_dir": str(examples)})})})
    out = tmp_path / "results"
    stages.convert_stage(view, {"model": MODEL}, out)
    stages.build_stage(view, {"model": MODEL, "profile": "throughput"}, out)
    convert, build = ran
    assert convert[1:] == [str(script), "--model_dir", str(model_stage_dir.resolve()), "--output_dir",
                           str(stages.checkpoint_dir(out, MODEL)), "--dtype", "float32", "--tp_size", "1"]
    assert build[:5] == ["trtllm-build", "--checkpoint_dir", str(stages.checkpoint_dir(out, MODEL)),
                         "--output_dir", str(stages.engine_dir(out, MODEL, "throughput"))]
    with pytest.raises(ConfigError, match="cell.profile: 'throughput_contiguous' is not enabled"):
        stages.build_stage(view, {"model": MODEL, "profile": "throughput_contiguous"}, out)


def test_convert_stage_says_where_it_looked_for_the_script(
    monkeypatch: pytest.MonkeyPatch, study: StudyConfig, model_stage_dir: Path,
) -> None:
    install(monkeypatch, "0.15.0")
    monkeypatch.setattr(stages, "model_dir", lambda name: model_stage_dir)
    with pytest.raises(ConfigError, match=r"trtllm.convert.examples_dir: .*examples/llama/convert_checkpoint.py"):
        stages.convert_stage(study, {"model": MODEL}, Path("unused"))


def test_every_trtllm_backend_name_resolves_to_its_class(study: StudyConfig) -> None:
    for unit in trtllm_units(study):
        cls = backend_class(unit.cell.backend)
        assert cls.memory_seen_by_torch_allocator is False
        assert cls.flow == ("pytorch" if unit.cell.backend == "trtllm_pytorch" else "engine")


@pytest.mark.parametrize("message", [
    "[TensorRT-LLM][ERROR] CUDA runtime error in cudaMallocAsync(ptr, n, mCudaStream->get()): out of memory",
    "[TensorRT-LLM][ERROR] Out of memory: could not allocate the KV cache pool",
])
def test_a_tensorrt_llm_out_of_memory_error_is_the_cells_recorded_outcome(
    monkeypatch: pytest.MonkeyPatch, study: StudyConfig, model_stage_dir: Path, message: str,
) -> None:
    install(monkeypatch, "1.2.1")

    def out_of_memory(self, input_ids: list[list[int]], output_len: int) -> None:
        raise RuntimeError(message)

    monkeypatch.setattr(backend_class("trtllm_pytorch"), "generate", out_of_memory)
    unit = next(u for u in trtllm_units(study) if u.cell.backend == "trtllm_pytorch")
    result = run_cell(unit, model_stage_dir, collect_environment())
    assert result.status == "oom" and message.splitlines()[0] in result.error
    assert result.verdict.status == "fail" and result.latency is None


def test_other_tensorrt_llm_errors_still_stop_the_stage(
    monkeypatch: pytest.MonkeyPatch, study: StudyConfig, model_stage_dir: Path,
) -> None:
    install(monkeypatch, "1.2.1")

    def broken(self, input_ids: list[list[int]], output_len: int) -> None:
        raise RuntimeError("[TensorRT-LLM][ERROR] Assertion failed: engine built for another GPU")

    monkeypatch.setattr(backend_class("trtllm_pytorch"), "generate", broken)
    unit = next(u for u in trtllm_units(study) if u.cell.backend == "trtllm_pytorch")
    with pytest.raises(RuntimeError, match="another GPU"):
        run_cell(unit, model_stage_dir, collect_environment())
