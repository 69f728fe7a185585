"""A STAND-IN for the `tensorrt_llm` package: it records every call and measures nothing.

It exists so orchestration (version dispatch, error paths, result assembly) can be tested where
TensorRT-LLM cannot be installed. Its classes accept keywords only, so every name the code passes
is recorded and can be checked against the API contract. It marks itself (`IS_STAND_IN`): the
environment fingerprint then records it as a stand-in, and results.py refuses any TensorRT-LLM
result carrying that mark, so nothing it produces can enter a report as a TensorRT-LLM number.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from dataclasses import dataclass, field
from types import ModuleType, SimpleNamespace

import pytest

FIRST_TOKEN = 7  # the ids it "generates": FIRST_TOKEN, FIRST_TOKEN + 1, ...


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


def _llm_class(log: CallLog, callee: str) -> type:
    class LLM(_recording_class(log, callee)):
        def generate_async(self, **kwargs: object) -> _Stream:
            log.calls.append((f"{callee}.generate_async", kwargs))
            sampling = kwargs["sampling_params"].kwargs
            return _Stream(sampling["max_tokens"], sampling.get("return_perf_metrics", False))

        def get_stats(self, **kwargs: object) -> list[dict]:
            """No iteration ran, so there are no iteration stats: the drained queue is empty."""
            log.calls.append((f"{callee}.get_stats", kwargs))
            return []

        def shutdown(self) -> None:
            log.calls.append((f"{callee}.shutdown", {}))

        def __exit__(self, *exc: object) -> None:
            log.calls.append((f"{callee}.__exit__", {}))

    return LLM


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
    root.llmapi, root._tensorrt_engine = llmapi, engine
    modules = {"tensorrt_llm": root, "tensorrt_llm.llmapi": llmapi, "tensorrt_llm._tensorrt_engine": engine,
               "tensorrt_llm.llmapi.llm_args": llm_args, connector.__name__: connector}
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
