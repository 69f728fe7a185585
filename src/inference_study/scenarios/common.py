"""What the PyTorch scenarios share: a loaded model with the study's greedy settings, and exact counters."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers.generation.streamers import BaseStreamer

from inference_study.backends.hf.generate import HfEager, synchronize
from inference_study.backends.hf.settings import HfEagerSettings
from inference_study.scenarios.records import Divergence


def load_eager(model_dir: Path, dtype: str, device: str) -> HfEager:
    """The hf_eager backend, loaded: scenarios change one thing against the study's plain baseline."""
    backend = HfEager(HfEagerSettings(), model_dir, dtype, device)
    backend.load()
    return backend


@dataclass
class StepRecorder(BaseStreamer):
    """Host time and size of each decode step's tokens (transformers puts the prompt first, then one
    tensor per step: one token, or the accepted drafts plus one under prompt lookup)."""

    times: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    _prompt_seen: bool = False

    def put(self, value: torch.Tensor) -> None:
        if self._prompt_seen:
            self.times.append(time.perf_counter())
            self.sizes.append(value.numel())
        self._prompt_seen = True

    def end(self) -> None:
        """Nothing to flush: each step was recorded in `put`."""


@contextmanager
def forward_lengths(model: torch.nn.Module) -> Iterator[list[int]]:
    """Tokens fed to each forward pass of `model`, seen at its input embedding (prefill, then steps)."""
    lengths: list[int] = []
    handle = model.get_input_embeddings().register_forward_hook(
        lambda module, args, output: lengths.append(args[0].shape[-1])
    )
    try:
        yield lengths
    finally:
        handle.remove()


@dataclass(frozen=True)
class Run:
    """One greedy generate call of batch 1: its new tokens, timings and counters."""

    output_ids: list[int]
    elapsed_s: float
    ttft_s: float
    step_sizes: list[int]
    forward_lengths: list[int]


@torch.inference_mode()
def greedy_run(
    backend: HfEager, prompt: list[int], output_len: int, past_key_values: Any = None, **generation: Any
) -> Run:
    """Generate exactly `output_len` greedy tokens after `prompt`, timed like the harness times a request;
    `generation` sets fields of the study's greedy generation config (e.g. prompt lookup)."""
    ids = torch.tensor([prompt], dtype=torch.long, device=backend.device)
    config = backend.generation_config(len(prompt), output_len)
    config.update(**generation)
    streamer = StepRecorder()
    with forward_lengths(backend.model) as lengths:
        synchronize(backend.device)
        start = time.perf_counter()
        output = backend.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            generation_config=config,
            streamer=streamer,
            past_key_values=past_key_values,
        )
        synchronize(backend.device)
        elapsed = time.perf_counter() - start
    return Run(
        output_ids=output[0, len(prompt) :].tolist(),
        elapsed_s=elapsed,
        ttft_s=streamer.times[0] - start,
        step_sizes=streamer.sizes,
        forward_lengths=list(lengths),
    )


def repeated(run: Callable[[], Run], warmup: int, iterations: int) -> list[Run]:
    """Warm up, then time `iterations` runs; every run's counters are kept, so tests can compare them."""
    for _ in range(warmup):
        run()
    return [run() for _ in range(iterations)]


ULPS_OF_NOISE = 10


@torch.inference_mode()
def divergence(
    backend: HfEager, what: str, prompt: list[int], reference: list[int], candidate: list[int]
) -> Divergence | None:
    """None when `candidate` equals `reference`; else how far the reference model prefers its own token over
    the candidate's at the first difference. A gap within a few units in the last place of the dtype is an
    argmax flip between tied logits, which a lossless feature's different kernel shapes may cause."""
    position = next((i for i, (a, b) in enumerate(zip(reference, candidate)) if a != b), None)
    if position is None:
        return None
    ids = torch.tensor([prompt + reference[:position]], dtype=torch.long, device=backend.device)
    logits = backend.model(input_ids=ids, logits_to_keep=1).logits[0, -1].float()
    gap = float(logits[reference[position]] - logits[candidate[position]])
    tolerance = ULPS_OF_NOISE * torch.finfo(backend.model.dtype).eps * float(logits.abs().max())
    return Divergence(what=what, position=position, logit_gap=gap, tolerance=tolerance, within_noise=gap <= tolerance)
