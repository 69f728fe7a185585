"""KV offload (the KV host-offload benchmarks) for real on the tiny random Llama on CPU: with a device pool of one
request, returning prompts reuse nothing without a host cache and all their full blocks with it, the
greedy outputs are identical either way, and bad pool sizes fail before any work, naming the key."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from helpers.repository import REPO_ROOT, composed, scenario_result, trtllm_features
from helpers.trtllm_contract import callee_objects, unlisted
from helpers.trtllm_stand_in import install_stand_in

from inference_study.backend import Generation
from inference_study.backends.trtllm.backend import NO_KV_CACHE_STATS, KvCacheCounters, kv_cache_totals
from inference_study.config import StudyConfig, validate_params
from inference_study.report.scenarios import scenario_sections
from inference_study.results import ResultError, write_scenario_result
from inference_study.scenarios.kv_offload.record import KvOffloadRecord
from inference_study.scenarios.kv_offload.run import (
    SEQUENCE,
    measure,
    paged_reference,
    pool,
    record,
    run_kv_offload,
    serve_sequence,
)
from inference_study.scenarios.kv_offload.settings import KvOffloadSettings
from inference_study.scenarios.kv_offload.trtllm import serve_sequence as serve_trtllm_sequence
from inference_study.scenarios.kv_offload.trtllm import trtllm_arms as kv_offload_trtllm_arms
from inference_study.scenarios.timing import Policy
from inference_study.stopping import StoppingRule
from inference_study.trtllm.settings import TrtllmPytorchSettings
from inference_study.trtllm.version import FEATURES, TrtllmUnavailable, band_for, preflight
from inference_study.workload import synthetic_input_ids

REPO = REPO_ROOT
# 40-token prompts, 8 new tokens, blocks of 8: 4 full blocks reusable (the last prompt token is always
# prefilled), and a 48-token device pool holds exactly one request.
SETTINGS = KvOffloadSettings(
    warmup_iterations=0,
    prompt_len=40,
    output_len=8,
    tokens_per_block=8,
    gpu_pool_tokens=48,
    host_cache_tokens=1024,
)
# One timed iteration (A,B,A,B in both arms: 8 requests, past max_requests): these tests check counters and outputs.
ONCE = Policy(rule=StoppingRule(min_requests=1, max_requests=1, min_seconds=0, max_seconds=60, target_half_width=0.5),
              max_cv=1.0)


@pytest.fixture(scope="module")
def study() -> StudyConfig:
    return validate_params(composed("study=scenarios_cpu"))



@pytest.fixture(scope="module")
def prompts(backend) -> dict[str, list[int]]:
    a, b = synthetic_input_ids(2, SETTINGS.prompt_len, backend.model_config.vocab_size, 0)
    return {"A": a, "B": b}


def test_a_pool_smaller_than_one_block_is_refused() -> None:
    with pytest.raises(ValueError, match="less than one block"):
        KvOffloadSettings(tokens_per_block=64, prompt_len=80, output_len=8, gpu_pool_tokens=32)


@pytest.mark.parametrize("host_cache", [False, True])
def test_returning_prompts_reuse_blocks_only_with_a_host_cache(backend, prompts, host_cache: bool) -> None:
    served = serve_sequence(backend, SETTINGS, prompts, host_cache)
    reused = [s.reused_blocks for s in served]
    assert reused == ([0, 0, 4, 4] if host_cache else [0, 0, 0, 0])
    sources = [None, None, "host", "host"] if host_cache else [None] * 4
    assert [s.lookup.reused_from for s in served] == sources
    # a reused prefix of 32 tokens leaves 8 to prefill; a miss prefills all 40
    assert [s.run.forward_lengths[0] for s in served] == ([40, 40, 8, 8] if host_cache else [40] * 4)
    assert all(len(s.run.output_ids) == SETTINGS.output_len for s in served)
    assert all(s.run.forward_lengths[1:] == [1] * (SETTINGS.output_len - 1) for s in served)


def test_a_pool_of_two_requests_keeps_both_on_the_device(backend, prompts) -> None:
    roomy = SETTINGS.model_copy(update={"gpu_pool_tokens": 96})
    served = serve_sequence(backend, roomy, prompts, host_cache=False)
    assert [s.lookup.reused_from for s in served] == [None, None, "gpu", "gpu"]


def test_eviction_to_host_is_least_recently_used_and_host_capacity_bounds_it(backend, prompts) -> None:
    small_host = SETTINGS.model_copy(update={"host_cache_tokens": 32})
    cache = pool(backend, small_host, host_cache=True)
    for name in ("A", "B"):
        found = cache.lookup(prompts[name], SETTINGS.output_len)
        backend.greedy(prompts[name], SETTINGS.output_len, past_key_values=found.cache)
        cache.keep(prompts[name][:32], found.cache)
    assert list(cache.tiers["gpu"]) == [tuple(prompts["B"][:32])]
    assert list(cache.tiers["host"]) == [tuple(prompts["A"][:32])]
    assert cache.tiers["host"][tuple(prompts["A"][:32])].get_seq_length() == 32
    tight = pool(backend, SETTINGS.model_copy(update={"host_cache_tokens": 31}), host_cache=True)
    for name in ("A", "B"):
        found = tight.lookup(prompts[name], SETTINGS.output_len)
        backend.greedy(prompts[name], SETTINGS.output_len, past_key_values=found.cache)
        tight.keep(prompts[name][:32], found.cache)
    assert not tight.tiers["host"]  # A's 32 tokens do not fit a 31-token host tier: dropped


def test_outputs_identical_with_and_without_host_cache_and_expectation_met(backend) -> None:
    rows, divergences, stopped = measure(backend, SETTINGS, backend.model_config.vocab_size, 0, ONCE)
    assert (stopped.reason, stopped.iterations, stopped.requests) == ("max_requests", 1, 2 * len(SEQUENCE))
    result = record(SETTINGS, rows, divergences, {"hf, both arms": stopped}, ONCE)
    assert [(r.host_cache, r.prompt, r.round) for r in result.rows] == [
        (h, name, round_) for h in (False, True) for name, round_ in SEQUENCE
    ]
    assert result.identical_outputs and result.expectation.met
    for row in result.rows:
        same_prompt = [r.output_ids for r in result.rows if r.prompt == row.prompt]
        assert all(ids == row.output_ids for ids in same_prompt)
    assert [r.hit_rate for r in result.rows if r.round == 2] == [0.0, 0.0, 1.0, 1.0]
    assert {r.backend for r in result.rows} == {"hf"}
    assert [(c.what.split(":")[0], c.subject, c.baseline) for c in result.claims + result.controls] == [
        ("hf", "host cache on", "host cache off")] * 2


@pytest.fixture(scope="module")
def offloaded(model_dir, backend) -> KvOffloadRecord:
    """The whole hf scenario as the stage runs it: both arms, then transformers' paged reference."""
    return run_kv_offload(SETTINGS, model_dir, "float32", "cpu", backend.model_config.vocab_size, 0, ONCE)


