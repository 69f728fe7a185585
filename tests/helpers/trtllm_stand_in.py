"""A STAND-IN for the `tensorrt_llm` package: it records every call and measures nothing.

It exists so orchestration (version dispatch, error paths, result assembly) can be tested where
TensorRT-LLM cannot be installed. Its classes accept keywords only, so every name the code passes
is recorded and can be checked against the API contract. It marks itself (`IS_STAND_IN`): the
environment fingerprint then records it as a stand-in, and results.py refuses any TensorRT-LLM
result carrying that mark, so nothing it produces can enter a report as a TensorRT-LLM number.

Where TensorRT-LLM refuses or misbehaves in a way the code must work around, so does the stand-in, and a comment
names the NVIDIA file and the stored version it copies: a contiguous-KV engine on the LLM API, a sync drain of
iteration stats made inside an event loop, a KV cache connector with CUDA graphs on, and a 1.x scheduler output
whose computed_position leaves out the connector's tokens (`connector_step`).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import torch

FIRST_TOKEN = 7  # the ids it "generates": FIRST_TOKEN, FIRST_TOKEN + 1, ...
# What a real engine's config.json says of its KV cache (build_config.kv_cache_type, as BuildConfig keeps it in
# sync with plugin_config.paged_kv_cache: tensorrt_llm/builder.py, stored @008b2b8d); `write_engine` writes it.
ENGINE_KV_TYPES = {True: "PAGED", False: "CONTINUOUS"}
IFB_REFUSAL = ("TrtGptModelInflightBatching requires GPT attention/Mamba Conv 1d plugin with packed input and "
               "paged KV cache.")
CONNECTOR_GRAPH_REFUSAL = "CUDA graphs are not supported with KV connector hooks."


def write_engine(engine_dir: Path, paged: bool) -> None:
    """A stand-in engine directory: only the config.json fields the stand-in reads."""
    engine_dir.mkdir(parents=True, exist_ok=True)
    (engine_dir / "config.json").write_text(json.dumps({"build_config": {"kv_cache_type": ENGINE_KV_TYPES[paged]}}))


def _engine_kv_type(model: object) -> str | None:
    config = Path(str(model)) / "config.json"
    return json.loads(config.read_text()).get("build_config", {}).get("kv_cache_type") if config.is_file() else None


@dataclass
class CallLog:
    """(callee, keywords) in call order; the callee is the dotted name the code reached it by."""

    calls: list[tuple[str, dict]] = field(default_factory=list)

    def keywords(self, callee: str) -> list[dict]:
        return [kwargs for name, kwargs in self.calls if name == callee]


class _Stream:
    """What `generate_async(streaming=True)` returns: yields itself once per new token. Asked for perf
    metrics, it reports speculative counters that are plainly not measured (no drafts proposed)."""

    def __init__(self, max_tokens: int, perf_metrics: bool):
        self.max_tokens = max_tokens
        unmeasured = SimpleNamespace(speculative_decoding=SimpleNamespace(
            total_draft_tokens=0, total_accepted_draft_tokens=0))
        self.outputs = [SimpleNamespace(token_ids=[], request_perf_metrics=unmeasured if perf_metrics else None)]

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> _Stream:
        token_ids = self.outputs[0].token_ids
        if len(token_ids) == self.max_tokens:
            raise StopAsyncIteration
        await asyncio.sleep(0)
        token_ids.append(FIRST_TOKEN + len(token_ids))
        return self


def _recording_class(log: CallLog, callee: str) -> type:
    class Recorded:
        def __init__(self, **kwargs: object):
            log.calls.append((callee, kwargs))
            self.kwargs = kwargs

    Recorded.__qualname__ = callee
    return Recorded


class _IterationStats:
    """The executor's `IterationResult`, made on the first submit. Made inside an event loop, its queue is an
    AsyncQueue whose sync side yields None (tensorrt_llm/executor/result.py, IterationResult.__init__ and
    get_results, stored version 005bc848: `queue = aqueue.sync_q`, `json.loads(self.queue.get(...))`), so the
    sync drain raises TypeError; its async side is that loop's. It measures nothing, so it holds no iteration."""

    def __init__(self):
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None
        self.items: deque[str] = deque()

    def get_results(self) -> list[dict]:
        results = []
        while self.loop is not None or self.items:
            results.append(json.loads(None if self.loop is not None else self.items.popleft()))
        return results

    async def drain(self):
        if asyncio.get_running_loop() is not self.loop:
            raise RuntimeError("the iteration stats queue is attached to a different event loop")
        while self.items:
            yield json.loads(self.items.popleft())


async def _no_stats():
    return
    yield


