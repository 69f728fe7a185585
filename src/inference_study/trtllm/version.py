"""Which TensorRT-LLM flow the installed version takes, and a clear stop where the contract does not cover it.

The API contract (tests/data/trtllm-api-contract.json) records names at four points: 0.12.0 (build
flags only), 0.15.0, 1.2.x and main-2026. A version band is supported when every name the code
passes is recorded for it; a band between two recorded points (0.16 to 0.21) may only use names
recorded at both ends. 0.12 to 0.14 are not supported: the contract has no LLM-API runtime names
for them. TensorRT-LLM's newest main (1.3 on) removed the TensorRT engine flow (trtllm-build, the
convert scripts, `tensorrt_llm._tensorrt_engine.LLM`); only `trtllm_pytorch` runs there.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Literal

from packaging.version import InvalidVersion, Version

from inference_study.strict import ConfigError

Flow = Literal["engine", "pytorch"]
FLOW_BACKENDS = {"engine": "trtllm_engine_<profile> (trtllm.models)", "pytorch": "trtllm_pytorch (trtllm.pytorch_models)"}
Feature = Literal["ngram", "kv_connector", "kv_host_cache"]


@dataclass(frozen=True)
class FeatureSupport:
    """An LLM-API feature of the PyTorch flow a scenario uses: the first release that takes it, and where it is set."""

    first: tuple[int, int]
    what: str
    end: tuple[int, int] | None = None  # the first release it no longer runs on, where known
    first_version: str | None = None  # where pre-releases of `first` predate the interface we use: the first that has it
    measured: bool = True  # False: built and checked, but no scenario runner measures it yet (refused by config)


FEATURES: dict[Feature, FeatureSupport] = {
    # The contract records NGramDecodingConfig at 1.2.x and main-2026 (not at 0.15.0), and the PyTorch
    # flow starts at 1.0; a 1.0/1.1 install that lacks a name fails at the first real run.
    "ngram": FeatureSupport((1, 0), "NGramDecodingConfig as speculative_config (scenarios.ngram.backends)",
                            measured=False),
    # kv_connector_config arrived in 1.1 (PR #6488 named it connector_config first; the contract records
    # kv_connector_config at 1.2.x and main-2026). The 1.1 release candidates are refused: the example of that
    # time (examples/llm-api/llm_kv_cache_connector.py @03fa4701) builds the base classes from an ExecutorConfig
    # and passes connector_config, and no 1.1.0rc file was read to show where llm_args took over. main-2026
    # moved the base classes and added abstract methods the contract does not record, so we stop before 1.3.
    "kv_connector": FeatureSupport(
        (1, 1), "KvCacheConnectorConfig as kv_connector_config (scenarios.kv_persist.backends)", (1, 3),
        first_version="1.1.0", measured=False),
    # KvCacheConfig's host_cache_size and max_tokens are recorded from 0.15.0 on, but the variants also pass
    # tokens_per_block, a pydantic KvCacheConfig field added by a July 2025 PR that no 1.0.0 file read here shows
    # (recorded at 1.2.x and main-2026), so they start at 1.1; they also read request_perf_metrics or the public
    # get_stats_async() (1.x) on the PyTorch flow.
    "kv_host_cache": FeatureSupport(
        (1, 1), "KvCacheConfig block reuse, tokens_per_block and host_cache_size per arm "
        "(scenarios.kv_offload.backends, scenarios.multiround.backends)"),
}
INSTALL_ROUTE = (
    "install TensorRT-LLM from NVIDIA: run the study inside NVIDIA's release container "
    "(docker run --gpus all --ipc host -it nvcr.io/nvidia/tensorrt-llm/release:1.2.1), or "
    "`pip install tensorrt_llm==1.2.1` on Linux with CUDA and libopenmpi-dev (0.x wheels: add "
    "--extra-index-url https://pypi.nvidia.com); see docs/tensorrt-llm.md"
)
PRESET_WITHOUT_TRTLLM = (
    "to run the study without TensorRT-LLM, compose a preset that leaves it out: "
    "`inference-study compose study=h100` (GPU) or `inference-study compose` (the default study)"
)


class TrtllmUnavailable(ConfigError):
    """The study enables TensorRT-LLM, but this machine cannot run it; the message says how to proceed."""


@dataclass(frozen=True)
class Band:
    """A range of TensorRT-LLM versions that take the same names, and where those names are recorded."""

    name: str
    low: tuple[int, int]
    high: tuple[int, int]
    contract_labels: tuple[str, ...]
    engine_llm: str | None
    pytorch_llm: str | None
    shutdown: str
    convert_dirs: tuple[str, ...]

    def covers(self, release: tuple[int, int]) -> bool:
        return self.low <= release < self.high

    def llm_class_path(self, flow: Flow) -> str | None:
        return self.engine_llm if flow == "engine" else self.pytorch_llm


BANDS = (
    Band("0.15", (0, 15), (0, 16), ("0.15.0",), "tensorrt_llm.LLM", None, "__exit__", ("{arch}",)),
    Band("0.16-0.21", (0, 16), (1, 0), ("0.15.0", "1.2.x"), "tensorrt_llm.LLM", None, "__exit__",
         ("models/core/{arch}", "{arch}")),
    Band("1.0-1.2", (1, 0), (1, 3), ("1.2.x",), "tensorrt_llm._tensorrt_engine.LLM", "tensorrt_llm.LLM",
         "shutdown", ("models/core/{arch}",)),
    Band("1.3-1.4 (main-2026)", (1, 3), (1, 5), ("main-2026",), None, "tensorrt_llm.LLM", "shutdown", ()),
)


def supported_range(flow: Flow) -> str:
    """The versions a flow runs on, e.g. `0.15 <= version < 1.3`."""
    bands = [band for band in BANDS if band.llm_class_path(flow)]
    low, high = bands[0].low, bands[-1].high
    return f"{low[0]}.{low[1]} <= version < {high[0]}.{high[1]}"


def _release(version: str) -> tuple[int, int]:
    """(major, minor) of a version string; pre-releases count as their release (1.3.0rc4 is 1.3)."""
    try:
        release = Version(version).release
    except InvalidVersion:
        raise TrtllmUnavailable(f"tensorrt_llm reports version {version!r}, which is not a version number") from None
    return (release + (0,))[:2]


def band_for(version: str, flow: Flow) -> Band:
    """The band of `version` that runs `flow`, or an error naming the supported range."""
    release = _release(version)
    band = next((b for b in BANDS if b.covers(release)), None)
    if band is not None and band.llm_class_path(flow):
        return band
    if band is not None and flow == "engine":
        raise TrtllmUnavailable(
            f"tensorrt_llm {version} has no TensorRT engine flow: TensorRT-LLM removed trtllm-build, the "
            "convert_checkpoint.py scripts and tensorrt_llm._tensorrt_engine.LLM after 1.2 "
            "(docs/source/legacy/tensorrt-backend-removal.md in NVIDIA/TensorRT-LLM). Measure it with "
            f"trtllm_pytorch (trtllm.pytorch_models) and set trtllm.models=[], or install a version with "
            f"{supported_range('engine')}"
        )
    raise TrtllmUnavailable(
        f"tensorrt_llm {version} is outside what the API contract covers for {FLOW_BACKENDS[flow]}: "
        f"supported {supported_range(flow)}"
    )


def require_feature(version: str, feature: Feature) -> Band:
    """The PyTorch-flow band of `version` when it takes `feature`, or an error naming the versions that do."""
    band = band_for(version, "pytorch")
    support = FEATURES[feature]
    end = support.end or next(b.high for b in reversed(BANDS) if b.pytorch_llm)
    too_early = support.first_version is not None and Version(version) < Version(support.first_version)
    if too_early or not support.first <= _release(version) < end:
        since = f", from {support.first_version} on (its release candidates are refused)" if support.first_version else ""
        raise TrtllmUnavailable(
            f"tensorrt_llm {version} cannot run {support.what} as this study implements it: supported "
            f"{support.first[0]}.{support.first[1]} <= version < {end[0]}.{end[1]}{since} (docs/tensorrt-llm.md)"
        )
    return band


def installed_version() -> str | None:
    """tensorrt_llm's version from package metadata, without importing it (an import takes seconds)."""
    for distribution in ("tensorrt_llm", "tensorrt-llm"):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None


