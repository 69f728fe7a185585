"""Every flag, keyword and attribute the TensorRT-LLM code passes is recorded in the API contract, per version band.

The names come from the same functions the stages and backends call (`trtllm.calls`), so a name
added to the code without a contract record fails here, for the band that lacks it.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import get_args

import pytest
import yaml
from helpers.trtllm_contract import (
    BUILD_CLI, CLASS_IDENTITY, COMPLETION_OUTPUT, CONNECTOR_DATA, CONNECTOR_SCHEDULER, CONNECTOR_WORKER,
    CONVERT_CLI, GENERATE_ASYNC, ITERATION_STATS, KV_CONNECTOR, LLM_METHODS, NGRAM_DECODING, OBJECTS, PERF_METRICS, REQUEST_OUTPUT,
    NEWEST_FULL_RECORD, SPECULATIVE_UNION, entry, llm_keywords, objects, unlisted,
)
from helpers.trtllm_stand_in import import_connector

from helpers.repository import REPO_ROOT
from inference_study.compose import compose_yaml
from inference_study.config import Dtype
from inference_study.trtllm.calls import (
    COMPLETION_OUTPUT_READS, CONVERT_ARCH_DIRS, CONVERT_SCRIPT, KV_CACHE_CONFIG, KV_CACHE_CONFIG_READS,
    KV_CACHE_COUNTER_READS, KV_CACHE_METRICS_GROUP, KV_CACHE_STATS_KEY, KV_CACHE_STATS_READS,
    KV_CONNECTOR_BASE_MODULE, KV_CONNECTOR_LLM_ARGS_READS, KV_CONNECTOR_SCHEDULER_BASE, KV_CONNECTOR_WORKER_BASE,
    PERF_METRICS_READ, REQUEST_DATA_READS, REQUEST_OUTPUT_READS, SAMPLING_PARAMS, SCHEDULER_OUTPUT_READS,
    SPECULATIVE_COUNTER_READS, SPECULATIVE_METRICS_GROUP, STATS_METHOD, block_reuse_kv_cache_kwargs, build_argv,
    convert_argv, engine_llm_kwargs, generate_async_kwargs, get_stats_kwargs, iteration_stats_kv_cache_kwargs,
    iteration_stats_llm_kwargs, kv_cache_kwargs, kv_connector_llm_extras, ngram_llm_extras, pytorch_llm_kwargs,
    sampling_kwargs,
)
from inference_study.trtllm.settings import EngineProfile, KvCacheRuntime, TrtllmPytorchSettings
from inference_study.trtllm.version import BANDS, FEATURES, Band, TrtllmUnavailable, require_feature

REPO = REPO_ROOT
ENGINE_BANDS = [band for band in BANDS if band.engine_llm]
PYTORCH_BANDS = [band for band in BANDS if band.pytorch_llm]


def _profiles() -> dict[str, EngineProfile]:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        raw = yaml.safe_load(compose_yaml([]))["trtllm"]["profiles"]
    return {name: EngineProfile.model_validate(profile) for name, profile in raw.items()}


PROFILES = _profiles()


def flags(argv: list[str]) -> dict[str, str]:
    """`--flag value` pairs of an argv after the program (every flag we pass takes one value)."""
    pairs = argv[argv.index(next(a for a in argv if a.startswith("--"))):]
    assert len(pairs) % 2 == 0 and all(flag.startswith("--") for flag in pairs[::2]), pairs
    return dict(zip(pairs[::2], pairs[1::2]))


def runtime_names(band: Band, flow: str) -> dict[str, tuple[list[str], object]]:
    """What the backends pass and read at run time, with the contract objects that must record it."""
    llm_kwargs = (engine_llm_kwargs(Path("engine"), object()) if flow == "engine"
                  else pytorch_llm_kwargs(Path("hf"), "float16", TrtllmPytorchSettings(), object()))
    return {
        "LLM class": ([band.llm_class_path(flow)], objects(CLASS_IDENTITY)),
        "LLM keywords": (list(llm_kwargs), llm_keywords(flow)),
        "KvCacheConfig": (list(kv_cache_kwargs(KvCacheRuntime())), objects(KV_CACHE_CONFIG)),
        "SamplingParams": (list(sampling_kwargs(4, 2, 0)), objects(SAMPLING_PARAMS)),
        "generate_async": (list(generate_async_kwargs([5, 6], object())), objects(GENERATE_ASYNC)),
        "RequestOutput reads": (list(REQUEST_OUTPUT_READS), objects(REQUEST_OUTPUT)),
        "CompletionOutput reads": (list(COMPLETION_OUTPUT_READS), objects(COMPLETION_OUTPUT)),
        "shutdown": ([band.shutdown], objects(LLM_METHODS)),
    }


def test_the_imported_classes_are_the_contract_objects() -> None:
    assert KV_CACHE_CONFIG in OBJECTS and SAMPLING_PARAMS in OBJECTS


@pytest.mark.parametrize("band", ENGINE_BANDS, ids=lambda band: band.name)
def test_engine_runtime_names_are_in_the_contract(band: Band) -> None:
    problems = {what: unlisted(names, band, where) for what, (names, where) in runtime_names(band, "engine").items()}
    assert not any(problems.values()), problems


@pytest.mark.parametrize("band", PYTORCH_BANDS, ids=lambda band: band.name)
def test_pytorch_backend_runtime_names_are_in_the_contract(band: Band) -> None:
    problems = {what: unlisted(names, band, where) for what, (names, where) in runtime_names(band, "pytorch").items()}
    assert not any(problems.values()), problems


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("band", ENGINE_BANDS, ids=lambda band: band.name)
def test_build_command_of_each_profile(band: Band, profile: str) -> None:
    settings = PROFILES[profile]
    argv = build_argv(Path("ckpt"), Path("engine"), settings)
    assert argv[0] == "trtllm-build"
    passed = flags(argv)
    assert unlisted(passed, band, objects(BUILD_CLI)) == []
    assert passed == {
        "--checkpoint_dir": "ckpt", "--output_dir": "engine",
        "--max_batch_size": str(settings.max_batch_size), "--max_input_len": str(settings.max_input_len),
        "--max_seq_len": str(settings.max_seq_len), "--max_num_tokens": str(settings.max_num_tokens),
        "--gemm_plugin": settings.gemm_plugin, "--gpt_attention_plugin": settings.gpt_attention_plugin,
        "--context_fmha": "enable" if settings.context_fmha else "disable",
        "--kv_cache_type": "paged" if settings.paged_kv_cache else "continuous",
        "--use_paged_context_fmha": "enable" if settings.use_paged_context_fmha else "disable",
    }


def test_profiles_cover_latency_throughput_and_seed_000s_contiguous_arm() -> None:
    assert PROFILES["latency"].max_batch_size == 1
    assert flags(build_argv(Path("c"), Path("e"), PROFILES["throughput"]))["--kv_cache_type"] == "paged"
    assert flags(build_argv(Path("c"), Path("e"), PROFILES["throughput_contiguous"]))["--kv_cache_type"] == "continuous"


@pytest.mark.parametrize("architecture", sorted(CONVERT_ARCH_DIRS))
@pytest.mark.parametrize("band", ENGINE_BANDS, ids=lambda band: band.name)
def test_convert_command_and_script_location(band: Band, architecture: str) -> None:
    argv = convert_argv(Path("/x/convert_checkpoint.py"), Path("hf"), Path("ckpt"), "float16", 2)
    assert argv[1] == "/x/convert_checkpoint.py"
    passed = flags(argv)
    assert passed == {"--model_dir": "hf", "--output_dir": "ckpt", "--dtype": "float16", "--tp_size": "2"}
    assert unlisted(passed, band, objects(CONVERT_CLI[architecture])) == []
    searched = {f"examples/{folder.format(arch=CONVERT_ARCH_DIRS[architecture])}/{CONVERT_SCRIPT}"
                for folder in band.convert_dirs}
    for label in band.contract_labels:
        assert entry(CONVERT_CLI[architecture], label)["path"] in searched


@pytest.mark.parametrize("architecture", sorted(CONVERT_ARCH_DIRS))
def test_every_model_dtype_is_a_recorded_convert_dtype(architecture: str) -> None:
    """The model's dtype is passed to --dtype; the contract records its choices at 0.15.0 (not at 1.2.x)."""
    assert set(get_args(Dtype)) <= set(entry(CONVERT_CLI[architecture], "0.15.0")["choices"]["--dtype"])


