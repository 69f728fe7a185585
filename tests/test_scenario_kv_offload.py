"""KV offload (seeds 004, 001 §1) for real on the tiny random Llama on CPU: with a device pool of one
request, returning prompts reuse nothing without a host cache and all their full blocks with it, the
greedy outputs are identical either way, and bad pool sizes fail before any work, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import composed, scenario_result

from inference_study.config import StudyConfig, validate_params
from inference_study.scenarios.common import greedy_run
from inference_study.scenarios.kv_offload import (
    SEQUENCE,
    measure,
    paged_reference,
    pool,
    run_kv_offload,
    serve_sequence,
)
from inference_study.scenarios.report import scenario_sections
from inference_study.scenarios.settings import KvOffloadSettings
from inference_study.workload import synthetic_input_ids

REPO = Path(__file__).parents[1]
# 40-token prompts, 8 new tokens, blocks of 8: 4 full blocks reusable (the last prompt token is always
# prefilled), and a 48-token device pool holds exactly one request.
SETTINGS = KvOffloadSettings(
    models=["tiny_llama"],
    warmup_iterations=0,
    iterations=1,
    prompt_len=40,
    output_len=8,
    tokens_per_block=8,
    gpu_pool_tokens=48,
    host_cache_tokens=1024,
)


@pytest.fixture(scope="module")
def study() -> StudyConfig:
    return validate_params(composed("study=scenarios_cpu"))



@pytest.fixture(scope="module")
def prompts(backend) -> dict[str, list[int]]:
    a, b = synthetic_input_ids(2, SETTINGS.prompt_len, backend.model.config.vocab_size, 0)
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
        greedy_run(backend, prompts[name], SETTINGS.output_len, past_key_values=found.cache)
        cache.keep(prompts[name][:32], found.cache)
    assert list(cache.tiers["gpu"]) == [tuple(prompts["B"][:32])]
    assert list(cache.tiers["host"]) == [tuple(prompts["A"][:32])]
    assert cache.tiers["host"][tuple(prompts["A"][:32])].get_seq_length() == 32
    tight = pool(backend, SETTINGS.model_copy(update={"host_cache_tokens": 31}), host_cache=True)
    for name in ("A", "B"):
        found = tight.lookup(prompts[name], SETTINGS.output_len)
        greedy_run(backend, prompts[name], SETTINGS.output_len, past_key_values=found.cache)
        tight.keep(prompts[name][:32], found.cache)
    assert not tight.tiers["host"]  # A's 32 tokens do not fit a 31-token host tier: dropped


def test_outputs_identical_with_and_without_host_cache_and_expectation_met(backend) -> None:
    record = measure(backend, SETTINGS, backend.model.config.vocab_size, 0)
    assert [(r.host_cache, r.prompt, r.round) for r in record.rows] == [
        (h, name, round_) for h in (False, True) for name, round_ in SEQUENCE
    ]
    assert record.identical_outputs and record.expectation.met
    for row in record.rows:
        same_prompt = [r.output_ids for r in record.rows if r.prompt == row.prompt]
        assert all(ids == row.output_ids for ids in same_prompt)
    assert [r.hit_rate for r in record.rows if r.round == 2] == [0.0, 0.0, 1.0, 1.0]


def test_transformers_paged_pool_of_one_request_reuses_nothing_and_of_two_reuses_the_returning(
    model_dir, backend, prompts
) -> None:
    vocab = backend.model.config.vocab_size
    record = run_kv_offload(SETTINGS, model_dir, "float32", "cpu", vocab, 0)
    assert record.paged_reused_tokens == [0, 0, 0, 0] and record.paged_identical_outputs
    assert record.expectation.met
    roomy = SETTINGS.model_copy(update={"gpu_pool_tokens": 96})
    reused, outputs = paged_reference(roomy, model_dir, "float32", "cpu", prompts)
    assert reused[:2] == [0, 0] and all(n > 0 for n in reused[2:])
    assert outputs[0] == outputs[2] and outputs[1] == outputs[3]
    assert all(len(ids) == SETTINGS.output_len for ids in outputs)


def test_report_section_states_expectation_outcome_and_equivalence(study, model_dir, backend) -> None:
    record = measure(backend, SETTINGS, backend.model.config.vocab_size, 0)
    result = scenario_result(study, model_dir, record)
    text = "\n".join(scenario_sections(study, [("kv_offload", "tiny_llama", result)]))
    assert "## Scenario: KV offload to a host cache" in text
    assert "Expected (seed): With a device pool that holds one request" in text
    assert "`tiny_llama` on cpu: **met**" in text and "reused 0 blocks without a host cache" in text
    assert "Not equivalent:" in text and "reused_blocks" in text and "returning-prompt TTFT" in text
    assert "transformers continuous batching, same pool" in text
