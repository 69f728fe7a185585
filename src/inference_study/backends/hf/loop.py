"""The best PyTorch rung: HF model forward with a static KV cache in a minimal greedy loop.

Changes from `hf_static_compiled`: no `generate` machinery around the model (no logits processors,
stopping criteria or per-step host synchronization), prefill computes logits for the last position
only, and the whole decode step (forward + argmax) is one `torch.compile(mode="reduce-overhead",
fullgraph=True)` graph replayed as a CUDA graph, as gpt-fast does. No custom kernels.
"""

from __future__ import annotations

import time

import torch
from transformers import StaticCache

from inference_study.backend import Generation
from inference_study.backends.hf.generate import HfGenerate, synchronize
from inference_study.backends.hf.settings import HfCompiledLoopSettings


class StepClock:
    """Per-token completion times without synchronizing inside the loop.

    On CUDA each step records an event; after the loop one synchronization turns the events into
    host times (host start + device offset). On a CPU work is synchronous: the host clock is enough.
    """

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.marks: list = []

    def start(self) -> float:
        self.host_start = time.perf_counter()
        if self.cuda:
            self.origin = torch.cuda.Event(enable_timing=True)
            self.origin.record()
        return self.host_start

    def mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def times(self) -> list[float]:
        if not self.cuda:
            return list(self.marks)
        torch.cuda.synchronize()
        return [self.host_start + self.origin.elapsed_time(event) / 1000.0 for event in self.marks]


def _greedy_step(model, cache: StaticCache, token: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=token[:, None], past_key_values=cache, cache_position=position, use_cache=True).logits
    return logits[:, -1].argmax(dim=-1)


class HfCompiledLoop(HfGenerate):
    name = "hf_compiled_loop"
    description = (
        "changes from hf_static_compiled: a minimal greedy loop over the HF model forward instead of "
        "generate, last-position-only prefill logits, and forward + argmax compiled as one CUDA graph"
    )
    settings: HfCompiledLoopSettings
    uses_torch_compile = True

    def load(self) -> None:
        super().load()
        import torch._inductor.config as inductor  # heavy: torch loads only where something runs on a device

        inductor.coordinate_descent_tuning = self.settings.coordinate_descent_tuning
        self._caches: dict[tuple[int, int], StaticCache] = {}
        self._step = torch.compile(_greedy_step, mode=self.settings.compile_mode, fullgraph=True, dynamic=False)

    def _cache(self, batch: int, length: int) -> StaticCache:
        """One cache per shape, reused across calls: the CUDA graph keeps its addresses."""
        key = (batch, length)
        if key not in self._caches:
            self._caches[key] = StaticCache(config=self.model.config, max_cache_len=length)
        cache = self._caches[key]
        cache.reset()
        return cache

    @torch.inference_mode()
    def generate(self, input_ids: list[list[int]], output_len: int) -> Generation:
        ids = torch.tensor(input_ids, dtype=torch.long, device=self.device)
        batch, input_len = ids.shape
        cache = self._cache(batch, input_len + output_len)
        positions = torch.arange(input_len + output_len, device=self.device)
        tokens = torch.empty(batch, output_len, dtype=torch.long, device=self.device)
        clock = StepClock(self.device)
        synchronize(self.device)
        start = clock.start()
        logits = self.model(
            input_ids=ids, past_key_values=cache, cache_position=positions[:input_len], logits_to_keep=1
        ).logits
        token = logits[:, -1].argmax(dim=-1)
        tokens[:, 0] = token
        clock.mark()
        for step in range(1, output_len):
            position = positions[input_len + step - 1 : input_len + step]
            token = self._step(self.model, cache, token, position).clone()
            tokens[:, step] = token
            clock.mark()
        times = clock.times()
        return Generation(output_ids=tokens.tolist(), start=start, token_times=[times] * batch)

    def release(self) -> None:
        self._caches = {}
        super().release()