def test_a_name_the_contract_does_not_record_is_caught() -> None:
    """The check is not vacuous: names from before 0.13 or from other libraries are refused."""
    one_x = next(band for band in BANDS if band.name == "1.0-1.2")
    assert unlisted(["max_new_tokens", "max_tokens"], one_x, objects(SAMPLING_PARAMS)) == ["max_new_tokens"]
    assert unlisted(["--max_output_len"], one_x, objects(BUILD_CLI)) == ["--max_output_len"]
    assert unlisted(["build_config"], one_x, llm_keywords("pytorch")) == ["build_config"]


def test_bands_use_only_recorded_labels_and_do_not_overlap() -> None:
    labels = {label for versions in OBJECTS.values() for label in versions}
    assert all(set(band.contract_labels) <= labels for band in BANDS)
    assert all(earlier.high == later.low for earlier, later in zip(BANDS, BANDS[1:]))


# The scenario variants: n-gram speculation and the KV cache connector, on the PyTorch flow.
def lowest_running(band: Band, feature: str) -> str:
    """The band's first version that may take `feature`."""
    major, minor = max(band.low, FEATURES[feature].first)
    return f"{major}.{minor}"


def feature_bands(feature: str) -> list[Band]:
    """The PyTorch bands where `feature` runs (the preflight refuses it on the others)."""
    runs = []
    for band in PYTORCH_BANDS:
        try:
            require_feature(lowest_running(band, feature), feature)
        except TrtllmUnavailable:
            continue
        runs.append(band)
    return runs


