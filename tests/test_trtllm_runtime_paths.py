"""TensorRT-LLM code paths that would break on the first real run, against a STAND-IN that refuses what TensorRT-LLM
refuses (tests/helpers/trtllm_stand_in.py names the NVIDIA source of each refusal).

A contiguous-KV engine on the LLM API, a second iteration-stats drain from outside the backend's event loop, a KV
cache connector with CUDA graphs on or with the early load-slot arithmetic, and feature gates that let in versions
without the interface: each test here failed before its fix. Nothing here measures TensorRT-LLM.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from helpers.repository import REPO_ROOT
from helpers.trtllm_contract import objects, unlisted
from helpers.trtllm_stand_in import (
    CONNECTOR_GRAPH_REFUSAL,
    FIRST_TOKEN,
    connector_instance,
    connector_step,
    import_connector,
    install_stand_in,
    write_engine,
)

from inference_study.backends.trtllm import engine_dir
from inference_study.backends.trtllm.backend import TrtllmPytorch
from inference_study.compose import compose_yaml
from inference_study.config import ConfigError, StudyConfig, validate_params
from inference_study.environment import collect_environment
from inference_study.harness import run_cell
from inference_study.models import prepare_model
from inference_study.plan import bench_units
from inference_study.trtllm.calls import kv_connector_llm_extras, session_generate_kwargs, session_load_kwargs
from inference_study.trtllm.settings import TrtllmPytorchSettings
from inference_study.trtllm.version import TrtllmUnavailable, band_for, require_feature, resolve

MODEL = "tiny_llama"
CONTIGUOUS = "trtllm_engine_throughput_contiguous"
SWEEP = ["sweep.backends=[hf_eager]", "sweep.batch_sizes=[2]", "sweep.input_lens=[8]", "sweep.output_lens=[3]",
         f"trtllm.models=[{MODEL}]", "trtllm.engines=[throughput,throughput_contiguous]",
         "bench.stopping.min_requests=4", "bench.stopping.max_requests=4", "bench.stopping.min_seconds=0"]


def _study(*overrides: str) -> StudyConfig:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO_ROOT)
        return validate_params(yaml.safe_load(compose_yaml([*SWEEP, *overrides])))


@pytest.fixture(scope="module")
def model_stage_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("results") / "models" / MODEL
    prepare_model(MODEL, _study().models[MODEL], out)
    return out


# 1. The contiguous-KV engine arm runs on the Python session runtime, never on the LLM API.
@pytest.mark.parametrize("version", ["0.15.1", "1.2.1"])
def test_the_llm_api_refuses_a_contiguous_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    install_stand_in(monkeypatch, version)
    write_engine(tmp_path / "engine", paged=False)
    with pytest.raises(RuntimeError, match="requires .* packed input and paged KV cache"):
        resolve(band_for(version, "engine").engine_llm)(model=str(tmp_path / "engine"))


@pytest.mark.parametrize("version", ["0.15.1", "0.21.0", "1.2.1"])
def test_a_contiguous_engine_is_measured_on_the_session_runtime_with_per_token_host_times(
    monkeypatch: pytest.MonkeyPatch, model_stage_dir: Path, tmp_path: Path, version: str,
) -> None:
    log = install_stand_in(monkeypatch, version)
    monkeypatch.chdir(tmp_path)
    write_engine(tmp_path / engine_dir(MODEL, "throughput_contiguous"), paged=False)
    study = _study()
    unit = next(u for u in bench_units(study) if u.cell.backend == CONTIGUOUS)
    result = run_cell(unit, model_stage_dir, collect_environment())

    assert result.status == "ok", result.error
    assert not [name for name, _ in log.calls if name.endswith("LLM")], "a contiguous engine reached the LLM API"
    (load,) = log.keywords("tensorrt_llm.runtime.ModelRunner.from_dir")
    assert load == {"engine_dir": engine_dir(MODEL, "throughput_contiguous"), "rank": 0}
    runs = log.keywords("tensorrt_llm.runtime.ModelRunner.generate")
    assert len(runs) == study.bench.warmup_iterations + result.stopping.iterations
    assert all(r["streaming"] and r["max_new_tokens"] == r["min_length"] == 3 for r in runs)
    assert result.output_ids == [[FIRST_TOKEN, FIRST_TOKEN + 1, FIRST_TOKEN + 2]] * 2
    assert result.tokens.produced_min == result.tokens.produced_max == 3
    assert result.latency.ttft_s.n == result.stopping.requests == 4


def test_the_session_runtime_names_are_recorded_where_the_contract_has_them() -> None:
    """The contract records ModelRunner at 0.15.0 only (`verified: partial`); 1.x is checked on the first run."""
    band = band_for("0.15.0", "engine")
    generate = session_generate_kwargs([torch.tensor([1, 2])], 4, 2, 0)
    assert unlisted(session_load_kwargs(Path("e")), band, objects("tensorrt_llm.runtime.ModelRunner.from_dir")) == []
    assert unlisted(generate, band, objects("tensorrt_llm.runtime.ModelRunner.generate")) == []


def test_a_contiguous_profile_must_hold_the_largest_swept_batch_whatever_its_purpose() -> None:
    """The session runtime takes one batch and queues nothing, so a contiguous latency engine is refused."""
    with pytest.raises(ConfigError, match=r"trtllm.profiles.throughput_contiguous.max_batch_size: 1 < largest swept "
                                          r"batch 2"):
        _study("trtllm.profiles.throughput_contiguous.purpose=latency",
               "trtllm.profiles.throughput_contiguous.max_batch_size=1")


# 2. Iteration stats are drained on the backend's event loop, where their queue was made.
def _offload_backend(model_dir: Path) -> TrtllmPytorch:
    keywords = {"enable_block_reuse": True, "max_tokens": 64, "tokens_per_block": 8, "host_cache_size": 0,
                "free_gpu_memory_fraction": 0.9}
    return TrtllmPytorch(TrtllmPytorchSettings(), model_dir, "float32", "cuda").with_kv_cache(
        keywords).with_iteration_stats()


@pytest.mark.parametrize("version", ["1.2.1", "1.3.0rc4"])
def test_the_second_stats_read_after_a_request_is_drained_on_the_backends_loop(
    model_stage_dir: Path, monkeypatch: pytest.MonkeyPatch, version: str,
) -> None:
    log = install_stand_in(monkeypatch, version)
    backend = _offload_backend(model_stage_dir)
    backend.load()
    try:
        before = backend.read_kv_totals()
        backend.generate([[5, 6, 7]], 2)
        after = backend.read_kv_totals()  # the sync get_stats() raised TypeError here
        with pytest.raises(TypeError):  # what a sync drain does once the loop made the queue
            backend.llm.get_stats(timeout=2)
    finally:
        backend.release()
    assert before.null_reason == after.null_reason and "get_stats_async() returned no iteration" in after.null_reason
    assert log.keywords("tensorrt_llm.LLM.get_stats_async") == [{"timeout": 2}] * 2


# 3. The KV cache connector: CUDA graphs off, loads right after the GPU's own hits, 1.1.0 final on.
def test_the_connector_is_refused_with_cuda_graphs_on_and_loads_with_them_off(
    model_stage_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = install_stand_in(monkeypatch, "1.2.1")
    graphs_on = TrtllmPytorch(TrtllmPytorchSettings(), model_stage_dir, "float32", "cuda")
    with pytest.raises(NotImplementedError, match=CONNECTOR_GRAPH_REFUSAL):
        graphs_on.with_extras(kv_connector_llm_extras()).load()
    backend = TrtllmPytorch(TrtllmPytorchSettings(), model_stage_dir, "float32", "cuda").with_kv_connector()
    backend.load()
    backend.release()
    llm_kwargs = log.keywords("tensorrt_llm.LLM")[-1]
    assert llm_kwargs["cuda_graph_config"] is None and llm_kwargs["kv_connector_config"].kwargs[
        "connector_scheduler_class"] == "PrefixHashScheduler"


BLOCK = 4
PROMPT = list(range(200, 214))  # three full blocks and a partial one


def test_blocks_load_right_after_the_ones_already_on_the_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """computed_position leaves out the connector's tokens on 1.x: with block 0 cached on the GPU, disk blocks 1
    and 2 go to the request's GPU blocks 1 and 2 (the early arithmetic put them before block 0, so nowhere)."""
    connector, _ = import_connector(monkeypatch, "1.2.1")
    cold = torch.randn(8, 2, 3, BLOCK, 5, generator=torch.Generator().manual_seed(3))
    connector_step(*connector_instance(connector, tmp_path, monkeypatch, BLOCK, cold), PROMPT, [5, 2, 7, 1], device_matched=0)
    warm = torch.zeros_like(cold)
    matched, plan = connector_step(*connector_instance(connector, tmp_path, monkeypatch, BLOCK, warm), PROMPT, [3, 0, 6, 4],
                                   device_matched=BLOCK)
    assert matched == 2 * BLOCK and [b for _, b in plan.load] == [0, 6] and plan.save == []
    assert torch.equal(warm[0], cold[2]) and torch.equal(warm[6], cold[7])
    assert not warm[3].any() and not warm[4].any()  # the GPU's own block is left alone, the partial is computed


@pytest.mark.parametrize(("version", "runs"), [
    ("1.1.0rc0", False), ("1.1.0rc2", False), ("1.1.0rc5", False), ("1.1.0", True), ("1.2.0rc1", True),
    ("1.2.1", True), ("1.3.0rc4", False),
])
def test_the_connector_gate_starts_at_1_1_0_final(version: str, runs: bool) -> None:
    if runs:
        require_feature(version, "kv_connector")
        return
    with pytest.raises(TrtllmUnavailable, match=r"supported 1.1 <= version < 1.3, from 1.1.0 on"):
        require_feature(version, "kv_connector")


# 4. tokens_per_block is not shown to be a KvCacheConfig field at 1.0: the host-cache variants start at 1.1.
@pytest.mark.parametrize("version", ["1.0.0", "1.0.1"])
def test_the_host_cache_variants_start_at_1_1(version: str) -> None:
    with pytest.raises(TrtllmUnavailable, match=r"tokens_per_block .* supported 1.1 <= version < 1.5"):
        require_feature(version, "kv_host_cache")
    require_feature("1.1.0", "kv_host_cache")
