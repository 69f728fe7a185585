"""Every flag, keyword and attribute the TensorRT-LLM code passes is recorded in the API contract, per version band.

The names come from the same functions the stages and backends call (`trtllm.calls`), so a name
added to the code without a contract record fails here, for the band that lacks it.
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
import yaml
from trtllm_contract import (
    BUILD_CLI, CLASS_IDENTITY, COMPLETION_OUTPUT, CONVERT_CLI, GENERATE_ASYNC, LLM_METHODS, OBJECTS,
    REQUEST_OUTPUT, entry, llm_keywords, objects, unlisted,
)

from inference_study.compose import compose_yaml
from inference_study.config import Dtype
from inference_study.trtllm.calls import (
    COMPLETION_OUTPUT_READS, CONVERT_ARCH_DIRS, CONVERT_SCRIPT, KV_CACHE_CONFIG, REQUEST_OUTPUT_READS,
    SAMPLING_PARAMS, build_argv, convert_argv, engine_llm_kwargs, generate_async_kwargs, kv_cache_kwargs,
    pytorch_llm_kwargs, sampling_kwargs,
)
from inference_study.trtllm.settings import EngineProfile, KvCacheRuntime, TrtllmPytorchSettings
from inference_study.trtllm.version import BANDS, Band

REPO = Path(__file__).parents[1]
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
