"""The scenarios run for real on the tiny random Llama on CPU, with their invariants asserted: n-gram
speculation is exactly greedy with exact draft counters; a saved prefix KV cache is used by a new
instance, which prefills only the new tokens, and a wrong or damaged file is refused and recomputed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers.repository import REPO_ROOT, composed, scenario_result
from transformers import DynamicCache

from inference_study import registry
from inference_study.config import ConfigError, StudyConfig, scenario_result_path, validate_params
from inference_study.plan import scenario_units
from inference_study.report.scenarios import scenario_sections
from inference_study.results import (
    ResultError,
    read_scenario_result,
    write_scenario_result,
)
from inference_study.scenarios.kv_persist.run import (
    CacheRefused,
    InstanceSpec,
    cache_path,
    compute_and_save,
    fingerprint,
    load_and_generate,
    load_prefix_cache,
    run_kv_persist,
    save_prefix_cache,
)
from inference_study.scenarios.kv_persist.settings import KvPersistSettings
from inference_study.scenarios.ngram.run import ngram_overlap, run_ngram
from inference_study.scenarios.ngram.settings import NgramSettings
from inference_study.scenarios.timing import Policy
from inference_study.stopping import StoppingRule
from inference_study.workload import synthetic_input_ids

REPO = REPO_ROOT
PREFIX, SUFFIX, OUTPUT = 24, 4, 8
# One timed iteration per loop (it stops at max_requests): these tests check counters and outputs, not timings.
ONCE = StoppingRule(min_requests=1, max_requests=1, min_seconds=0, max_seconds=60, target_half_width=0.5)
ONCE_POLICY = Policy(rule=ONCE, max_cv=1.0)


@pytest.fixture(scope="module")
def study() -> StudyConfig:
    return validate_params(composed("study=scenarios_cpu"))



# --- configuration -----------------------------------------------------------------------------------


def test_scenarios_are_off_by_default_and_on_in_their_preset(study: StudyConfig) -> None:
    assert scenario_units(validate_params(composed())) == []
    assert {(unit.scenario, unit.model_name) for unit in scenario_units(study)} == {
        ("ngram", "tiny_llama"), ("kv_persist", "tiny_llama"), ("kv_offload", "tiny_llama"),
        ("multiround", "tiny_llama"),
    }


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("scenarios.ngram.draft_lens=[0,4]", "scenarios.ngram.draft_lens.0"),
        ("scenarios.ngram.ngram_sizes=[2,2]", "scenarios.ngram.ngram_sizes"),
        ("scenarios.ngram.workloads=[editing]", "scenarios.ngram.workloads.0"),
        ("scenarios.kv_persist.suffix_len=0", "scenarios.kv_persist.suffix_len"),
        ("sweep.scenario_models=[gpt5]", "sweep"),
        ("sweep.scenarios=[chat]", "sweep.scenarios"),
        ("scenarios.ngram.backends=[vllm]", "scenarios.ngram.backends"),
        ("scenarios.kv_persist.prefix_lens=[1020]", "scenarios.kv_persist"),
        ("+scenarios.ngram.typo=1", "scenarios.ngram.typo"),
        ("scenarios.kv_offload.gpu_pool_tokens=8", "scenarios.kv_offload.gpu_pool_tokens"),
        ("scenarios.kv_offload.tokens_per_block=2", "scenarios.kv_offload.tokens_per_block"),
        ("scenarios.kv_offload.tokens_per_block=96", "scenarios.kv_offload.tokens_per_block"),
        ("scenarios.kv_offload.prompt_len=1000", "scenarios.kv_offload"),
        ("scenarios.kv_offload.host_cache_tokens=0", "scenarios.kv_offload.host_cache_tokens"),
        ("scenarios.multiround.users=[0,3]", "scenarios.multiround.users.0"),
        ("scenarios.multiround.users=[-1]", "scenarios.multiround.users.0"),
        ("scenarios.multiround.users=[]", "scenarios.multiround.users"),
        ("scenarios.multiround.gpu_kv_tokens=4", "scenarios.multiround.gpu_kv_tokens"),
        ("scenarios.multiround.rounds=0", "scenarios.multiround.rounds"),
        ("scenarios.multiround.context_len=1000", "scenarios.multiround"),
        ("+scenarios.ngram.iterations=3", "scenarios.ngram.iterations"),  # the old fixed count: read only
        (("+scenarios.kv_offload.stopping={min_requests:5,max_requests:2,min_seconds:0,max_seconds:1,"
          "target_half_width:0.1}"), "scenarios.kv_offload.stopping"),
        ("+scenarios.multiround.stopping={min_requests:1}", "scenarios.multiround.stopping.max_requests"),
    ],
)
def test_bad_scenario_values_fail_before_any_work_naming_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate_params(composed("study=scenarios_cpu", override))
    assert key in str(error.value)


def test_every_scenario_registers_settings_a_record_a_runner_and_a_report_section() -> None:
    specs = registry.scenarios()
    assert set(specs) == {"ngram", "kv_persist", "kv_offload", "multiround"}
    for name, spec in specs.items():
        assert spec.name == name and spec.record.model_fields["scenario"].default == name
        assert callable(registry.load(spec.runner)) and callable(registry.load(spec.report))
        assert set(StudyConfig.model_fields["scenarios"].annotation.model_fields) == set(specs)


# --- n-gram speculation ------------------------------------------------------------------------------


def test_ngram_overlap_counts_prompt_and_context_repeats() -> None:
    # output n-grams (n=2): (4,3) (3,4) (4,3) (3,4); the prompt holds (3,4); the context also the earlier (4,3)
    assert ngram_overlap([1, 2, 3, 4], [3, 4, 3, 4], 2) == (0.5, 0.75)
    assert ngram_overlap([1, 2], [5, 6], 1) == (0.0, 0.0)


@pytest.fixture(scope="module")
def ngram_record(backend):
    settings = NgramSettings(prompt_len=32, output_len=24, draft_lens=[4], ngram_sizes=[1, 2], warmup_iterations=0)
    return run_ngram(backend, settings, backend.model_config.vocab_size, 0, ONCE_POLICY)


def test_prompt_lookup_output_is_greedy_with_exact_draft_counters(ngram_record, backend) -> None:
    assert [(r.workload, r.draft_len, r.ngram_size) for r in ngram_record.rows] == [
        ("high_overlap", 4, 1),
        ("high_overlap", 4, 2),
        ("low_overlap", 4, 1),
        ("low_overlap", 4, 2),
    ]
    for row in ngram_record.rows:
        assert row.identical_to_greedy
        # every forward pass verifies the drafts and yields the accepted ones plus one token of its own
        assert row.accepted_tokens + row.forward_passes == 24
        assert 0 <= row.accepted_tokens <= row.proposed_tokens
        assert row.tokens_per_forward == pytest.approx(24 / row.forward_passes)
    assert all(len(w.greedy_output_ids) == 24 for w in ngram_record.workloads)


def test_replayed_drafts_are_what_generates_own_candidate_generator_proposed(backend) -> None:
    """The scenario counts proposed drafts by replaying transformers' public prompt-lookup generator; here the
    generator `generate` builds is wrapped (a private hook, in this test only) to check the replay per run."""
    from inference_study.scenarios.ngram.run import proposed_drafts, workload_prompt

    settings = NgramSettings(prompt_len=32, output_len=24, warmup_iterations=0)
    prompt = workload_prompt(backend, "high_overlap", settings, backend.model_config.vocab_size, 0)
    model, recorded = backend.model, []
    build = model._get_candidate_generator

    def recording_build(*args, **kwargs):
        generator = build(*args, **kwargs)
        propose = generator.get_candidates

        def recording(input_ids, *a, **kw):
            candidates, logits = propose(input_ids, *a, **kw)
            recorded.append(candidates.shape[1] - input_ids.shape[1])
            return candidates, logits

        generator.get_candidates = recording
        return generator

    model._get_candidate_generator = recording_build
    try:
        for draft_len, ngram_size in [(2, 1), (4, 2), (8, 3)]:
            recorded.clear()
            run = backend.greedy(prompt, 24, prompt_lookup_num_tokens=draft_len, max_matching_ngram_size=ngram_size)
            assert proposed_drafts(prompt, run, draft_len, ngram_size) == sum(recorded) > 0
    finally:
        del model._get_candidate_generator


def test_high_overlap_workload_repeats_the_prompt_and_drafts_get_accepted(ngram_record) -> None:
    high, low = ngram_record.workloads
    assert (high.name, low.name) == ("high_overlap", "low_overlap")
    assert high.prompt_overlap > low.prompt_overlap
    high_rows = [r for r in ngram_record.rows if r.workload == "high_overlap"]
    assert all(r.accepted_tokens > 0 and r.forward_passes < 24 for r in high_rows)


def test_plain_greedy_uses_one_forward_per_token(backend) -> None:
    prompt = synthetic_input_ids(1, 16, backend.model_config.vocab_size, 0)[0]
    run = backend.greedy(prompt, 6)
    assert run.forward_lengths == [16, 1, 1, 1, 1, 1] and run.step_sizes == [1] * 6


# --- persistent prefix KV ----------------------------------------------------------------------------


@pytest.fixture
def spec(model_dir: Path, tmp_path: Path, backend) -> InstanceSpec:
    prompt = synthetic_input_ids(1, PREFIX + SUFFIX, backend.model_config.vocab_size, 0)[0]
    return InstanceSpec(
        model_dir=model_dir,
        dtype="float32",
        device="cpu",
        cache_dir=tmp_path,
        prefix_lens=[PREFIX],
        prompts=[prompt],
        output_len=OUTPUT,
        warmup_iterations=0,
        stopping=ONCE,
    )


def test_warm_instance_prefills_only_the_new_tokens_and_matches(spec: InstanceSpec, backend) -> None:
    prompt = spec.prompts[0]
    cold = compute_and_save(backend, spec, PREFIX, prompt)
    warm = load_and_generate(backend, spec, PREFIX, prompt)
    assert cold.prefilled_tokens == PREFIX + SUFFIX and warm.prefilled_tokens == SUFFIX
    assert warm.cache_used and warm.refused_reason is None and warm.load_s.value > 0
    assert cold.stopping.reason == warm.stopping.reason == "max_requests"
    # instance 2 times a full prefill beside each warm request (the control), as instance 1 prefills
    assert warm.control_ttft_s is not None and cold.control_ttft_s is None
    assert warm.output_ids == cold.output_ids and len(warm.output_ids) == OUTPUT
    config = backend.model_config
    kv_bytes = 2 * config.num_hidden_layers * config.num_key_value_heads * PREFIX * config.head_dim * 4
    assert cold.cache_bytes == cache_path(spec, PREFIX).stat().st_size > kv_bytes


def test_cache_of_the_whole_prompt_keeps_its_last_token_uncached(spec: InstanceSpec, backend) -> None:
    prompt = spec.prompts[0]
    cold = compute_and_save(backend, spec, len(prompt), prompt)
    warm = load_and_generate(backend, spec, len(prompt), prompt)
    assert warm.cache_used and warm.prefilled_tokens == 1
    assert warm.output_ids == cold.output_ids


def _prefix_cache(backend, ids: list[int]) -> DynamicCache:
    cache = DynamicCache(config=backend.model_config)
    with torch.inference_mode():
        backend.model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True)
    return cache


def _other_model_dir(model_dir: Path, tmp_path: Path) -> Path:
    other = tmp_path / "other_model"
    shutil.copytree(model_dir, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "rope_theta": 500000.0}))
    return other


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _corrupt_header(path: Path) -> None:
    path.write_bytes(b"\xff" * 16 + path.read_bytes()[16:])


def _corrupt_tensors(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("another model", "another model, dtype or configuration"),
        ("another dtype", "another model, dtype or configuration"),
        ("another attention configuration", "another model, dtype or configuration"),
        ("another prompt", "not a prefix of this prompt"),
        ("truncated", "truncated or corrupt"),
        ("corrupt header", "truncated or corrupt"),
        ("corrupt tensors", "checksum"),
    ],
)
def test_a_wrong_or_damaged_cache_is_refused_and_the_prefix_recomputed(
    case: str, reason: str, spec: InstanceSpec, backend, model_dir: Path, tmp_path: Path
) -> None:
    prompt = spec.prompts[0]
    cold = compute_and_save(backend, spec, PREFIX, prompt)
    path = cache_path(spec, PREFIX)
    prefix = prompt[:PREFIX]
    rewrites = {
        "another model": lambda: save_prefix_cache(
            path,
            _prefix_cache(backend, prefix),
            prefix,
            fingerprint(_other_model_dir(model_dir, tmp_path), "float32", "sdpa"),
        ),
        "another dtype": lambda: save_prefix_cache(
            path, _prefix_cache(backend, prefix), prefix, fingerprint(model_dir, "bfloat16", "sdpa")
        ),
        "another attention configuration": lambda: save_prefix_cache(
            path, _prefix_cache(backend, prefix), prefix, fingerprint(model_dir, "float32", "eager")
        ),
        "another prompt": lambda: save_prefix_cache(
            path,
            _prefix_cache(backend, prefix[::-1]),
            prefix[::-1],
            fingerprint(model_dir, "float32", "sdpa"),
        ),
        "truncated": lambda: _truncate(path),
        "corrupt header": lambda: _corrupt_header(path),
        "corrupt tensors": lambda: _corrupt_tensors(path),
    }
    rewrites[case]()
    with pytest.raises(CacheRefused, match=reason):
        load_prefix_cache(path, prompt, fingerprint(model_dir, "float32", "sdpa"), backend)
    warm = load_and_generate(backend, spec, PREFIX, prompt)
    assert not warm.cache_used and reason in warm.refused_reason and warm.load_s is None
    assert warm.prefilled_tokens == PREFIX + SUFFIX
    assert warm.output_ids == cold.output_ids


def test_instances_run_as_separate_processes(model_dir: Path) -> None:
    settings = KvPersistSettings(prefix_lens=[PREFIX], suffix_len=SUFFIX, output_len=OUTPUT, warmup_iterations=0)
    record = run_kv_persist(settings, model_dir, "float32", "cpu", 1024, 0, ONCE_POLICY)
    (row,) = record.rows
    assert row.cache_used and row.identical_output
    assert (row.prefilled_tokens_cold, row.prefilled_tokens_warm) == (PREFIX + SUFFIX, SUFFIX)
    assert row.cache_bytes > 0 and row.load_ms.value > 0
    assert record.expectation.met
    assert set(record.stopping) == {f"instance 1, prefix {PREFIX}", f"instance 2, prefix {PREFIX}"}
    assert [c.subject for c in record.claims] == ["warm (instance 2, prefix loaded)"]
    assert [c.subject for c in record.controls] == ["cold in instance 2"]


# --- results and report ------------------------------------------------------------------------------


def test_scenario_results_round_trip_and_bad_files_are_refused(
    study, model_dir, ngram_record, tmp_path
) -> None:
    path = scenario_result_path(tmp_path, "ngram", "tiny_llama")
    result = scenario_result(study, model_dir, ngram_record)
    write_scenario_result(path, result)
    assert read_scenario_result(path) == result
    raw = json.loads(path.read_text())
    path.write_text(json.dumps({**raw, "scenario": "kv_persist"}))
    with pytest.raises(ResultError, match="record of scenario 'ngram' in a 'kv_persist' result"):
        read_scenario_result(path)
    path.write_text(json.dumps({**raw, "record": {**raw["record"], "record_version": 99}}))
    with pytest.raises(ResultError, match="record_version"):
        read_scenario_result(path)
    path.write_text(path.read_text()[:100])
    with pytest.raises(ResultError, match="corrupt or truncated"):
        read_scenario_result(path)


def test_report_section_states_the_expectation_and_the_overlap_beside_acceptance(
    study, model_dir, ngram_record
) -> None:
    loaded = [
        ("ngram", "tiny_llama", scenario_result(study, model_dir, ngram_record)),
        ("kv_persist", "tiny_llama", None),
    ]
    text = "\n".join(scenario_sections(study, loaded))
    assert "## Scenario: n-gram speculative decoding" in text and "Expected (original benchmark): Output identical" in text
    assert "`tiny_llama` on cpu: **" in text and "workload_overlap" in text and "acceptance_rate" in text
    assert "Random weights" in text
    assert (
        "## Scenario: Persistent prefix KV cache" in text and "`tiny_llama`: not run (no result file)" in text
    )
