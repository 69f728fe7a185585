"""Every PyTorch backend generates for real on a tiny random Llama on CPU, and the harness measures them.

The compiled backends compile with inductor (~15-30 s on CPU per compile): each is compiled once
by the module fixture and once more by its harness run, never for other shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from helpers.repository import REPO_ROOT
from inference_study import harness
from inference_study.backend import Generation
from inference_study.plan import backend_settings, bench_unit
from inference_study.registry import backend_class, sweepable_backends
from inference_study.compose import compose_yaml
from inference_study.config import ConfigError, StudyConfig, validate_params
from inference_study.environment import collect_environment
from inference_study.gpu import GpuUsage
from inference_study.models import safetensors_size
from inference_study.results import CellResult, read_result, write_result
from inference_study.workload import synthetic_input_ids, token_hash

REPO = REPO_ROOT
# hf_paged_compiled: a variant, but the one whose compiled forward a Python hook would break (paged.py)
BACKENDS = ["hf_eager", "hf_static", "hf_static_compiled", "hf_compiled_loop", "hf_fused_loop", "hf_paged",
            "hf_paged_compiled"]
COMPILED = ["hf_static_compiled", "hf_compiled_loop", "hf_fused_loop", "hf_paged_compiled"]
UNCOMPILED = ["hf_eager", "hf_static", "hf_paged"]
BATCH, INPUT_LEN, OUTPUT_LEN = 2, 16, 8
GPU_FIELDS = [name for name in GpuUsage.model_fields if name != "samples"]


@pytest.fixture(scope="module")
def study() -> StudyConfig:
    """The composed defaults, on CPU, with a short bench: 1 warmup, then exactly 2 timed iterations (the
    stopping rule's minimum and maximum requests are both 2 batches)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        raw = yaml.safe_load(compose_yaml([]))
    raw["bench"].update(device="cpu", warmup_iterations=1)
    raw["bench"]["stopping"].update(min_requests=2 * BATCH, max_requests=2 * BATCH, min_seconds=0)
    return validate_params(raw)



@pytest.fixture(scope="module")
def vocab_size(study: StudyConfig) -> int:
    return study.models["tiny_llama"].shape.vocab_size


@pytest.fixture(scope="module")
def input_ids(study: StudyConfig, vocab_size: int) -> list[list[int]]:
    return synthetic_input_ids(BATCH, INPUT_LEN, vocab_size, study.bench.seed)


@dataclass
class Run:
    first: Generation
    second: Generation
    generation_config: Any
    graphs_compiled: int


@pytest.fixture(scope="module")
def runs(study: StudyConfig, model_dir: Path, input_ids: list[list[int]]) -> dict[str, Run]:
    """Each backend loaded once and asked twice for the same batch (the first call compiles)."""
    from torch._dynamo.utils import counters

    out = {}
    for name in BACKENDS:
        backend = backend_class(name)(backend_settings(study, name, "tiny_llama"), model_dir, "float32", "cpu")
        backend.load()
        counters.clear()
        try:
            first = backend.generate(input_ids, OUTPUT_LEN)
            second = backend.generate(input_ids, OUTPUT_LEN)
            config = backend.generation_config(INPUT_LEN, OUTPUT_LEN)
        finally:
            backend.release()
        assert backend.model is None, "release drops the model"
        out[name] = Run(first, second, config, counters["stats"]["unique_graphs"])
    return out


def _generations(run: Run) -> list[Generation]:
    return [run.first, run.second]


# ---------------------------------------------------------------- backends


def test_registry_knows_every_backend() -> None:
    """Every registered backend is run here, except the variants that only differ on CUDA (graphs)."""
    cuda_only = {name for name, spec in sweepable_backends().items() if spec.fixed.get("use_cuda_graph")}
    assert cuda_only == {"hf_paged_graphs", "hf_paged_graphs_compiled"}
    assert sorted(sweepable_backends()) == sorted([*BACKENDS, *cuda_only])
    for name, spec in sweepable_backends().items():
        assert backend_class(name).name == (spec.variant_of or name)


@pytest.mark.parametrize("name", BACKENDS)
def test_exactly_output_len_tokens_per_request(runs: dict[str, Run], name: str, vocab_size: int) -> None:
    for generation in _generations(runs[name]):
        assert len(generation.output_ids) == BATCH
        for ids in generation.output_ids:
            assert len(ids) == OUTPUT_LEN
            assert all(0 <= token < vocab_size for token in ids)


@pytest.mark.parametrize("name", BACKENDS)
def test_token_times_one_per_token_and_increasing(runs: dict[str, Run], name: str) -> None:
    for generation in _generations(runs[name]):
        assert len(generation.token_times) == BATCH
        for times in generation.token_times:
            assert len(times) == OUTPUT_LEN
            assert generation.start < times[0]
            assert all(later > earlier for earlier, later in zip(times, times[1:])), times


@pytest.mark.parametrize("name", BACKENDS)
def test_greedy_is_repeatable(runs: dict[str, Run], name: str) -> None:
    assert runs[name].first.output_ids == runs[name].second.output_ids
    assert runs[name].second.start > runs[name].first.token_times[0][-1], "calls do not overlap"


def test_greedy_outputs_identical_between_backends(runs: dict[str, Run]) -> None:
    eager = runs["hf_eager"].first.output_ids
    for name in [*COMPILED, "hf_paged"]:
        assert runs[name].first.output_ids == eager, name
    assert len({tuple(ids) for ids in eager}) == BATCH, "two different prompts give two different outputs"


def test_paged_greedy_tokens_match_the_contiguous_static_cache(runs: dict[str, Run]) -> None:
    """Paging the KV cache changes where keys and values live, never what greedy decoding produces (fp32)."""
    assert runs["hf_paged"].first.output_ids == runs["hf_static_compiled"].first.output_ids
    assert runs["hf_paged"].second.output_ids == runs["hf_static_compiled"].second.output_ids


def test_only_the_compiled_backends_compile_on_cpu(runs: dict[str, Run]) -> None:
    """The compiled backends really run compiled code on CPU instead of silently falling back to eager."""
    for name in UNCOMPILED:
        assert runs[name].graphs_compiled == 0, name
    for name in COMPILED:
        assert runs[name].graphs_compiled > 0, name


def test_generation_configs(runs: dict[str, Run], study: StudyConfig) -> None:
    for name in ["hf_eager", "hf_static_compiled"]:
        config = runs[name].generation_config
        assert config.max_new_tokens == config.min_new_tokens == OUTPUT_LEN
        assert config.do_sample is False
        assert config.eos_token_id is None, "EOS is ignored: every request produces exactly output_len tokens"
    paged = runs["hf_paged"].generation_config
    assert paged.max_new_tokens == OUTPUT_LEN and paged.do_sample is False
    assert paged.eos_token_id == -1, "continuous batching's own 'never stop': no request ends early"
    assert runs["hf_eager"].generation_config.cache_implementation is None
    static = runs["hf_static_compiled"].generation_config
    settings = backend_settings(study, "hf_static_compiled", "tiny_llama")
    assert static.cache_implementation == "static"
    assert settings.max_cache_len is None
    assert static.max_cache_len == INPUT_LEN + OUTPUT_LEN
    assert static.compile_config.mode == settings.compile_mode
    assert static.compile_config.fullgraph == settings.fullgraph
    uncompiled = runs["hf_static"].generation_config
    assert uncompiled.cache_implementation == "static" and uncompiled.max_cache_len == INPUT_LEN + OUTPUT_LEN
    assert uncompiled.disable_compile is True and not static.disable_compile


# ---------------------------------------------------------------- harness


@pytest.fixture(scope="module")
def environment():
    return collect_environment()


def _cell(study: StudyConfig, backend: str):
    return bench_unit(study, 
        {"model": "tiny_llama", "backend": backend, "batch_size": BATCH, "input_len": INPUT_LEN,
         "output_len": OUTPUT_LEN}
    )


@pytest.mark.parametrize("name", BACKENDS)
def test_run_cell_ok(study: StudyConfig, model_dir: Path, environment, name: str, tmp_path: Path,
                     input_ids: list[list[int]], runs: dict[str, Run]) -> None:
    unit = _cell(study, name)
    cell = unit.cell
    result = harness.run_cell(unit, model_dir, environment)

    assert result.status == "ok" and result.error is None
    assert result.device == "cpu"
    assert result.cell == cell
    assert result.warmup_iterations == study.bench.warmup_iterations
    assert (result.stopping.iterations, result.stopping.requests) == (2, 2 * BATCH)
    assert result.tokens is not None
    assert result.tokens.requested_per_request == OUTPUT_LEN
    assert result.tokens.produced_min == result.tokens.produced_max == OUTPUT_LEN

    requests = BATCH * result.stopping.iterations
    assert result.latency is not None and result.throughput is not None
    assert result.latency.ttft_s.n == result.latency.e2e_s.n == result.latency.tpot_s.n == requests
    assert result.latency.itl_s.n == requests * (OUTPUT_LEN - 1)
    assert 0 < result.latency.ttft_s.p50 < result.latency.e2e_s.p50
    assert result.latency.tpot_s.mean == pytest.approx(result.latency.itl_s.mean)
    rates = result.throughput
    assert rates.requests_per_s > 0 and rates.decode_steps_per_s > 0
    assert rates.output_tokens_per_s == pytest.approx(rates.requests_per_s * OUTPUT_LEN)
    assert rates.total_tokens_per_s == pytest.approx(rates.requests_per_s * (OUTPUT_LEN + INPUT_LEN))

    for field in GPU_FIELDS:
        assert getattr(result.gpu, field) is None
        assert "device is cpu" in result.null_reasons[f"gpu.{field}"]
    assert result.gpu.samples == 0
    assert result.phases.load_s > 0 and result.phases.warmup_s > 0 and result.phases.measure_s > 0
    if name in COMPILED:  # this process compiled the shape already, in the module fixture
        assert result.compile_cache.state in ("in_memory", "warm", "partial"), result.compile_cache
        assert 0 <= result.phases.compile_s <= result.phases.warmup_s
    elif name in UNCOMPILED:
        assert result.compile_cache is None and result.phases.compile_s is None
        assert "compiles nothing itself" in result.null_reasons["compile_cache"]

    parameters, weight_bytes = safetensors_size(model_dir)
    assert result.model is not None
    assert (result.model.parameters, result.model.weight_bytes) == (parameters, weight_bytes)
    assert result.model.random_weights is True
    assert result.backend.name == name
    assert result.backend.settings == backend_settings(study, name, "tiny_llama").model_dump()
    assert result.workload.input_token_hash == token_hash(input_ids)
    assert result.config_hash == unit.config_hash
    assert result.environment_fingerprint == environment.fingerprint

    path = cell.result_path(tmp_path)
    write_result(path, result)
    assert read_result(path) == result


def _oom(*args: Any, **kwargs: Any) -> Generation:
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def _assert_recorded_failure(result: CellResult, tmp_path: Path) -> None:
    assert result.latency is None and result.throughput is None
    CellResult.model_validate(result.model_dump())
    path = result.cell.result_path(tmp_path)
    write_result(path, result)
    assert read_result(path) == result


def test_run_cell_oom_is_recorded(study: StudyConfig, model_dir: Path, environment, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_class("hf_eager"), "generate", _oom)
    result = harness.run_cell(_cell(study, "hf_eager"), model_dir, environment)
    assert result.status == "oom"
    assert result.error is not None and "CUDA out of memory. Tried to allocate 2.00 GiB" in result.error
    assert result.tokens is None
    assert result.phases.measure_s is None and result.null_reasons["phases.measure_s"] == "cell oom"
    _assert_recorded_failure(result, tmp_path)


def test_run_cell_oom_during_measurement(study: StudyConfig, model_dir: Path, environment, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Warmup and the first timed call succeed, the second OOMs: no partial latency is reported."""
    cls = backend_class("hf_eager")
    original = cls.generate
    calls = []

    def flaky(self, ids, output_len):
        calls.append(output_len)
        if len(calls) == study.bench.warmup_iterations + 2:
            _oom()
        return original(self, ids, output_len)

    monkeypatch.setattr(cls, "generate", flaky)
    result = harness.run_cell(_cell(study, "hf_eager"), model_dir, environment)
    assert len(calls) == study.bench.warmup_iterations + 2
    assert result.status == "oom"
    assert result.tokens is None, "tokens of the completed iteration are not reported for an OOM cell"
    assert result.phases.warmup_s is not None
    _assert_recorded_failure(result, tmp_path)


def test_paged_pool_that_does_not_fit_is_recorded_as_oom(study: StudyConfig, model_dir: Path, environment,
                                                         tmp_path: Path) -> None:
    """transformers refuses a pool larger than free memory before allocating it; the cell records an OOM."""
    raw = study.model_dump()
    raw["backends"]["hf_paged"] = {**raw["backends"]["hf_paged"], "num_blocks": 10**9}
    result = harness.run_cell(_cell(validate_params(raw), "hf_paged"), model_dir, environment)
    assert result.status == "oom"
    assert result.error is not None and "is more than available memory" in result.error
    assert result.phases.load_s is not None and result.phases.measure_s is None
    _assert_recorded_failure(result, tmp_path)


def test_run_cell_wrong_token_count_fails(study: StudyConfig, model_dir: Path, environment, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cls = backend_class("hf_eager")
    original = cls.generate

    def one_short(self, ids, output_len):
        generation = original(self, ids, output_len)
        return Generation(
            output_ids=[row[:-1] for row in generation.output_ids],
            start=generation.start,
            token_times=[times[:-1] for times in generation.token_times],
        )

    monkeypatch.setattr(cls, "generate", one_short)
    result = harness.run_cell(_cell(study, "hf_eager"), model_dir, environment)
    assert result.status == "failed"
    assert result.error is not None
    assert f"requested {OUTPUT_LEN}" in result.error
    assert f"{OUTPUT_LEN - 1}..{OUTPUT_LEN - 1}" in result.error
    assert result.tokens is not None and result.tokens.produced_max == OUTPUT_LEN - 1
    _assert_recorded_failure(result, tmp_path)


def test_run_cell_other_errors_propagate_and_release(study: StudyConfig, model_dir: Path, environment,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Only an OOM becomes a recorded outcome; any other error is raised, after the backend is released."""
    cls = backend_class("hf_eager")
    released = []
    original_release = cls.release

    def broken(self, ids, output_len):
        raise RuntimeError("shape mismatch in the kernel")

    def release(self):
        released.append(True)
        original_release(self)

    monkeypatch.setattr(cls, "generate", broken)
    monkeypatch.setattr(cls, "release", release)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        harness.run_cell(_cell(study, "hf_eager"), model_dir, environment)
    assert released == [True]


def test_resolve_device() -> None:
    assert harness.resolve_device("cpu") == "cpu"
    assert harness.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="bench.device"):
            harness.resolve_device("cuda")


def test_paged_prefilled_tokens_agree_with_transformers_own_prefix_counter(model_dir: Path) -> None:
    """The paged backend counts a request's computed prompt tokens at the model's input (a public hook); with
    block sharing the second identical prompt computes only what transformers' own counter did not reuse."""
    from inference_study.backends.hf.paged import HfPaged
    from inference_study.backends.hf.settings import HfPagedSettings

    paged = HfPaged(HfPagedSettings(block_size=8, num_blocks=16, max_batch_tokens=64, allow_block_sharing=True),
                    model_dir, "float32", "cpu")
    paged.load()
    try:
        prompt = list(range(3, 43))  # 40 tokens: 5 full blocks of 8
        first = paged.generate([prompt], 6)
        counter = paged.manager.batch_processor.cache._total_prefix_length  # private: read here only to check
        second = paged.generate([prompt], 6)
        reused = paged.manager.batch_processor.cache._total_prefix_length - counter
    finally:
        paged.release()
    assert first.prefilled_tokens == [len(prompt)]
    # transformers counts every matched block, but still computes one token to start decoding
    assert reused > 0 and second.prefilled_tokens == [max(len(prompt) - reused, 1)]
    assert second.output_ids == first.output_ids


def test_a_cell_measured_in_fresh_processes_pools_their_repeats(study: StudyConfig, model_dir: Path,
                                                                 environment) -> None:
    """`bench.processes: 2`: load, warmup and the timed loop run once in each of two spawned processes; the
    result holds both processes' repeats, its interval comes from the hierarchical bootstrap over them, and
    the greedy tokens are the single-process run's."""
    raw = study.model_dump(mode="json")
    raw["bench"]["processes"] = 2
    two = validate_params(raw)
    unit = _cell(two, "hf_eager")
    result = harness.run_cell(unit, model_dir, environment)
    single = harness.run_cell(_cell(study, "hf_eager"), model_dir, environment)
    assert result.status == "ok" and result.processes == 2
    groups = result.headline.tpot_p50_s.samples
    assert len(groups) == 2 and all(len(g) == 2 for g in groups), "each process ran the rule's 2 iterations"
    assert result.headline.tpot_p50_s.ci_low is None, "two processes are too few for an interval over processes"
    assert result.stopping.iterations == 4 and result.stopping.requests == 4 * BATCH
    assert result.latency.e2e_s.n == 4 * BATCH
    assert result.output_ids == single.output_ids
    assert result.config_hash != single.config_hash, "the process count is part of the measurement's identity"
    assert result.phases.load_s > 0 and result.phases.measure_s > 0