def _llm_class(log: CallLog, callee: str) -> type:
    class LLM(_recording_class(log, callee)):
        def __init__(self, **kwargs: object):
            super().__init__(**kwargs)
            # The LLM API always builds an in-flight-batching executor (llmapi/llm.py _TrtLLM: `batching_type=...
            # or tllm.BatchingType.INFLIGHT`, stored 4c05a748), which refuses an engine without paged KV
            # (cpp/tensorrt_llm/batch_manager/trtGptModelInflightBatching.cpp, stored 00825c4e).
            if _engine_kv_type(kwargs.get("model")) == ENGINE_KV_TYPES[False]:
                raise RuntimeError(f"[TensorRT-LLM][ERROR] {IFB_REFUSAL}")
            # CUDA graphs are on unless cuda_graph_config=None; a connector with them is refused
            # (_torch/pyexecutor/py_executor_creator.py, stored bab0f2e6, create_py_executor).
            if kwargs.get("kv_connector_config") is not None and kwargs.get("cuda_graph_config", "default") is not None:
                raise NotImplementedError(CONNECTOR_GRAPH_REFUSAL)
            self.iteration_stats: _IterationStats | None = None

        def generate_async(self, **kwargs: object) -> _Stream:
            log.calls.append((f"{callee}.generate_async", kwargs))
            if self.iteration_stats is None:  # executor.py _maybe_initialize_iteration_results, on submit
                self.iteration_stats = _IterationStats()
            sampling = kwargs["sampling_params"].kwargs
            return _Stream(sampling["max_tokens"], sampling.get("return_perf_metrics", False))

        def get_stats(self, **kwargs: object) -> list[dict]:
            """executor.py get_stats: [] before any submit, else the IterationResult's sync drain."""
            log.calls.append((f"{callee}.get_stats", kwargs))
            return [] if self.iteration_stats is None else self.iteration_stats.get_results()

        def get_stats_async(self, **kwargs: object) -> object:
            """executor.py aget_stats: an empty async iterable before any submit, else the IterationResult."""
            log.calls.append((f"{callee}.get_stats_async", kwargs))
            return _no_stats() if self.iteration_stats is None else self.iteration_stats.drain()

        def shutdown(self) -> None:
            log.calls.append((f"{callee}.shutdown", {}))

        def __exit__(self, *exc: object) -> None:
            log.calls.append((f"{callee}.__exit__", {}))

    return LLM


def _session_runner(log: CallLog) -> type:
    """`tensorrt_llm.runtime.ModelRunner` (runtime/model_runner.py, stored 0243026f): `from_dir(engine_dir, rank)`;
    `generate(batch_input_ids, streaming=True, return_dict=True, output_sequence_lengths=True, max_new_tokens, ...)`
    yields per step `output_ids` [batch, beam, prompt + new] and `sequence_lengths` [batch, beam], prompt included."""
    callee = "tensorrt_llm.runtime.ModelRunner"

    class ModelRunner:
        @classmethod
        def from_dir(cls, **kwargs: object) -> ModelRunner:
            log.calls.append((f"{callee}.from_dir", kwargs))
            return cls()

        def generate(self, **kwargs: object):
            log.calls.append((f"{callee}.generate", kwargs))
            prompts = [ids.tolist() for ids in kwargs["batch_input_ids"]]
            for step in range(1, kwargs["max_new_tokens"] + 1):
                rows = [ids + [FIRST_TOKEN + k for k in range(step)] for ids in prompts]
                width = max(map(len, rows))
                padded = [row + [kwargs["pad_id"]] * (width - len(row)) for row in rows]
                yield {"output_ids": torch.tensor(padded).unsqueeze(1),
                       "sequence_lengths": torch.tensor([[len(row)] for row in rows])}

    return ModelRunner


def _connector_bases(log: CallLog) -> ModuleType:
    """`tensorrt_llm._torch.pyexecutor.kv_cache_connector`: bases that record construction and hold the
    step's metadata, as the contract's `bind_connector_meta` / `get_connector_meta` do."""
    module = ModuleType("tensorrt_llm._torch.pyexecutor.kv_cache_connector")

    def base(name: str) -> type:
        class Base:
            def __init__(self, llm_args: object):
                log.calls.append((f"{module.__name__}.{name}", {"llm_args": llm_args}))
                self._metadata = None

            def bind_connector_meta(self, metadata: object) -> None:
                self._metadata = metadata

            def get_connector_meta(self) -> object:
                return self._metadata

        Base.__name__ = Base.__qualname__ = name
        return Base

    module.KvCacheConnectorScheduler = base("KvCacheConnectorScheduler")
    module.KvCacheConnectorWorker = base("KvCacheConnectorWorker")
    return module


CONNECTOR_FINGERPRINT = "tiny-llama-float16"  # the model fingerprint a test connector stores its blocks under