def group_reads(obj: str, group: str, names: tuple[str, ...], band: Band) -> list[str]:
    """Names read from one group of a contract entry whose `names` are grouped (missing at some label)."""
    return sorted({name for label in band.contract_labels for name in names
                   if name not in entry(obj, label)["names"].get(group, [])})


def test_feature_bands_follow_the_contract() -> None:
    """n-gram: every PyTorch band (1.2.x and main-2026 record it; 0.15.0 has none); the connector: 1.1 to 1.2."""
    assert [band.name for band in feature_bands("ngram")] == [band.name for band in PYTORCH_BANDS]
    assert [band.name for band in feature_bands("kv_connector")] == ["1.0-1.2"]
    assert entry(NGRAM_DECODING, "0.15.0")["names"] == []
    with pytest.raises(TrtllmUnavailable, match=r"1.1 <= version < 1.3"):
        require_feature("1.0.0", "kv_connector")
    with pytest.raises(TrtllmUnavailable, match=r"1.1 <= version < 1.3"):
        require_feature("1.3.0rc4", "kv_connector")
    with pytest.raises(TrtllmUnavailable, match="outside what the API contract covers"):
        require_feature("0.21.0", "ngram")


@pytest.mark.parametrize("band", feature_bands("ngram"), ids=lambda band: band.name)
def test_ngram_variant_names_are_in_the_contract(band: Band) -> None:
    ((keyword, (config_class, config_kwargs)),) = ngram_llm_extras(4, 3).items()
    assert config_class == NGRAM_DECODING and config_kwargs["max_draft_len"] == 4
    problems = {
        "LLM keyword": unlisted([keyword], band, llm_keywords("pytorch")),
        "speculative_config union": unlisted([config_class.rpartition(".")[2]], band, objects(SPECULATIVE_UNION)),
        "NGramDecodingConfig": unlisted(config_kwargs, band, objects(NGRAM_DECODING)),
        "SamplingParams": unlisted(sampling_kwargs(4, 2, 0, perf_metrics=True), band, objects(SAMPLING_PARAMS)),
        "CompletionOutput reads": unlisted([PERF_METRICS_READ], band, objects(COMPLETION_OUTPUT)),
        "speculative counters": group_reads(PERF_METRICS, SPECULATIVE_METRICS_GROUP, SPECULATIVE_COUNTER_READS, band),
    }
    assert not any(problems.values()), problems


# Recorded methods our connector does not override: the base classes implement them (NVIDIA's example
# overrides none of them either); a real run on 1.1/1.2 is what confirms it.
LEFT_TO_THE_BASE_CLASS = {"bind_connector_meta", "get_connector_meta", "register_forward_pass_callable"}


