"""TensorRT-LLM backends: a built engine (`trtllm_engine_<profile>`) and the LLM API's PyTorch backend.

Both run the version's `LLM` class chosen by `trtllm.version.band_for` (a contiguous-KV engine, which the
LLM API cannot run, goes to the Python session runtime instead: session.py) and are timed the way the
PyTorch rungs are: every request is streamed (`generate_async(streaming=True)`) and each token gets
a host timestamp when it arrives, so TTFT, ITL, TPOT and E2E come from the same clock and the same
definitions. TensorRT-LLM allocates outside torch's caching allocator, so memory comes from NVML.
"""

from __future__ import annotations

import asyncio
import json
import time
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from inference_study.backend import Backend, BackendSettings, Generation
from inference_study.backends.trtllm.session import SessionEngine
from inference_study.strict import ConfigError
from inference_study.trtllm.calls import (
    COMPLETION_OUTPUT_READS,
    KV_CACHE_CONFIG,
    KV_CACHE_COUNTER_READS,
    KV_CACHE_METRICS_GROUP,
    KV_CACHE_STATS_KEY,
    KV_CACHE_STATS_READS,
    PERF_METRICS_READ,
    REQUEST_OUTPUT_READS,
    SAMPLING_PARAMS,
    SHUTDOWN_ARGS,
    SPECULATIVE_COUNTER_READS,
    SPECULATIVE_LLM_KEYWORD,
    SPECULATIVE_METRICS_GROUP,
    STATS_METHOD,
    LlmExtras,
    engine_llm_kwargs,
    generate_async_kwargs,
    get_stats_kwargs,
    iteration_stats_kv_cache_kwargs,
    iteration_stats_llm_kwargs,
    kv_cache_kwargs,
    kv_connector_llm_extras,
    kv_connector_llm_kwargs,
    pytorch_llm_kwargs,
    sampling_kwargs,
)
from inference_study.trtllm.settings import TrtllmEngineSettings, TrtllmPytorchSettings
from inference_study.trtllm.version import Band, Flow, band_for, import_tensorrt_llm, resolve

(OUTPUTS,) = REQUEST_OUTPUT_READS
(TOKEN_IDS,) = COMPLETION_OUTPUT_READS


def special_ids(model_dir: Path) -> tuple[int, int]:
    """(end_id, pad_id) from config.json: without a tokenizer TensorRT-LLM needs them given explicitly."""
    config = json.loads((model_dir / "config.json").read_text())
    eos = config.get("eos_token_id")
    end_id = eos[0] if isinstance(eos, list) else eos
    if end_id is None:
        raise ConfigError(f"{model_dir}/config.json has no eos_token_id; TensorRT-LLM needs an end id")
    pad = config.get("pad_token_id")
    return end_id, end_id if pad is None else pad


@dataclass(frozen=True)
class SpeculativeCounters:
    """One request's draft tokens proposed and accepted, as TensorRT-LLM reports them; null with a reason
    where the installed version reports none."""

    proposed: int | None
    accepted: int | None
    null_reason: str | None


def speculative_counters(request: object) -> SpeculativeCounters:
    """The counters of a finished request, from `CompletionOutput.request_perf_metrics.speculative_decoding`."""
    completion = getattr(request, OUTPUTS)[0]
    group = getattr(getattr(completion, PERF_METRICS_READ, None), SPECULATIVE_METRICS_GROUP, None)
    if group is None:
        return SpeculativeCounters(None, None, f"this TensorRT-LLM reports no {PERF_METRICS_READ}."
                                               f"{SPECULATIVE_METRICS_GROUP} for the request")
    proposed, accepted = (getattr(group, name) for name in SPECULATIVE_COUNTER_READS)
    return SpeculativeCounters(proposed, accepted, None)


@dataclass(frozen=True)
class KvCacheCounters:
    """One request's KV blocks reused from the cache and missed (computed), as TensorRT-LLM reports them;
    null with a reason where the installed version reports none."""

    reused_blocks: int | None
    missed_blocks: int | None
    null_reason: str | None


def kv_cache_counters(request: object) -> KvCacheCounters:
    """The counters of a finished request, from `CompletionOutput.request_perf_metrics.kv_cache_metrics`."""
    completion = getattr(request, OUTPUTS)[0]
    group = getattr(getattr(completion, PERF_METRICS_READ, None), KV_CACHE_METRICS_GROUP, None)
    if group is None:
        return KvCacheCounters(None, None, f"this TensorRT-LLM reports no {PERF_METRICS_READ}."
                                           f"{KV_CACHE_METRICS_GROUP} for the request")
    reused, missed = (getattr(group, name) for name in KV_CACHE_COUNTER_READS)
    return KvCacheCounters(reused, missed, None)