def preflight(flows: list[Flow], version: str | None, study_name: str, features: list[Feature] = ()) -> None:
    """Stop a study that enables TensorRT-LLM flows or scenario variants this machine cannot run, before any
    stage does work. A scenario variant runs on the PyTorch flow, so it checks that flow too."""
    if not flows and not features:
        return
    if version is None:
        enabled = ", ".join([*(FLOW_BACKENDS[flow] for flow in flows), *(FEATURES[f].what for f in features)])
        raise TrtllmUnavailable(
            f"study {study_name!r} enables TensorRT-LLM ({enabled}), but tensorrt_llm is not installed here: "
            f"{INSTALL_ROUTE}. Or, {PRESET_WITHOUT_TRTLLM}"
        )
    for flow in flows:
        band_for(version, flow)
    for feature in features:  # each checks the PyTorch flow's band first
        require_feature(version, feature)


def import_tensorrt_llm() -> ModuleType:
    """The `tensorrt_llm` module, or an error with the install route."""
    try:
        return importlib.import_module("tensorrt_llm")
    except ImportError as error:
        raise TrtllmUnavailable(f"cannot import tensorrt_llm ({error}): {INSTALL_ROUTE}") from None


def resolve(path: str) -> object:
    """An attribute named by its dotted path, e.g. `tensorrt_llm._tensorrt_engine.LLM`."""
    module_name, _, attribute = path.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)
