"""Multi-round chat (the multi-round chat benchmark) for real on the tiny random Llama on CPU: greedy outputs are identical with and
without KV reuse and host offload, token counts are exact, reuse counters move the expected way (none without
reuse; every history's blocks while they fit; the host tier keeps reusing past the device budget), and bad
parameters fail before any work, naming the key. The TensorRT-LLM variant runs over the stand-in only."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from helpers.repository import composed, scenario_result, trtllm_features
from helpers.trtllm_contract import callee_objects, unlisted
from helpers.trtllm_stand_in import install_stand_in

from inference_study.config import ConfigError, StudyConfig, validate_params
from inference_study.environment import collect_environment
from inference_study.harness import model_info
from inference_study.report.scenarios import scenario_sections
from inference_study.results import ResultError, ScenarioResult, write_scenario_result
from inference_study.scenarios.multiround.run import (
    fits_on_device,
    measure_hf,
    record,
    serve_hf,
    workload,
)
from inference_study.scenarios.multiround.settings import MultiroundSettings
from inference_study.scenarios.multiround.trtllm import arm_kv_cache_kwargs, trtllm_arms
from inference_study.scenarios.timing import Policy
from inference_study.stopping import StoppingRule
from inference_study.trtllm.settings import TrtllmPytorchSettings
from inference_study.trtllm.version import FEATURES, TrtllmUnavailable, band_for, preflight

# 3 users, contexts of 40, 3 rounds of 8 new + 8 generated: the longest sequence is 40 + 3 x 16 = 88 tokens.
# A 176-token device budget holds two users' whole histories, so U=1 fits and U=3 does not.
SETTINGS = MultiroundSettings(
    warmup_iterations=0,
    users=[1, 3],
    rounds=3,
    context_len=40,
    new_tokens_per_round=8,
    output_len=8,
    tokens_per_block=8,
    gpu_kv_tokens=176,
    host_cache_tokens=1024,
)
# One timed iteration per user count (its three arms), then max_requests: these tests check counters and outputs.
ONCE = Policy(rule=StoppingRule(min_requests=1, max_requests=1, min_seconds=0, max_seconds=60, target_half_width=0.5),
              max_cv=1.0)



@pytest.fixture(scope="module")
def work(backend):
    return workload(SETTINGS, backend.model_config.vocab_size, 0)


@pytest.fixture(scope="module")
def measured(backend, work):
    return measure_hf(backend, SETTINGS, work, ONCE.rule)


# --- parameters ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"users": [0]}, "greater than 0"),
        ({"users": [2, 2]}, "unique"),
        ({"tokens_per_block": 64, "gpu_kv_tokens": 32}, "less than one block"),
        ({"gpu_kv_tokens": 80}, "longest request"),
    ],
)
def test_bad_settings_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MultiroundSettings(**(SETTINGS.model_dump() | changes))


def test_a_context_longer_than_the_model_allows_fails_naming_the_key() -> None:
    with pytest.raises(ConfigError) as error:
        validate_params(composed(
            "study=scenarios_cpu", "scenarios.multiround.context_len=1000", "scenarios.multiround.gpu_kv_tokens=4096"
        ))
    assert "scenarios.multiround: longest request 1048 tokens exceeds models.tiny_llama.max_seq_len=1024" in str(
        error.value
    )


def test_the_device_budget_holds_one_user_but_not_three() -> None:
    assert SETTINGS.longest_sequence() == 88
    assert fits_on_device(SETTINGS, 1) and fits_on_device(SETTINGS, 2) and not fits_on_device(SETTINGS, 3)


# --- the arms on the tiny model --------------------------------------------------------------------------


def test_rounds_grow_each_history_by_new_and_generated_tokens(backend, work) -> None:
    served = serve_hf(backend, SETTINGS, "no_reuse", 3, work)
    assert [(r.round, r.user) for r in served.requests] == [(n, u) for n in range(3) for u in range(3)]
    for r in served.requests:
        assert r.prompt_len == 40 + r.round * 16 + 8
        assert len(r.output_ids) == 8
        assert r.prefilled_tokens == r.prompt_len and r.reused_tokens == 0
    assert served.e2e_s > 0


def test_reuse_while_it_fits_prefills_only_the_new_tokens(backend, work) -> None:
    served = serve_hf(backend, SETTINGS, "reuse_gpu_only", 1, work)
    # Round 1 reuses the precomputed 40-token context; later rounds the full blocks of prompt + output (the
    # last generated token is never fed, so 56 - 1 = 55 -> 48, then 72 - 1 -> 64).
    assert [r.reused_tokens for r in served.requests] == [40, 48, 64]
    assert [r.prefilled_tokens for r in served.requests] == [8, 64 - 48, 80 - 64]
    assert all(r.reused_from == "gpu" for r in served.requests)


def test_outputs_identical_across_arms_and_user_counts_with_exact_counts(measured) -> None:
    rows, identical, _, stopping = measured
    assert {name: (s.reason, s.iterations, s.requests) for name, s in stopping.items()} == {
        f"hf, U={u}": ("max_requests", 1, 3 * u * 3) for u in (1, 3)}  # one pass of each arm: 3 x U x R requests
    assert identical
    assert [(r.users, r.arm) for r in rows] == [
        (u, arm) for u in (1, 3) for arm in ("no_reuse", "reuse_gpu_only", "reuse_host_offload")
    ]
    for row in rows:
        assert row.identical_to_no_reuse is True
        assert row.requests == row.users * 3 and row.output_tokens == row.requests * 8
        assert row.prompt_tokens == row.users * sum(40 + n * 16 + 8 for n in range(3))
        assert row.prefilled_tokens == row.prompt_tokens - row.reused_tokens
        assert row.hit_rate == row.reused_tokens / row.prompt_tokens
        assert len(row.round_ttft_p50_ms) == len(row.round_ttft_p99_ms) == 3
        assert 0 < row.ttft_p50_ms.value <= row.ttft_p99_ms.value and row.e2e_s.value > 0
        assert row.ttft_p50_ms.repeats == row.e2e_s.repeats == 1


def test_reuse_counters_move_the_expected_way(measured) -> None:
    rows, _, _, _ = measured
    rate = {(r.users, r.arm): r.hit_rate for r in rows}
    assert rate[(1, "no_reuse")] == rate[(3, "no_reuse")] == 0
    assert rate[(1, "reuse_gpu_only")] == rate[(1, "reuse_host_offload")] > 0
    # past the device budget the GPU-only arm loses histories; the host tier brings them back
    assert rate[(3, "reuse_host_offload")] > rate[(3, "reuse_gpu_only")]
    assert rate[(3, "reuse_host_offload")] == rate[(1, "reuse_host_offload")]
    host = next(r for r in rows if (r.users, r.arm) == (3, "reuse_host_offload"))
    assert host.reused_from_host_tokens > 0
    assert all(r.reused_from_host_tokens == 0 for r in rows if r.arm != "reuse_host_offload")


def test_expectation_is_met_and_stated(measured) -> None:
    rows, identical, divergences, stopping = measured
    measured_record = record(SETTINGS, rows, identical, divergences, stopping, ONCE)
    outcome = measured_record.expectation
    assert outcome.met
    assert "at U=1 (fits)" in outcome.observed and "at U=3 (exceeds the 176-token device budget)" in outcome.observed
    assert "TTFT" not in outcome.observed  # met is judged on counters and outputs; timings are claims
    assert [(c.what, c.subject, c.baseline) for c in measured_record.claims] == [
        ("hf, U=1 (every history fits on the device)", "reuse_gpu_only", "no_reuse"),
        ("hf, U=3 (histories exceed the device budget)", "reuse_host_offload", "reuse_gpu_only")]
    gpu = next(r for r in rows if (r.arm, r.users) == ("reuse_gpu_only", 1))
    assert [c.what for c in measured_record.controls] == [
        f"hf, U=1 (fits: both reuse arms reused {gpu.reused_tokens} tokens, all from the device)"]
    no_cliff = SETTINGS.model_copy(update={"gpu_kv_tokens": 1024})
    assert not record(no_cliff, rows, identical, divergences, stopping, ONCE).expectation.met


def test_report_section_states_expectation_outcome_and_equivalence(model_dir, measured) -> None:
    study: StudyConfig = validate_params(composed("study=scenarios_cpu"))
    result = scenario_result(study, model_dir, record(SETTINGS, *measured, ONCE))
    text = "\n".join(scenario_sections(study, [("multiround", "tiny_llama", result)]))
    assert "## Scenario: Multi-round chat" in text and "Expected (original benchmark): With KV reuse" in text
    assert "`tiny_llama` on cpu: **met**" in text and "hit_rate" in text and "r3_p50_ms" in text
    assert "prefix caches kept per user" in text and "Not equivalent:" in text
    assert "TensorRT-LLM: not measured in this study" in text


# --- the TensorRT-LLM variant (stand-in: orchestration and names only, never a number) ---------------------


def test_arm_kv_cache_configs() -> None:
    none, gpu, host = (arm_kv_cache_kwargs(SETTINGS, arm, 1000, 0.9)
                       for arm in ("no_reuse", "reuse_gpu_only", "reuse_host_offload"))
    assert none["enable_block_reuse"] is False and gpu["enable_block_reuse"] is host["enable_block_reuse"] is True
    assert none["host_cache_size"] == gpu["host_cache_size"] == 0 and host["host_cache_size"] == 1024 * 1000
    assert {c["max_tokens"] for c in (none, gpu, host)} == {176}
    assert {c["tokens_per_block"] for c in (none, gpu, host)} == {8}


@pytest.mark.parametrize("version", ["1.2.1", "1.3.0rc4"])
def test_trtllm_variant_passes_contract_names_and_reports_null_counters_with_a_reason(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, version: str, work
) -> None:
    log = install_stand_in(monkeypatch, version)
    run = trtllm_arms(SETTINGS, TrtllmPytorchSettings(), model_dir, "float32", "cuda", ONCE)
    rows, identical, stopping = run(work)
    assert set(stopping) == {"trtllm_pytorch, U=1", "trtllm_pytorch, U=3"}
    assert identical and [(r.backend, r.users) for r in rows][:3] == [("trtllm_pytorch", 1)] * 3
    for row in rows:
        assert row.output_tokens == row.requests * 8  # the stand-in streams exactly max_tokens ids
        assert row.hit_rate is None and row.reused_tokens is None
        assert "reports no request_perf_metrics.kv_cache_metrics" in row.null_reason
    configs = log.keywords("tensorrt_llm.llmapi.KvCacheConfig")
    assert [c["enable_block_reuse"] for c in configs] == [False, True, True] * 2
    band = band_for(version, "pytorch")
    for callee, objects_of in callee_objects("tensorrt_llm.LLM", "pytorch").items():
        for kwargs in log.keywords(callee):
            assert unlisted(kwargs, band, objects_of, release=FEATURES["kv_host_cache"].first) == [], callee
    llm = log.keywords("tensorrt_llm.LLM")[0]
    assert llm["max_seq_len"] >= SETTINGS.longest_sequence()
    # a stand-in's rows can never enter a result
    study = validate_params(composed("study=scenarios_cpu"))
    environment = collect_environment()
    with pytest.raises(ResultError, match="never from a stand-in"):
        write_scenario_result(Path(tempfile.mkdtemp()) / "multiround.json", ScenarioResult(
            scenario="multiround", status="ok", config_hash="x", device="cuda",
            model=model_info("tiny_llama", study.models["tiny_llama"], model_dir, True), environment=environment,
            environment_fingerprint=environment.fingerprint,
            record=record(SETTINGS, rows, identical, [], stopping, ONCE),
            null_reasons={},
        ))


def test_preflight_refuses_the_variant_without_tensorrt_llm() -> None:
    study = validate_params(composed("study=scenarios_cpu", "scenarios.multiround.backends=[hf,trtllm_pytorch]"))
    assert trtllm_features(study) == ["kv_host_cache"]
    with pytest.raises(TrtllmUnavailable, match=r"host_cache_size.*not installed here"):
        preflight([], None, "scenarios_cpu", trtllm_features(study))
    with pytest.raises(TrtllmUnavailable, match="outside what the API contract covers"):
        preflight([], "0.15.0", "s", ["kv_host_cache"])
    preflight([], "1.2.1", "s", ["kv_host_cache"])
