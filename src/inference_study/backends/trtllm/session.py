"""A contiguous-KV TensorRT engine on TensorRT-LLM's Python session runtime (`tensorrt_llm.runtime.ModelRunner`).

The LLM API cannot run such an engine at any version the study supports: it always creates an in-flight-batching
executor, and `TrtGptModelInflightBatching` refuses an engine without paged KV (trtllm/calls.py names the sources).
The session runtime runs it, one whole batch at once, and streams: after every decoding step it yields the
sequence lengths so far, so each token gets the host time at which its step reached the host, on the same clock
and with the same TTFT/TPOT/E2E definitions as every other backend (the harness computes them from `Generation`).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from inference_study.backend import Generation
from inference_study.trtllm.calls import (
    SESSION_LOAD_METHOD,
    SESSION_OUTPUT_READS,
    SESSION_RUNNER,
    session_generate_kwargs,
    session_load_kwargs,
)
from inference_study.trtllm.version import resolve

OUTPUT_IDS, SEQUENCE_LENGTHS = SESSION_OUTPUT_READS


class SessionEngine:
    """One loaded engine on the session runtime; `generate` streams a batch and stamps every token on arrival."""

    def __init__(self, engine_dir: Path):
        self.runner = getattr(resolve(SESSION_RUNNER), SESSION_LOAD_METHOD)(**session_load_kwargs(engine_dir))

    def generate(self, input_ids: list[list[int]], output_len: int, end_id: int, pad_id: int) -> Generation:
        prompts = [torch.tensor(ids, dtype=torch.int32) for ids in input_ids]
        start = time.perf_counter()
        steps = self.runner.generate(**session_generate_kwargs(prompts, output_len, end_id, pad_id))
        times: list[list[float]] = [[] for _ in input_ids]
        step = None
        for step in steps:
            lengths = step[SEQUENCE_LENGTHS].tolist()  # copies to the host: the step's tokens have arrived
            now = time.perf_counter()
            for row, (ids, stamps) in enumerate(zip(input_ids, times)):
                stamps.extend([now] * (lengths[row][0] - len(ids) - len(stamps)))
        if step is None:
            raise RuntimeError(f"{SESSION_RUNNER}.generate streamed no step for a batch of {len(input_ids)}")
        output_ids = step[OUTPUT_IDS].tolist()
        produced = [output_ids[row][0][len(ids):len(ids) + len(stamps)]
                    for row, (ids, stamps) in enumerate(zip(input_ids, times))]
        return Generation(output_ids=produced, start=start, token_times=times)

    def release(self) -> None:
        """The runner has no shutdown; dropping it frees the engine and its KV buffers with the session."""
        self.runner = None