def _parameters(recorded_method: str) -> list[str]:
    """`get_finished(finished_gen_req_ids, started_loading_req_ids)` → its parameter names."""
    inside = re.search(r"\((.*)\)", recorded_method).group(1)
    return [name.strip() for name in inside.split(",") if name.strip()]


@pytest.mark.parametrize("band", feature_bands("kv_connector"), ids=lambda band: band.name)
def test_kv_connector_variant_names_and_methods_are_in_the_contract(
    band: Band, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector, _ = import_connector(monkeypatch, lowest_running(band, "kv_connector"))
    ((keyword, (config_class, config_kwargs)),) = kv_connector_llm_extras().items()
    assert config_class == KV_CONNECTOR
    problems = {
        "LLM keyword": unlisted([keyword], band, llm_keywords("pytorch")),
        "KvCacheConnectorConfig": unlisted(config_kwargs, band, objects(KV_CONNECTOR)),
        "llm_args reads": unlisted(KV_CONNECTOR_LLM_ARGS_READS, band, llm_keywords("pytorch")),
        "KvCacheConfig reads": unlisted(KV_CACHE_CONFIG_READS, band, objects(KV_CACHE_CONFIG)),
        "SchedulerOutput reads": group_reads(CONNECTOR_DATA, "SchedulerOutput", SCHEDULER_OUTPUT_READS, band),
        "RequestData reads": group_reads(CONNECTOR_DATA, "RequestData", REQUEST_DATA_READS, band),
    }
    assert not any(problems.values()), problems
    # TensorRT-LLM instantiates the classes the config names, from the module it names.
    assert config_kwargs["connector_module"] == connector.__name__
    for label in band.contract_labels:
        for recorded_class, ours, base in (
            (CONNECTOR_SCHEDULER, config_kwargs["connector_scheduler_class"], KV_CONNECTOR_SCHEDULER_BASE),
            (CONNECTOR_WORKER, config_kwargs["connector_worker_class"], KV_CONNECTOR_WORKER_BASE),
        ):
            found = entry(recorded_class, label)
            assert found["path"].replace("/", ".").removesuffix(".py") == KV_CONNECTOR_BASE_MODULE
            cls = getattr(connector, ours)
            assert cls.__mro__[1].__name__ == base
            ours_defined = [method for method in found["names"] if method.split("(")[0] in vars(cls)]
            left_to_base = {method.split("(")[0] for method in found["names"]} - set(vars(cls))
            assert left_to_base <= LEFT_TO_THE_BASE_CLASS, left_to_base
            for method in ours_defined:
                params = list(inspect.signature(vars(cls)[method.split("(")[0]]).parameters)[1:]
                assert params == _parameters(method), (ours, method)


def test_a_misspelt_connector_read_is_caught() -> None:
    one_x = next(band for band in BANDS if band.name == "1.0-1.2")
    assert group_reads(CONNECTOR_DATA, "RequestData", ("request_id", "block_hashes"), one_x) == ["block_hashes"]
    assert group_reads(PERF_METRICS, SPECULATIVE_METRICS_GROUP, ("accepted_tokens",), one_x) == ["accepted_tokens"]


# The multiround variant (the multi-round chat benchmark): block reuse and a host cache per arm through KvCacheConfig.
def test_multiround_variant_runs_on_every_pytorch_band_and_needs_1x_kv_cache_config() -> None:
    assert [band.name for band in feature_bands("kv_host_cache")] == [band.name for band in PYTORCH_BANDS]
    kwargs = block_reuse_kv_cache_kwargs(True, 5120, 32, 1 << 30, 0.9)
    assert unlisted(kwargs, BANDS[0], objects(KV_CACHE_CONFIG)) == ["tokens_per_block"]  # 0.15: a build setting
    with pytest.raises(TrtllmUnavailable, match="outside what the API contract covers"):
        require_feature("0.15.0", "kv_host_cache")


@pytest.mark.parametrize("band", feature_bands("kv_host_cache"), ids=lambda band: band.name)
@pytest.mark.parametrize("block_reuse, host_bytes", [(False, 0), (True, 0), (True, 1 << 30)],
                         ids=["no_reuse", "reuse_gpu_only", "reuse_host_offload"])
def test_multiround_variant_names_are_in_the_contract(band: Band, block_reuse: bool, host_bytes: int) -> None:
    kwargs = block_reuse_kv_cache_kwargs(block_reuse, 5120, 32, host_bytes, 0.9)
    problems = {
        "LLM keywords": unlisted(pytorch_llm_kwargs(Path("hf"), "float16", TrtllmPytorchSettings(), object()), band,
                                 llm_keywords("pytorch")),
        "KvCacheConfig": unlisted(kwargs, band, objects(KV_CACHE_CONFIG)),
        "SamplingParams": unlisted(sampling_kwargs(4, 2, 0, perf_metrics=True), band, objects(SAMPLING_PARAMS)),
        "CompletionOutput reads": unlisted([PERF_METRICS_READ], band, objects(COMPLETION_OUTPUT)),
        "kv cache counters": group_reads(PERF_METRICS, KV_CACHE_METRICS_GROUP, KV_CACHE_COUNTER_READS, band),
    }
    assert not any(problems.values()), problems


def method_parameters(method: str, band: Band) -> set[str]:
    """Parameter names of an `LLM` method recorded under every label of the band; a label that records the bare
    name only (main-2026) is read at its newest record with a signature, as other objects are."""
    found = []
    for label in band.contract_labels:
        signatures = [name for label_read in (label, NEWEST_FULL_RECORD.get(label)) if label_read
                      for name in entry(LLM_METHODS, label_read)["names"] if name.startswith(f"{method}(")]
        found.append({parameter.split("=")[0] for parameter in _parameters(signatures[0])} if signatures else set())
    return set.intersection(*found)


# The kv_offload variant (the KV host-offload benchmarks): the multiround KvCacheConfig with block reuse on, and
# reuse counted from the iteration stats (LLM.get_stats()), which the PyTorch backend fills only when asked.
@pytest.mark.parametrize("band", feature_bands("kv_host_cache"), ids=lambda band: band.name)
@pytest.mark.parametrize("host_bytes", [0, 1 << 30], ids=["no_host_cache", "host_cache"])
def test_kv_offload_variant_names_are_in_the_contract(band: Band, host_bytes: int) -> None:
    kv_kwargs = block_reuse_kv_cache_kwargs(True, 1088, 32, host_bytes, 0.9) | iteration_stats_kv_cache_kwargs(
        band.low)
    llm_kwargs = pytorch_llm_kwargs(Path("hf"), "float16", TrtllmPytorchSettings(), object()) | (
        iteration_stats_llm_kwargs())
    problems = {
        "LLM keywords": unlisted(llm_kwargs, band, llm_keywords("pytorch")),
        "KvCacheConfig": unlisted(kv_kwargs, band, objects(KV_CACHE_CONFIG)),
        "LLM method": unlisted([STATS_METHOD], band, objects(LLM_METHODS)),
        "get_stats keywords": sorted(set(get_stats_kwargs()) - method_parameters(STATS_METHOD, band)),
        "iteration dict": unlisted([KV_CACHE_STATS_KEY], band, objects(ITERATION_STATS)),
        "kvCacheStats reads": sorted({name for label in band.contract_labels for name in KV_CACHE_STATS_READS
                                      if name not in entry(ITERATION_STATS, label)[KV_CACHE_STATS_KEY]}),
    }
    assert not any(problems.values()), problems


def test_every_iteration_carries_kv_stats_where_main_samples_them() -> None:
    """main-2026 samples the KV counters every 10 iterations by default; the variant asks for every one there,
    and passes nothing on 1.x, where `iteration_stats_interval` is not a KvCacheConfig field."""
    one_x, main = (next(band for band in PYTORCH_BANDS if band.name.startswith(prefix)) for prefix in ("1.0", "1.3"))
    assert iteration_stats_kv_cache_kwargs(one_x.low) == {}
    assert iteration_stats_kv_cache_kwargs(main.low) == {"iteration_stats_interval": 1}
    assert unlisted(["iteration_stats_interval"], one_x, objects(KV_CACHE_CONFIG)) == ["iteration_stats_interval"]
