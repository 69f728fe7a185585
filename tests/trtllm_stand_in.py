"""A STAND-IN for the `tensorrt_llm` package: it records every call and measures nothing.

It exists so orchestration (version dispatch, error paths, result assembly) can be tested where
TensorRT-LLM cannot be installed. Its classes accept keywords only, so every name the code passes
is recorded and can be checked against the API contract. It marks itself (`IS_STAND_IN`): the
environment fingerprint then records it as a stand-in, and results.py refuses any TensorRT-LLM
result carrying that mark, so nothing it produces can enter a report as a TensorRT-LLM number.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import ModuleType, SimpleNamespace

FIRST_TOKEN = 7  # the ids it "generates": FIRST_TOKEN, FIRST_TOKEN + 1, ...


@dataclass
class CallLog:
    """(callee, keywords) in call order; the callee is the dotted name the code reached it by."""

    calls: list[tuple[str, dict]] = field(default_factory=list)

    def keywords(self, callee: str) -> list[dict]:
        return [kwargs for name, kwargs in self.calls if name == callee]


class _Stream:
    """What `generate_async(streaming=True)` returns: yields itself once per new token."""

    def __init__(self, max_tokens: int):
        self.max_tokens = max_tokens
        self.outputs = [SimpleNamespace(token_ids=[])]

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
            return _Stream(kwargs["sampling_params"].kwargs["max_tokens"])

        def shutdown(self) -> None:
            log.calls.append((f"{callee}.shutdown", {}))

        def __exit__(self, *exc: object) -> None:
            log.calls.append((f"{callee}.__exit__", {}))

    return LLM


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
    engine = ModuleType("tensorrt_llm._tensorrt_engine")
    engine.LLM = _llm_class(log, "tensorrt_llm._tensorrt_engine.LLM")
    root.llmapi, root._tensorrt_engine = llmapi, engine
    modules = {"tensorrt_llm": root, "tensorrt_llm.llmapi": llmapi, "tensorrt_llm._tensorrt_engine": engine}
    return modules, log