NO_KV_CACHE_STATS = KvCacheCounters(
    None, None, f"{STATS_METHOD}() returned no iteration with {KV_CACHE_STATS_KEY} (iteration stats were on)")


def kv_cache_totals(iterations: list[dict], last_seen: KvCacheCounters) -> KvCacheCounters:
    """The KV cache manager's block counters, cumulative over the `LLM`'s life, from the newest of the
    drained iteration stats that reports them; `last_seen` when none does (no iteration ran since)."""
    for stats in reversed(iterations):
        if KV_CACHE_STATS_KEY in stats:
            reused, missed = (stats[KV_CACHE_STATS_KEY][name] for name in KV_CACHE_STATS_READS)
            return KvCacheCounters(reused, missed, None)
    return last_seen


async def _stream(request: object) -> tuple[list[int], list[float]]:
    """One request's generated ids and, per token, when it reached the host (several in one update share it)."""
    times: list[float] = []
    async for update in request:
        produced = len(getattr(getattr(update, OUTPUTS)[0], TOKEN_IDS))
        now = time.perf_counter()
        times.extend([now] * (produced - len(times)))
    return list(getattr(getattr(request, OUTPUTS)[0], TOKEN_IDS)), times


class TrtllmBackend(Backend):
    """Shared body: load the version's `LLM`, stream every request of a batch concurrently, shut down."""

    flow: ClassVar[Flow]
    memory_seen_by_torch_allocator = False

    def __init__(self, settings: BackendSettings, model_dir: Path, dtype: str, device: str):
        super().__init__(settings, model_dir, dtype, device)
        self.llm: object | None = None
        self.band: Band | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.llm_extras: LlmExtras = {}
        self.plain_llm_kwargs: dict[str, object] = {}  # LLM keywords whose value is no config object
        self.speculative: list[SpeculativeCounters] = []  # per request of the last `generate`
        self.kv_cache_override: dict[str, object] | None = None
        self.kv_cache: list[KvCacheCounters] = []  # per request of the last `generate`, with the override
        self.iteration_stats = False
        self.kv_totals = NO_KV_CACHE_STATS  # the newest cumulative counters read from the iteration stats

    def is_out_of_memory(self, error: Exception) -> bool:
        """TensorRT-LLM's C++ runtime reports CUDA and KV-cache allocation failures as a RuntimeError whose
        text says "out of memory"; its PyTorch backend raises torch's own error."""
        return super().is_out_of_memory(error) or (
            isinstance(error, RuntimeError) and "out of memory" in str(error).lower())

    @abstractmethod
    def llm_kwargs(self, kv_cache_config: object) -> dict[str, object]:
        """Keywords of this flow's `LLM` class."""

    def load(self) -> None:
        self.band = band_for(import_tensorrt_llm().__version__, self.flow)
        kv_kwargs = self.kv_cache_override or kv_cache_kwargs(self.settings.kv_cache)
        stats_kv, stats_llm = ((iteration_stats_kv_cache_kwargs(self.band.low), iteration_stats_llm_kwargs())
                               if self.iteration_stats else ({}, {}))
        kv_cache_config = resolve(KV_CACHE_CONFIG)(**kv_kwargs, **stats_kv)
        # One event loop for the backend's life: results created inside it deliver their updates to it.
        self.loop = asyncio.new_event_loop()
        extras = {keyword: resolve(path)(**kwargs) for keyword, (path, kwargs) in self.llm_extras.items()}
        self.llm = resolve(self.band.llm_class_path(self.flow))(**self.llm_kwargs(kv_cache_config), **extras,
                                                                 **self.plain_llm_kwargs, **stats_llm)
        self.end_id, self.pad_id = special_ids(self.model_dir)

    def generate(self, input_ids: list[list[int]], output_len: int) -> Generation:
        metrics = SPECULATIVE_LLM_KEYWORD in self.llm_extras or self.kv_cache_override is not None
        params = resolve(SAMPLING_PARAMS)(**sampling_kwargs(output_len, self.end_id, self.pad_id, metrics))
        return self.loop.run_until_complete(self._batch(input_ids, params))

    async def _batch(self, input_ids: list[list[int]], params: object) -> Generation:
        """Submit every request at once (the executor batches them in flight), then collect the streams."""
        start = time.perf_counter()
        requests = [self.llm.generate_async(**generate_async_kwargs(ids, params)) for ids in input_ids]
        streams = await asyncio.gather(*(_stream(request) for request in requests))
        self.speculative = [speculative_counters(request) for request in requests]
        if self.kv_cache_override is not None:
            self.kv_cache = [kv_cache_counters(request) for request in requests]
        return Generation(output_ids=[ids for ids, _ in streams], start=start,
                          token_times=[times for _, times in streams])

    def release(self) -> None:
        if self.llm is not None:
            getattr(self.llm, self.band.shutdown)(*SHUTDOWN_ARGS[self.band.shutdown])
            self.llm = None
        if self.loop is not None:
            self.loop.close()
            self.loop = None


