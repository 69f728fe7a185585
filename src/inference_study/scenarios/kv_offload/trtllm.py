"""The TensorRT-LLM variant of kv_offload (the KV host-offload benchmarks): A,B,A,B at batch 1 through the LLM API's
PyTorch backend, one `LLM` per arm, each with `KvCacheConfig(enable_block_reuse=True, max_tokens=gpu_pool_tokens,
tokens_per_block, host_cache_size)`: 0 bytes without a host cache, `host_cache_tokens` x KV bytes per token with
it (built by `trtllm.calls.block_reuse_kv_cache_kwargs`, whose names the contract test checks per version).

This is the benchmarks' own experiment, so nothing is emulated: B's allocation evicts A's reusable blocks from the
device pool, to the host tier when there is one. Reused blocks come from the iteration stats
(`enable_iter_perf_stats`, `LLM.get_stats_async()` drained on the backend's event loop): the KV cache manager's
`reusedBlocks` / `missedBlocks` are cumulative, so each request's count is their difference around it and warmup
never counts. An `LLM` keeps its
pool between sequences, so each sequence (warmup or timed) sends its own A,B pair; both arms send the same pairs.
The arms cannot run round-robin (each holds its own `LLM` and pool), so each is its own timed loop under the
stopping rule, one after the other. TTFT is the first streamed token's arrival. Which tier a reused block came
from is not reported, so it is null.

Nothing here runs without an installed TensorRT-LLM: the stage preflight refuses the study first, and
results.py refuses a TensorRT-LLM row from a stand-in, so no TensorRT-LLM number exists unless measured.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import count
from pathlib import Path

from inference_study.backends.trtllm.backend import TrtllmPytorch
from inference_study.harness import DTYPE_BYTES
from inference_study.models import model_geometry
from inference_study.results import ModelGeometry
from inference_study.scenarios.kv_offload.record import ARM, KvOffloadRow, headline
from inference_study.scenarios.kv_offload.run import SEQUENCE, Request, prompt_pair, rows, sequence_work_s
from inference_study.scenarios.kv_offload.settings import KvOffloadSettings
from inference_study.scenarios.timing import Policy, Repeats, converge
from inference_study.stopping import Stopping
from inference_study.trtllm.calls import block_reuse_kv_cache_kwargs
from inference_study.trtllm.settings import TrtllmPytorchSettings
from inference_study.uncertainty import Interval


def arm_kv_cache_kwargs(
    settings: KvOffloadSettings, host_cache: bool, kv_bytes_per_token: int, free_gpu_memory_fraction: float
) -> dict[str, object]:
    host_bytes = settings.host_cache_tokens * kv_bytes_per_token if host_cache else 0
    return block_reuse_kv_cache_kwargs(
        True, settings.gpu_pool_tokens, settings.tokens_per_block, host_bytes, free_gpu_memory_fraction
    )


def serve_sequence(backend: TrtllmPytorch, settings: KvOffloadSettings, prompts: dict[str, list[int]]) -> list[Request]:
    """A,B,A,B one at a time on a loaded backend (`with_iteration_stats` set), counters differenced per request."""
    served = []
    for name, _ in SEQUENCE:
        before = backend.read_kv_totals()
        generation = backend.generate([prompts[name]], settings.output_len)
        after = backend.read_kv_totals()
        reused = looked_up = None
        if after.null_reason is None:
            reused = after.reused_blocks - (before.reused_blocks or 0)
            looked_up = reused + after.missed_blocks - (before.missed_blocks or 0)
        served.append(Request(ttft_s=generation.token_times[0][0] - generation.start,
                              work_s=generation.token_times[0][-1] - generation.start, prompt_blocks=looked_up,
                              reused_blocks=reused, reused_from=None, prefilled_tokens=None,
                              output_ids=generation.output_ids[0]))
    return served


def trtllm_arms(
    settings: KvOffloadSettings, pytorch: TrtllmPytorchSettings, model_dir: Path, dtype: str, device: str,
    policy: Policy,
) -> Callable[[int, int], tuple[list[KvOffloadRow], dict[str, Stopping]]]:
    """What `run_kv_offload` calls for the TensorRT-LLM rows and loops, given the vocabulary size and the seed."""
    kv_bytes_per_token = ModelGeometry(**model_geometry(model_dir, DTYPE_BYTES[dtype])).kv_bytes_per_token
    limits = pytorch.fitting(settings.prompt_len, settings.longest_sequence())

    def timed_arm(backend: TrtllmPytorch, host_cache: bool, vocab_size: int,
                  seed: int) -> Repeats[bool, list[Request]]:
        """One arm's loop on its loaded `LLM`: each sequence (warmup included) sends the next A,B pair, so both
        arms send the same pairs in the same order."""
        pairs = count()

        def sequence() -> list[Request]:
            return serve_sequence(backend, settings, prompt_pair(settings, vocab_size, seed, next(pairs)))

        def arm_headline(runs: dict[bool, list[list[Request]]]) -> dict[str, Interval]:
            return headline(rows(settings, "trtllm_pytorch", host_cache, runs[host_cache]))

        return converge({host_cache: sequence}, warmup=settings.warmup_iterations, rule=policy.rule,
                        work_s=sequence_work_s, requests=len, headline=arm_headline)

    def run(vocab_size: int, seed: int) -> tuple[list[KvOffloadRow], dict[str, Stopping]]:
        measured, stopping = [], {}
        for host_cache in (False, True):
            keywords = arm_kv_cache_kwargs(settings, host_cache, kv_bytes_per_token,
                                           pytorch.kv_cache.free_gpu_memory_fraction)
            backend = TrtllmPytorch(limits, model_dir, dtype, device).with_kv_cache(keywords).with_iteration_stats()
            backend.load()
            try:
                repeats = timed_arm(backend, host_cache, vocab_size, seed)
            finally:
                backend.release()
            measured += rows(settings, "trtllm_pytorch", host_cache, repeats.runs[host_cache],
                             backend.kv_totals.null_reason)
            stopping[f"trtllm_pytorch, {ARM[host_cache]}"] = repeats.stopping
        return measured, stopping

    return run
