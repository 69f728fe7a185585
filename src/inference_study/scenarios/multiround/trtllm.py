"""The TensorRT-LLM variant of multiround (the multi-round chat benchmark): the same users, rounds and requests through the LLM
API's PyTorch backend, one `LLM` per arm, each with its own `KvCacheConfig`:

* `no_reuse`: `enable_block_reuse=False`;
* `reuse_gpu_only`: `enable_block_reuse=True, host_cache_size=0`;
* `reuse_host_offload`: `enable_block_reuse=True, host_cache_size=host_cache_tokens x KV bytes per token`;

all with `max_tokens=gpu_kv_tokens` and `tokens_per_block`, built by `trtllm.calls.block_reuse_kv_cache_kwargs`
(whose names the contract test checks per version). Requests go one at a time, as the hf arms do, and the arms
of a user count round-robin under the stopping rule (each pass loads its own `LLM`; E2E counts the rounds only,
never a load). TTFT is the
first streamed token's arrival; the reuse counters are each request's
`request_perf_metrics.kv_cache_metrics` (reused blocks x tokens per block), null with the reason where the
version reports none. Which tier a reused block came from is not reported per request, so that is null.

Nothing here runs without an installed TensorRT-LLM: the stage preflight refuses the study first, and
results.py refuses a TensorRT-LLM row from a stand-in, so no TensorRT-LLM number exists unless measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from inference_study.backends.trtllm.backend import TrtllmPytorch
from inference_study.harness import DTYPE_BYTES
from inference_study.models import model_geometry
from inference_study.results import ModelGeometry
from inference_study.scenarios.multiround.record import MultiroundRow
from inference_study.scenarios.multiround.run import Request, Served, Workload, serve_rounds, sweep
from inference_study.scenarios.multiround.settings import MultiroundArm, MultiroundSettings
from inference_study.scenarios.timing import Policy
from inference_study.stopping import Stopping
from inference_study.trtllm.calls import block_reuse_kv_cache_kwargs
from inference_study.trtllm.settings import TrtllmPytorchSettings


def arm_kv_cache_kwargs(
    settings: MultiroundSettings, arm: MultiroundArm, kv_bytes_per_token: int, free_gpu_memory_fraction: float
) -> dict[str, object]:
    host_bytes = settings.host_cache_tokens * kv_bytes_per_token if arm == "reuse_host_offload" else 0
    return block_reuse_kv_cache_kwargs(
        arm != "no_reuse", settings.gpu_kv_tokens, settings.tokens_per_block, host_bytes, free_gpu_memory_fraction
    )


def serve_trtllm(backend: TrtllmPytorch, settings: MultiroundSettings, users: int, work: Workload) -> Served:
    """One arm on a loaded `TrtllmPytorch` (`with_kv_cache` set): contexts first (untimed), then the rounds."""
    reasons: list[str] = []

    def serve(prompt: list[int], user: int, round_: int) -> Request:
        generation = backend.generate([prompt], settings.output_len)
        (counters,) = backend.kv_cache
        if counters.null_reason:
            reasons.append(counters.null_reason)
        reused = None if counters.reused_blocks is None else counters.reused_blocks * settings.tokens_per_block
        return Request(
            user=user,
            round=round_,
            prompt_len=len(prompt),
            ttft_s=generation.token_times[0][0] - generation.start,
            output_ids=generation.output_ids[0],
            reused_tokens=reused,
            reused_from=None,
            prefilled_tokens=None if reused is None else len(prompt) - reused,
        )

    for context in work.contexts[:users]:  # the multi-round chat benchmark precomputes each user's context
        backend.generate([context], 1)
    start = time.perf_counter()
    requests = serve_rounds(serve, settings, users, work)
    return Served(requests, time.perf_counter() - start, reasons[0] if reasons else None)


def trtllm_arms(
    settings: MultiroundSettings, pytorch: TrtllmPytorchSettings, model_dir: Path, dtype: str, device: str,
    policy: Policy,
) -> Callable[[Workload], tuple[list[MultiroundRow], bool, dict[str, Stopping]]]:
    """What `run_multiround` calls for the TensorRT-LLM rows: each arm loads its own `LLM` (a fresh pool)."""
    geometry = ModelGeometry(**model_geometry(model_dir, DTYPE_BYTES[dtype]))
    longest = settings.longest_sequence()
    limits = pytorch.fitting(longest - settings.output_len, longest)

    def serve_arm(work: Workload, arm: MultiroundArm, users: int) -> Served:
        keywords = arm_kv_cache_kwargs(settings, arm, geometry.kv_bytes_per_token,
                                       pytorch.kv_cache.free_gpu_memory_fraction)
        backend = TrtllmPytorch(limits, model_dir, dtype, device).with_kv_cache(keywords)
        backend.load()
        try:
            return serve_trtllm(backend, settings, users, work)
        finally:
            backend.release()

    def run(work: Workload) -> tuple[list[MultiroundRow], bool, dict[str, Stopping]]:
        return sweep("trtllm_pytorch", lambda arm, users: serve_arm(work, arm, users), settings, policy.rule)

    return run