class TrtllmEngine(TrtllmBackend):
    name = "trtllm_engine"
    description = (
        "a TensorRT engine built by trtllm-build for one profile: paged KV on the version's TensorRT-engine LLM "
        "(in-flight batching; batches above the engine's max_batch_size queue), contiguous KV on the Python "
        "session runtime (one whole batch at a time)"
    )
    flow = "engine"
    settings: TrtllmEngineSettings

    def __init__(self, settings: BackendSettings, model_dir: Path, dtype: str, device: str):
        super().__init__(settings, model_dir, dtype, device)
        self.session: SessionEngine | None = None

    def engine_dir(self) -> Path:
        engine_dir = self.settings.engine_dir
        if engine_dir is None or not (Path(engine_dir) / "config.json").is_file():
            raise ConfigError(f"engine of profile {self.settings.profile!r} not found at {engine_dir!r}: "
                              "engines are built by the trtllm_build stage (`dvc repro trtllm_build`)")
        return Path(engine_dir)

    def llm_kwargs(self, kv_cache_config: object) -> dict[str, object]:
        return engine_llm_kwargs(self.engine_dir(), self.settings.tensor_parallel_size, kv_cache_config)

    def load(self) -> None:
        """A paged engine on the LLM API; a contiguous one on the session runtime, the only one that runs it."""
        if self.settings.build.paged_kv_cache:
            super().load()
            return
        self.band = band_for(import_tensorrt_llm().__version__, self.flow)
        self.session = SessionEngine(self.engine_dir())
        self.end_id, self.pad_id = special_ids(self.model_dir)

    def generate(self, input_ids: list[list[int]], output_len: int) -> Generation:
        if self.session is None:
            return super().generate(input_ids, output_len)
        return self.session.generate(input_ids, output_len, self.end_id, self.pad_id)

    def release(self) -> None:
        if self.session is not None:
            self.session.release()
            self.session = None
        super().release()


class TrtllmPytorch(TrtllmBackend):
    name = "trtllm_pytorch"
    description = "TensorRT-LLM's LLM API with its PyTorch backend (1.x default LLM): HF weights, no engine build"
    flow = "pytorch"
    settings: TrtllmPytorchSettings

    def with_extras(self, llm_extras: LlmExtras) -> TrtllmPytorch:
        """This backend with a feature switched on at load (n-gram speculation, the KV cache connector)."""
        self.llm_extras = llm_extras
        return self

    def with_kv_cache(self, keywords: dict[str, object]) -> TrtllmPytorch:
        """This backend with its own `KvCacheConfig` keywords (from `calls`), and per-request KV counters."""
        self.kv_cache_override = keywords
        return self

    def with_kv_connector(self) -> TrtllmPytorch:
        """This backend with our prefix-hash KV cache connector plugged in, and CUDA graphs off, which it needs."""
        self.llm_extras = kv_connector_llm_extras()
        self.plain_llm_kwargs = kv_connector_llm_kwargs()
        return self

    def with_iteration_stats(self) -> TrtllmPytorch:
        """This backend with iteration stats on (`enable_iter_perf_stats`), so `read_kv_totals` works."""
        self.iteration_stats = True
        return self

    def read_kv_totals(self) -> KvCacheCounters:
        """Drain the iteration stats and return the KV cache manager's cumulative block counters: a phase's
        reuse is the difference around it, so warmup and earlier phases never count. They are drained on the
        backend's event loop, where the executor created their queue with the first request."""
        self.kv_totals = kv_cache_totals(self.loop.run_until_complete(self._drain_stats()), self.kv_totals)
        return self.kv_totals

    async def _drain_stats(self) -> list[dict]:
        return [stats async for stats in getattr(self.llm, STATS_METHOD)(**get_stats_kwargs())]

    def llm_kwargs(self, kv_cache_config: object) -> dict[str, object]:
        return pytorch_llm_kwargs(self.model_dir, self.dtype, self.settings, kv_cache_config)
