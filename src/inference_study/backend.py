"""The small interface every backend implements (PyTorch today, TensorRT-LLM later).

The harness only ever calls `load`, `warmup`, `generate` and `release`, and reads per-request host
timestamps from what `generate` returns, so all backends are measured by the same code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from inference_study.strict import Record, Strict

CompileCacheState = Literal["warm", "partial", "cold", "in_memory", "off"]


class CompileCacheUse(Record):
    """Whether torch.compile's cache served a backend's warmup: `warm` when every graph came from it, `cold`
    when none did, `partial` in between, `in_memory` when this process had compiled them already (nothing
    to compile or load), `off` when torch's cache was disabled; `note` says what went wrong."""

    state: CompileCacheState
    graphs_compiled: int = Field(description="FX graph cache misses and bypasses: graphs Inductor compiled")
    graphs_from_cache: int = Field(description="FX graph cache hits")
    note: str | None = None

    @classmethod
    def combined(cls, uses: list[CompileCacheUse]) -> CompileCacheUse:
        """Several processes' uses as one: counts summed, the state judged from the sums, notes kept."""
        compiled, cached = sum(u.graphs_compiled for u in uses), sum(u.graphs_from_cache for u in uses)
        state = ("off" if any(u.state == "off" for u in uses) else "in_memory" if compiled == cached == 0
                 else "cold" if cached == 0 else "warm" if compiled == 0 else "partial")
        notes = list(dict.fromkeys(u.note for u in uses if u.note))
        return cls(state=state, graphs_compiled=compiled, graphs_from_cache=cached, note="; ".join(notes) or None)


class CompileReport(Record):
    """torch.compile's share of a backend's warmup (Dynamo, AOTAutograd, Inductor and Triton autotuning, whether
    served from the cache or not; CUDA-graph capture and the runs themselves excluded) and how the cache served it."""

    compile_s: float
    cache: CompileCacheUse


class BackendSettings(Strict):
    """Base of each backend's own typed settings (one class per backend, as optimum-benchmark does)."""

    def sweep_errors(
        self, batch_sizes: list[int], input_lens: list[int], output_lens: list[int], key: str = "backends"
    ) -> list[str]:
        """Why some cell of a sweep cannot run with these settings, each naming its key under `key` (the
        settings' own place in params.yaml, e.g. `backends.hf_paged`); none by default."""
        return []


@dataclass(frozen=True)
class Generation:
    """What one `generate` call produced, with host timestamps in `time.perf_counter` seconds.

    `token_times[r][k]` is when request r's k-th generated token was available on the host. Under
    static batching every request of the batch shares the same times; continuous batching differs.
    """

    output_ids: list[list[int]]
    start: float
    token_times: list[list[float]]
    # Prompt tokens each request computed (the rest came from a reused KV cache), where the backend can
    # count them through public APIs; None where it cannot.
    prefilled_tokens: list[int] | None = None


class Backend(ABC):
    """One way of running a model: load it once, warm it up, generate batches, release it."""

    name: ClassVar[str]
    description: ClassVar[str]
    # False for engines that allocate outside torch's caching allocator (TensorRT-LLM): there the
    # torch allocator's peak says nothing about the memory the backend really used.
    memory_seen_by_torch_allocator: ClassVar[bool] = True

    def __init__(self, settings: BackendSettings, model_dir: Path, dtype: str, device: str):
        self.settings = settings
        self.model_dir = model_dir
        self.dtype = dtype
        self.device = device

    @classmethod
    def unavailable_reason(cls, device: str) -> str | None:
        """Why this backend cannot run on `device` on this machine (a missing library or compiler), or None.

        `inference-study doctor` asks every registered backend before any run is planned.
        """
        return None

    def is_out_of_memory(self, error: Exception) -> bool:
        """Whether `error` means the device ran out of memory (recorded as the cell's `oom` outcome)."""
        import torch  # heavy: torch loads only where something runs on a device

        return isinstance(error, torch.OutOfMemoryError)

    @abstractmethod
    def load(self) -> None:
        """Load weights onto the device; not timed as part of any request."""

    def warmup(self, input_ids: list[list[int]], output_len: int) -> None:
        """Run the exact shapes once so compilation, graph capture and allocations stay out of timings."""
        self.generate(input_ids, output_len)

    @abstractmethod
    def generate(self, input_ids: list[list[int]], output_len: int) -> Generation:
        """Generate exactly `output_len` tokens for every row of `input_ids` (EOS ignored)."""

    def compile_report(self) -> CompileReport | None:
        """Warmup's compile time and how torch.compile's cache served it; None for a backend that compiles
        nothing."""
        return None

    def release(self) -> None:
        """Free device memory held by the backend."""