def test_transformers_paged_pool_of_one_request_reuses_nothing_and_of_two_reuses_the_returning(
    model_dir, prompts, offloaded
) -> None:
    assert offloaded.paged_reused_tokens == [0, 0, 0, 0] and offloaded.paged_identical_outputs
    assert offloaded.expectation.met
    roomy = SETTINGS.model_copy(update={"gpu_pool_tokens": 96})
    reused, outputs = paged_reference(roomy, model_dir, "float32", "cpu", prompts)
    assert reused[:2] == [0, 0] and all(n > 0 for n in reused[2:])
    assert outputs[0] == outputs[2] and outputs[1] == outputs[3]
    assert all(len(ids) == SETTINGS.output_len for ids in outputs)


def test_report_section_states_expectation_outcome_and_equivalence(study, model_dir, offloaded) -> None:
    result = scenario_result(study, model_dir, offloaded)
    text = "\n".join(scenario_sections(study, [("kv_offload", "tiny_llama", result)]))
    assert "## Scenario: KV offload to a host cache" in text
    assert "Expected (original benchmark): With a device pool that holds one request" in text
    assert "`tiny_llama` on cpu: **met**" in text and "reused 0 blocks without a host cache" in text
    assert "Not equivalent:" in text and "reused_blocks" in text
    assert "claim: hf: returning prompts (round 2): host cache on against host cache off" in text
    assert "control, should not differ: hf: first-round prompts (round 1)" in text
    assert "transformers continuous batching, same pool" in text
    assert "TensorRT-LLM: not measured in this study (`scenarios.kv_offload.backends` lists only `hf`)" in text
    assert "nan" not in text.split("| model ")[1]  # a tier that reused nothing is shown as missing, not nan


# --- the TensorRT-LLM variant (stand-in: orchestration and names only, never a number) ---------------------


def test_kv_totals_come_from_the_newest_iteration_that_reports_them() -> None:
    stats = [{"iter": 1, "kvCacheStats": {"reusedBlocks": 3, "missedBlocks": 9}}, {"iter": 2},
             {"iter": 3, "kvCacheStats": {"reusedBlocks": 34, "missedBlocks": 10}}, {"iter": 4}]
    assert kv_cache_totals(stats, NO_KV_CACHE_STATS) == KvCacheCounters(34, 10, None)
    seen = KvCacheCounters(34, 10, None)
    assert kv_cache_totals([], seen) is seen  # no iteration since: the cumulative counters have not moved
    assert kv_cache_totals([], NO_KV_CACHE_STATS).null_reason.startswith("get_stats_async() returned no iteration")