def connector_instance(connector: ModuleType, blocks_dir: Path, monkeypatch: pytest.MonkeyPatch,
                       tokens_per_block: int, pool: torch.Tensor) -> tuple[object, object]:
    """The project's connector scheduler and worker over `pool`, storing in `blocks_dir`: one "instance"."""
    from inference_study.trtllm.prefix_store import BLOCKS_DIR_ENV, FINGERPRINT_ENV  # as the executor's env

    monkeypatch.setenv(BLOCKS_DIR_ENV, str(blocks_dir))
    monkeypatch.setenv(FINGERPRINT_ENV, CONNECTOR_FINGERPRINT)
    llm_args = SimpleNamespace(kv_cache_config=SimpleNamespace(tokens_per_block=tokens_per_block))
    scheduler, worker = connector.PrefixHashScheduler(llm_args), connector.PrefixHashWorker(llm_args)
    worker.register_kv_caches(pool)
    return scheduler, worker


def connector_step(scheduler: object, worker: object, tokens: list[int], block_ids: list[int],
                   device_matched: int) -> tuple[int, object]:
    """One new request through a connector as the 1.1/1.2 executor drives it (_torch/pyexecutor/
    kv_cache_connector.py, KvCacheConnectorManager and build_scheduler_output, stored 00fdcbff and 32779536):
    the connector is asked for tokens beyond the `device_matched` ones already on the GPU, the context starts
    after both, and the scheduler output's computed_position leaves out the connector's tokens ("Don't include
    the connector matched tokens in the initial scheduler output"). Then load, forward pass, save."""
    request = SimpleNamespace(request_id=1, get_tokens=lambda beam: tokens)
    matched, load_async = scheduler.get_num_new_matched_tokens(request, device_matched)
    scheduler.update_state_after_alloc(request, block_ids)
    context_current_position = device_matched + matched
    output = SimpleNamespace(new_requests=[SimpleNamespace(
        request_id=1, new_tokens=tokens, new_block_ids=block_ids,
        computed_position=context_current_position - matched,
        num_scheduled_tokens=len(tokens) - context_current_position)], cached_requests=[])
    plan = scheduler.build_connector_meta(output)
    worker.bind_connector_meta(plan)
    stream = SimpleNamespace(synchronize=lambda: None)
    worker.start_load_kv(stream)
    worker.wait_for_save(stream)
    assert load_async is False and worker.get_finished([1], []) == ([], [])
    assert scheduler.request_finished(request, block_ids) is False
    return matched, plan


def stand_in_modules(version: str) -> tuple[dict[str, ModuleType], CallLog]:
    """`tensorrt_llm` and the submodules the code imports, reporting `version`, plus their call log."""
    log = CallLog()
    root = ModuleType("tensorrt_llm", "STAND-IN for tensorrt_llm: records calls, measures nothing")
    root.IS_STAND_IN = True
    root.__version__ = version
    root.LLM = _llm_class(log, "tensorrt_llm.LLM")
    root.SamplingParams = _recording_class(log, "tensorrt_llm.SamplingParams")
    llmapi = ModuleType("tensorrt_llm.llmapi")
    llmapi.KvCacheConfig = _recording_class(log, "tensorrt_llm.llmapi.KvCacheConfig")
    llmapi.NGramDecodingConfig = _recording_class(log, "tensorrt_llm.llmapi.NGramDecodingConfig")
    llm_args = ModuleType("tensorrt_llm.llmapi.llm_args")
    llm_args.KvCacheConnectorConfig = _recording_class(log, "tensorrt_llm.llmapi.llm_args.KvCacheConnectorConfig")
    llmapi.llm_args = llm_args
    connector = _connector_bases(log)
    engine = ModuleType("tensorrt_llm._tensorrt_engine")
    engine.LLM = _llm_class(log, "tensorrt_llm._tensorrt_engine.LLM")
    runtime = ModuleType("tensorrt_llm.runtime")
    runtime.ModelRunner = _session_runner(log)
    root.llmapi, root._tensorrt_engine, root.runtime = llmapi, engine, runtime
    modules = {"tensorrt_llm": root, "tensorrt_llm.llmapi": llmapi, "tensorrt_llm._tensorrt_engine": engine,
               "tensorrt_llm.llmapi.llm_args": llm_args, "tensorrt_llm.runtime": runtime,
               connector.__name__: connector}
    return modules, log


def install_stand_in(monkeypatch: pytest.MonkeyPatch, version: str) -> CallLog:
    """Put the stand-in in `sys.modules` for one test; returns its call log."""
    modules, log = stand_in_modules(version)
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return log


def import_connector(monkeypatch: pytest.MonkeyPatch, version: str) -> tuple[ModuleType, CallLog]:
    """inference_study.trtllm.kv_connector imported fresh over the stand-in's connector base classes."""
    log = install_stand_in(monkeypatch, version)
    monkeypatch.delitem(sys.modules, "inference_study.trtllm.kv_connector", raising=False)
    return importlib.import_module("inference_study.trtllm.kv_connector"), log
