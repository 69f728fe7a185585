"""Every flag, keyword and attribute the TensorRT-LLM code passes is recorded in the API contract, per version band.

The names come from the same functions the stages and backends call (`trtllm.calls`), so a name
added to the code without a contract record fails here, for the band that lacks it.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import get_args

import pytest
import yaml
from helpers.trtllm_contract import (
    BUILD_CLI, CLASS_IDENTITY, COMPLETION_OUTPUT, CONNECTOR_DATA, CONNECTOR_SCHEDULER, CONNECTOR_WORKER,
    CONVERT_CLI, GENERATE_ASYNC, ITERATION_STATS, KV_CONNECTOR, LLM_ARGS, LLM_INIT, LLM_METHODS, NGRAM_DECODING, OBJECTS,
    PERF_METRICS, REQUEST_OUTPUT, NEWEST_FULL_RECORD, SPECULATIVE_UNION, entry, llm_keywords, low_end_labels, objects,
    recorded, unlisted,
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
    llm_kwargs = (engine_llm_kwargs(Path("engine"), 1, object()) if flow == "engine"
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


# Recorded concrete methods our connector does not override: the base classes implement them (NVIDIA's example
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
        "LLM keyword": unlisted([keyword], band, llm_keywords("pytorch"), first_release(band, "kv_connector")),
        "KvCacheConnectorConfig": unlisted(config_kwargs, band, objects(KV_CONNECTOR)),
        "llm_args reads": unlisted(KV_CONNECTOR_LLM_ARGS_READS, band, llm_keywords("pytorch"),
                                   first_release(band, "kv_connector")),
        "KvCacheConfig reads": unlisted(KV_CACHE_CONFIG_READS, band, objects(KV_CACHE_CONFIG),
                                        first_release(band, "kv_connector")),
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
            recorded_methods = [*found["names"], *found.get("concrete", [])]
            ours_defined = [method for method in recorded_methods if method.split("(")[0] in vars(cls)]
            abstract_missing = {method.split("(")[0] for method in found["names"]} - set(vars(cls))
            assert not abstract_missing, (ours, abstract_missing)
            left_to_base = {method.split("(")[0] for method in recorded_methods} - set(vars(cls))
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


def first_release(band: Band, feature: str) -> tuple[int, int]:
    return max(band.low, FEATURES[feature].first)


def kv_host_cache_bands() -> list:
    """The kv_host_cache bands, each marked as a known break where the contract does not record `tokens_per_block`
    (which block_reuse_kv_cache_kwargs passes) at the first release the gate lets the variant run on."""
    params = []
    for band in feature_bands("kv_host_cache"):
        release = first_release(band, "kv_host_cache")
        breaks = unlisted(["tokens_per_block"], band, objects(KV_CACHE_CONFIG), release) != []
        marks = [pytest.mark.xfail(
            strict=True,
            reason=f"src/inference_study/trtllm/calls.py block_reuse_kv_cache_kwargs passes KvCacheConfig("
                   f"tokens_per_block=...) and src/inference_study/trtllm/version.py FEATURES['kv_host_cache'] lets it "
                   f"run from {release[0]}.{release[1]} in band {band.name}, where the contract does not record "
                   f"tokens_per_block (KvCacheConfig 1.0.0 record; PR #5911 exposed it in July 2025)")] if breaks else []
        params.append(pytest.param(band, marks=marks, id=band.name))
    return params


@pytest.mark.parametrize("band", kv_host_cache_bands())
@pytest.mark.parametrize("block_reuse, host_bytes", [(False, 0), (True, 0), (True, 1 << 30)],
                         ids=["no_reuse", "reuse_gpu_only", "reuse_host_offload"])
def test_multiround_variant_names_are_in_the_contract(band: Band, block_reuse: bool, host_bytes: int) -> None:
    kwargs = block_reuse_kv_cache_kwargs(block_reuse, 5120, 32, host_bytes, 0.9)
    release = first_release(band, "kv_host_cache")
    problems = {
        "LLM keywords": unlisted(pytorch_llm_kwargs(Path("hf"), "float16", TrtllmPytorchSettings(), object()), band,
                                 llm_keywords("pytorch"), release),
        "KvCacheConfig": unlisted(kwargs, band, objects(KV_CACHE_CONFIG), release),
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
@pytest.mark.parametrize("band", kv_host_cache_bands())
@pytest.mark.parametrize("host_bytes", [0, 1 << 30], ids=["no_host_cache", "host_cache"])
def test_kv_offload_variant_names_are_in_the_contract(band: Band, host_bytes: int) -> None:
    kv_kwargs = block_reuse_kv_cache_kwargs(True, 1088, 32, host_bytes, 0.9) | iteration_stats_kv_cache_kwargs(
        band.low)
    llm_kwargs = pytorch_llm_kwargs(Path("hf"), "float16", TrtllmPytorchSettings(), object()) | (
        iteration_stats_llm_kwargs())
    release = first_release(band, "kv_host_cache")
    problems = {
        "LLM keywords": unlisted(llm_kwargs, band, llm_keywords("pytorch"), release),
        "KvCacheConfig": unlisted(kv_kwargs, band, objects(KV_CACHE_CONFIG), release),
        "LLM method": unlisted([STATS_METHOD], band, objects(LLM_METHODS), release),
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


# The corrections of the contract (open issue, items 4 and 6): each one is pinned here, with where it was read.
HEX40 = re.compile(r"^[0-9a-f]{40}$")
TAG = re.compile(r"^(v\d+\.\d+\.(\d+|x)|main)$")
ABSTRACT_OBJECTS = (CONNECTOR_SCHEDULER, CONNECTOR_WORKER)
KV_HOST_CACHE_FIRST = FEATURES["kv_host_cache"].first


def _entries():
    return [(obj, label, found) for obj, labels in OBJECTS.items() for label, found in labels.items()]


@pytest.mark.parametrize("obj, label, found", _entries(), ids=[f"{obj}@{label}" for obj, label, _ in _entries()])
def test_every_contract_entry_names_its_source(obj: str, label: str, found: dict) -> None:
    source = found["source"]
    assert source["repo"] == "NVIDIA/TensorRT-LLM" and source["relation"]
    assert source["commit"] is None or HEX40.match(source["commit"]), source
    assert TAG.match(source["tag"]), source
    assert source["tag_commit"] is None or HEX40.match(source["tag_commit"]), source
    assert HEX40.match(source["commit"] or "") or source["tag"], source
    if found.get("verified") is True:  # a fully verified entry was read from a named commit
        assert source["commit"], (obj, label)


def test_release_tags_carry_their_backend_submodule_commits() -> None:
    tag_commits = {found["source"]["tag"]: found["source"]["tag_commit"] for _, _, found in _entries()}
    assert tag_commits["v0.15.0"] == "8f91cff22e7cc1feeb61f6edb58cd3bc91333fde"
    assert tag_commits["v1.0.0"] == "ae8270b713446948246f16fadf4e2a32e35d0f62"
    assert tag_commits["v0.12.0"] == "28fb9aacaa5a05494635194a9cbb264da9a744bd"


def test_015_llm_args_lack_the_016_names() -> None:
    names = recorded(LLM_ARGS[("0.15.0", "engine")], "0.15.0")
    for name in ("enable_chunked_prefill", "guided_decoding_backend", "context_parallel_size",
                 "enable_processes_for_single_gpu"):
        assert name not in names
    assert {"kv_cache_config", "build_config", "use_runtime_defaults", "skip_tokenizer_init"} <= names
    source = entry(LLM_ARGS[("0.15.0", "engine")], "0.15.0")["source"]
    assert source["commit"] == "06255cb759835a9797b656aa5d1dc8f7e75fdca6"  # 0.15.0.dev2024111200, not 0.16.0.dev
    one_five = next(band for band in BANDS if band.name == "0.15")
    assert unlisted(["enable_chunked_prefill"], one_five, llm_keywords("engine")) == ["enable_chunked_prefill"]
    assert entry(LLM_INIT, "0.15.0")["source"]["commit"] == "b7868dd1bd1186840e3755b97ea3d3a73ddd76c5"


def test_015_build_evidence_is_labelled_as_read_after_016() -> None:
    for obj in (BUILD_CLI, "tensorrt_llm.llmapi.BuildConfig"):
        found = entry(obj, "0.15.0")
        assert found["source"]["commit"] == "008b2b8d23af95e4e19fa6f354f9c5f6349b2bfc"
        assert "later than the v0.16.0 tag" in found["source"]["relation"]
        assert found["verified"] is not True
        assert "~0.14" not in json.dumps(found)


def test_1x_trtllm_build_has_no_auto_parallel_flags() -> None:
    one_x = entry(BUILD_CLI, "1.2.x")
    for flag in ("--auto_parallel", "--gpus_per_node", "--cluster_key"):
        assert flag not in one_x["names"]
        assert flag in entry(BUILD_CLI, "0.15.0")["names"]
    assert one_x["source"]["commit"] == "65f1d1536e18aea3380e6e270e00895a709333eb"
    one_x_band = next(band for band in BANDS if band.name == "1.0-1.2")
    assert unlisted(["--auto_parallel"], one_x_band, objects(BUILD_CLI)) == ["--auto_parallel"]


@pytest.mark.parametrize("architecture", sorted(CONVERT_ARCH_DIRS))
def test_1x_convert_lists_have_cp_size_and_no_embedding_sharing(architecture: str) -> None:
    one_x = entry(CONVERT_CLI[architecture], "1.2.x")
    assert "--cp_size" in one_x["names"]
    assert "--use_embedding_sharing" not in one_x["names"]
    assert HEX40.match(one_x["source"]["commit"])
    assert one_x["source"]["path"] == one_x["path"]


def test_015_llama_convert_list_is_the_pre_tag_one() -> None:
    found = entry(CONVERT_CLI["llama"], "0.15.0")
    assert found["source"]["commit"] == "06255cb759835a9797b656aa5d1dc8f7e75fdca6"
    assert "--cp_size" not in found["names"] and "--use_embedding_sharing" in found["names"]
    assert "--use_qserve" in found["names"]
    assert found["choices"]["--dtype"] == ["auto", "float16", "bfloat16", "float32"]


@pytest.mark.parametrize("obj", ABSTRACT_OBJECTS)
def test_abstract_lists_hold_only_abstract_methods(obj: str) -> None:
    concrete = {"__init__", "bind_connector_meta", "get_connector_meta", "register_forward_pass_callable"}
    for label, found in OBJECTS[obj].items():
        abstract = {name.split("(")[0] for name in found["names"]}
        assert not abstract & concrete, (label, abstract & concrete)
    one_x = OBJECTS[obj]["1.2.x"]
    assert {name.split("(")[0] for name in one_x["concrete"]} <= concrete
    assert "__init__(llm_args)" in one_x["concrete"]
    assert one_x["source"]["commit"] == "00fdcbff5ad82a6438b3e0c9dbc5480b6ee52bdc"


def test_1x_kv_cache_config_fields_do_not_reach_10_unverified() -> None:
    """Releases 1.0.x are checked against the 1.0.0 record, which grants only what 0.15.0 and 1.2.x both record."""
    one_x = next(band for band in BANDS if band.name == "1.0-1.2")
    ten = entry(KV_CACHE_CONFIG, "1.0.0")
    assert ten["verified"] is False and "tokens_per_block" not in ten["names_expected"]
    assert "tokens_per_block" in ten["not_granted_until_read"]
    assert low_end_labels(one_x) == ["1.0.0"] and low_end_labels(one_x, (1, 1)) == []
    assert unlisted(["tokens_per_block", "dtype"], one_x, objects(KV_CACHE_CONFIG), (1, 0)) == ["dtype",
                                                                                                "tokens_per_block"]
    assert unlisted(["tokens_per_block", "dtype"], one_x, objects(KV_CACHE_CONFIG), (1, 2)) == []
    # What the plain engine and PyTorch flows pass is recorded at 1.0.0 too.
    assert unlisted(kv_cache_kwargs(KvCacheRuntime()), one_x, objects(KV_CACHE_CONFIG), (1, 0)) == []
    # Other objects the 1.0.0 label does not record are still read at 1.2.x for 1.0.
    assert unlisted(["max_tokens"], one_x, objects(SAMPLING_PARAMS), (1, 0)) == []


@pytest.mark.xfail(KV_HOST_CACHE_FIRST < (1, 1), strict=True,
                   reason="src/inference_study/trtllm/version.py FEATURES['kv_host_cache'] starts at 1.0, band 1.0-1.2, "
                          "and src/inference_study/trtllm/calls.py block_reuse_kv_cache_kwargs passes "
                          "KvCacheConfig(tokens_per_block=...), which the contract does not record at 1.0.0")
def test_kv_host_cache_gate_starts_where_tokens_per_block_is_recorded() -> None:
    one_x = next(band for band in BANDS if band.name == "1.0-1.2")
    kwargs = block_reuse_kv_cache_kwargs(True, 5120, 32, 0, 0.9)
    assert unlisted(kwargs, one_x, objects(KV_CACHE_CONFIG), first_release(one_x, "kv_host_cache")) == []