class CountingBackend:
    """A backend whose cumulative counters grow by what each request of A,B,A,B would reuse and miss; it
    checks the variant's differencing, never TensorRT-LLM."""

    def __init__(self, per_request: list[tuple[int, int]]):
        self.per_request, self.totals, self.served = per_request, KvCacheCounters(100, 50, None), 0

    def read_kv_totals(self) -> KvCacheCounters:
        return self.totals

    def generate(self, input_ids: list[list[int]], output_len: int) -> Generation:
        reused, missed = self.per_request[self.served]
        self.served += 1
        self.totals = KvCacheCounters(self.totals.reused_blocks + reused, self.totals.missed_blocks + missed, None)
        return Generation(output_ids=[list(range(output_len))], start=1.0, token_times=[[1.25] * output_len])


def test_each_request_counts_the_difference_of_the_cumulative_counters_around_it(prompts) -> None:
    served = serve_trtllm_sequence(CountingBackend([(0, 5), (0, 5), (4, 1), (5, 0)]), SETTINGS, prompts)
    assert [(s.reused_blocks, s.prompt_blocks) for s in served] == [(0, 5), (0, 5), (4, 5), (5, 5)]
    assert all(s.ttft_s == 0.25 and s.reused_from is None and s.prefilled_tokens is None for s in served)


@pytest.mark.parametrize("version", ["1.2.1", "1.3.0rc4"])
def test_trtllm_variant_passes_contract_names_and_reports_null_counters_with_a_reason(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, version: str, study, backend
) -> None:
    log = install_stand_in(monkeypatch, version)
    settings = SETTINGS.model_copy(update={"warmup_iterations": 1, "backends": ["trtllm_pytorch"]})
    twice = Policy(rule=ONCE.rule.model_copy(update={"max_requests": 2 * len(SEQUENCE)}), max_cv=1.0)
    run = kv_offload_trtllm_arms(settings, TrtllmPytorchSettings(), model_dir, "float32", "cuda", twice)
    result = run_kv_offload(settings, model_dir, "float32", "cuda", backend.model_config.vocab_size, 0, twice, run)
    assert [(r.backend, r.host_cache, r.prompt, r.round) for r in result.rows] == [
        ("trtllm_pytorch", h, name, round_) for h in (False, True) for name, round_ in SEQUENCE]
    assert result.paged_reused_tokens is None and result.identical_outputs
    for row in result.rows:
        assert len(row.output_ids) == SETTINGS.output_len  # the stand-in streams exactly max_tokens ids
        assert row.reused_blocks is None and row.hit_rate is None
        assert "get_stats_async() returned no iteration with kvCacheStats" in row.null_reason
    assert not result.expectation.met and "reuse counters null" in result.expectation.observed
    configs = log.keywords("tensorrt_llm.llmapi.KvCacheConfig")
    assert [(c["enable_block_reuse"], c["max_tokens"], c["host_cache_size"] > 0) for c in configs] == [
        (True, 48, False), (True, 48, True)]
    assert all(("iteration_stats_interval" in c) == version.startswith("1.3") for c in configs)
    assert all(c["enable_iter_perf_stats"] is True for c in log.keywords("tensorrt_llm.LLM"))
    timed = [result.stopping[f"trtllm_pytorch, host cache {arm}"].iterations for arm in ("off", "on")]
    assert timed == [2, 2] and all(len(r.ttft_ms.samples[0]) == 2 for r in result.rows)  # each arm its own loop
    sequences = settings.warmup_iterations + timed[0]
    assert log.keywords("tensorrt_llm.LLM.get_stats_async") == [{"timeout": 2}] * (2 * sequences * len(SEQUENCE) * 2)
    prompts_sent = [c["inputs"] for c in log.keywords("tensorrt_llm.LLM.generate_async")]
    assert len({tuple(p) for p in prompts_sent}) == 2 * sequences  # a fresh A,B pair per sequence, same in both arms
    band = band_for(version, "pytorch")
    for callee, objects_of in callee_objects("tensorrt_llm.LLM", "pytorch").items():
        for kwargs in log.keywords(callee):
            assert unlisted(kwargs, band, objects_of, release=FEATURES["kv_host_cache"].first) == [], callee
    with pytest.raises(ResultError, match="never from a stand-in"):  # a stand-in's rows can never enter a result
        write_scenario_result(Path(tempfile.mkdtemp()) / "kv_offload.json", scenario_result(study, model_dir, result))


def test_preflight_refuses_the_variant_without_tensorrt_llm() -> None:
    study = validate_params(composed("study=scenarios_cpu", "scenarios.kv_offload.backends=[hf,trtllm_pytorch]"))
    assert trtllm_features(study) == ["kv_host_cache"]
    with pytest.raises(TrtllmUnavailable, match=r"scenarios.kv_offload.backends.*not installed here"):
        preflight([], None, "scenarios_cpu", trtllm_features(study))
