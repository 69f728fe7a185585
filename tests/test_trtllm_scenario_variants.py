"""The TensorRT-LLM variants of the ngram and kv_persist scenarios, without TensorRT-LLM.

The prefix-hash block store is the connector's own logic and runs for real on CPU with plain tensors.
The connector classes and the n-gram backend run over the STAND-IN `tensorrt_llm` (tests/trtllm_stand_in.py),
which records calls and measures nothing: these tests check orchestration, never TensorRT-LLM behaviour.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from helpers.repository import REPO_ROOT, trtllm_features
from helpers.trtllm_contract import NGRAM_DECODING, callee_objects, unlisted
from helpers.trtllm_stand_in import CONNECTOR_FINGERPRINT, connector_instance, connector_step, import_connector, install_stand_in

from inference_study.backends.trtllm.backend import TrtllmPytorch, speculative_counters
from inference_study.compose import compose_yaml
from inference_study.config import ConfigError, validate_params
from inference_study.tensor_files import CacheRefused
from inference_study.trtllm.calls import ngram_llm_extras
from inference_study.trtllm.prefix_store import PrefixBlockStore
from inference_study.trtllm.settings import TrtllmPytorchSettings
from inference_study.trtllm.version import TrtllmUnavailable, band_for, preflight

REPO = REPO_ROOT
BLOCK = 4  # tokens per block
PROMPT = list(range(100, 114))  # 14 tokens: three full blocks and a partial one


def block(seed: int) -> torch.Tensor:
    return torch.randn(2, 3, BLOCK, 5, generator=torch.Generator().manual_seed(seed))


# The block store: save and load by prefix hash.
def test_blocks_round_trip_by_prefix_hash_across_store_instances(tmp_path: Path) -> None:
    writer = PrefixBlockStore(tmp_path, BLOCK, "model-a")
    hashes = writer.block_hashes(PROMPT)
    assert len(hashes) == 3 and len(set(hashes)) == 3
    saved = {h: block(i) for i, h in enumerate(hashes)}
    sizes = [writer.save(h, t) for h, t in saved.items()]
    assert all(size > 0 for size in sizes)

    reader = PrefixBlockStore(tmp_path, BLOCK, "model-a")  # a new process, same configuration
    assert reader.matched_blocks(PROMPT) == hashes
    for h, tensor in saved.items():
        assert torch.equal(reader.load(h), tensor)


def test_a_block_names_its_whole_prefix_and_configuration(tmp_path: Path) -> None:
    store = PrefixBlockStore(tmp_path, BLOCK, "model-a")
    for h in store.block_hashes(PROMPT):
        store.save(h, block(0))
    changed_first = [999, *PROMPT[1:]]
    assert store.matched_blocks(changed_first) == []  # block 2's tokens are equal, its prefix is not
    assert store.matched_blocks(PROMPT[:4] + [999] + PROMPT[5:]) == store.block_hashes(PROMPT)[:1]
    assert PrefixBlockStore(tmp_path, BLOCK, "model-b").matched_blocks(PROMPT) == []
    assert PrefixBlockStore(tmp_path, 2 * BLOCK, "model-a").matched_blocks(PROMPT) == []


def test_the_last_prompt_token_is_never_matched(tmp_path: Path) -> None:
    store = PrefixBlockStore(tmp_path, BLOCK, "m")
    exact = PROMPT[:12]  # three full blocks exactly
    for h in store.block_hashes(exact):
        store.save(h, block(1))
    assert len(store.matched_blocks(exact)) == 2
    assert len(store.matched_blocks(exact + [1])) == 3


def test_damaged_or_foreign_block_files_are_refused(tmp_path: Path) -> None:
    store = PrefixBlockStore(tmp_path, BLOCK, "m")
    first, second, third = store.block_hashes(PROMPT)
    store.save(first, block(1))
    store.save(second, block(2))
    data = store.path(first).read_bytes()
    store.path(first).write_bytes(data[: len(data) // 2])
    with pytest.raises(CacheRefused, match="truncated or corrupt"):
        store.load(first)
    store.path(second).rename(store.path(third))  # a valid file under another block's name
    with pytest.raises(CacheRefused, match="not block"):
        store.load(third)


def _step(scheduler, worker, block_ids: list[int], device_matched: int = 0) -> tuple[int, object]:
    """One new request through the connector as the stand-in's 1.x executor drives it."""
    return connector_step(scheduler, worker, PROMPT, block_ids, device_matched)


def test_connector_saves_then_a_new_instance_loads_the_same_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector, log = import_connector(monkeypatch, "1.2.1")
    cold_pool = torch.randn(8, 2, 3, BLOCK, 5, generator=torch.Generator().manual_seed(0))
    matched, plan = _step(*connector_instance(connector, tmp_path, monkeypatch, BLOCK, cold_pool), block_ids=[5, 2, 7, 1])
    assert matched == 0 and plan.load == [] and [b for _, b in plan.save] == [5, 2, 7]

    warm_pool = torch.zeros_like(cold_pool)
    matched, plan = _step(*connector_instance(connector, tmp_path, monkeypatch, BLOCK, warm_pool), block_ids=[3, 0, 6, 4])
    assert matched == 3 * BLOCK and [b for _, b in plan.load] == [3, 0, 6] and plan.save == []
    for cold, warm in ((5, 3), (2, 0), (7, 6)):
        assert torch.equal(warm_pool[warm], cold_pool[cold])
    assert not warm_pool[4].any()  # the partial block is computed, never loaded
    bases = [name.rpartition(".")[2] for name, _ in log.calls]
    assert bases == ["KvCacheConnectorScheduler", "KvCacheConnectorWorker"] * 2


def test_connector_recomputes_from_a_damaged_block_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    connector, _ = import_connector(monkeypatch, "1.2.1")
    pool = torch.randn(8, 2, 3, BLOCK, 5, generator=torch.Generator().manual_seed(1))
    _step(*connector_instance(connector, tmp_path, monkeypatch, BLOCK, pool), block_ids=[0, 1, 2, 3])
    second = PrefixBlockStore(tmp_path, BLOCK, CONNECTOR_FINGERPRINT).block_hashes(PROMPT)[1]
    (tmp_path / f"{second}.safetensors").write_bytes(b"not a tensor file")
    matched, plan = _step(*connector_instance(connector, tmp_path, monkeypatch, BLOCK, torch.zeros_like(pool)), [4, 5, 6, 7])
    assert matched == BLOCK and [b for _, b in plan.load] == [4]


# n-gram speculation on the trtllm_pytorch backend (stand-in).
@pytest.mark.parametrize("version", ["1.2.1", "1.3.0rc4"])
def test_ngram_backend_passes_the_decoding_config_and_reads_counters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    log = install_stand_in(monkeypatch, version)
    (tmp_path / "config.json").write_text(json.dumps({"eos_token_id": 2}))
    backend = TrtllmPytorch(TrtllmPytorchSettings(), tmp_path, "float16", "cuda").with_extras(ngram_llm_extras(4, 2))
    backend.load()
    generation = backend.generate([[5, 6, 7]], 3)
    backend.release()

    assert len(generation.output_ids[0]) == 3
    (ngram_kwargs,) = log.keywords(NGRAM_DECODING)
    assert ngram_kwargs["max_draft_len"] == 4 and ngram_kwargs["max_matching_ngram_size"] == 2
    (llm_kwargs,) = log.keywords("tensorrt_llm.LLM")
    assert llm_kwargs["speculative_config"].kwargs == ngram_kwargs
    band = band_for(version, "pytorch")
    for callee, objects_of in callee_objects("tensorrt_llm.LLM", "pytorch").items():
        for kwargs in log.keywords(callee):
            assert unlisted(kwargs, band, objects_of) == [], callee
    assert all(s["return_perf_metrics"] is True for s in log.keywords("tensorrt_llm.SamplingParams"))
    assert [(c.proposed, c.accepted, c.null_reason) for c in backend.speculative] == [(0, 0, None)]


def test_counters_are_null_with_a_reason_where_the_version_reports_none() -> None:
    request = SimpleNamespace(outputs=[SimpleNamespace(token_ids=[1], request_perf_metrics=None)])
    counters = speculative_counters(request)
    assert counters.proposed is None and counters.accepted is None
    assert "reports no request_perf_metrics.speculative_decoding" in counters.null_reason


# Enabling a variant: the preflight stops the study before any work.
def _features(*overrides: str) -> list[str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        return trtllm_features(validate_params(yaml.safe_load(compose_yaml(["scenario=cpu", *overrides]))))


def test_variants_are_off_by_default_and_switched_on_per_scenario() -> None:
    assert _features() == []
    assert _features("scenarios.kv_offload.backends=[hf,trtllm_pytorch]") == ["kv_host_cache"]
    assert _features("scenarios.kv_persist.backends=[trtllm_pytorch]", "sweep.scenarios=[ngram]") == []


@pytest.mark.parametrize("scenario", ["ngram", "kv_persist"])
def test_a_variant_no_runner_measures_is_refused_before_any_work_naming_the_key(scenario: str) -> None:
    """Enabled, it would be preflighted and then never run: the study would measure only hf and say nothing."""
    with pytest.raises(ConfigError) as refused:
        _features(f"scenarios.{scenario}.backends=[hf,trtllm_pytorch]")
    assert str(refused.value) == (f"params.yaml: scenarios.{scenario}.backends: trtllm_pytorch is built, but the "
                                  f"{scenario} runner measures only hf so far (docs/tensorrt-llm.md); allowed: [hf]")


def test_preflight_refuses_a_variant_without_tensorrt_llm_or_on_a_version_without_it() -> None:
    with pytest.raises(TrtllmUnavailable, match=r"NGramDecodingConfig.*not installed here.*pip install tensorrt_llm"):
        preflight([], None, "scenarios_cpu", ["ngram"])
    with pytest.raises(TrtllmUnavailable, match=r"1.1 <= version < 1.3"):
        preflight([], "1.0.0", "s", ["kv_connector"])
    with pytest.raises(TrtllmUnavailable, match="outside what the API contract covers"):
        preflight([], "0.21.0", "s", ["ngram"])
    preflight([], "1.2.1", "s", ["ngram", "kv_connector"])
