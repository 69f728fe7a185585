"""Every argument list and keyword set this project passes to TensorRT-LLM, built in one place.

Nothing else spells a TensorRT-LLM flag, keyword or attribute: the stages and backends call these
functions, and a test calls them for each supported version band and checks every name against the
API contract (tests/data/trtllm-api-contract.json), so a name the contract does not record fails CI.
"""

from __future__ import annotations

import sys
from itertools import chain
from pathlib import Path
from typing import Any

from inference_study.trtllm.settings import EngineProfile, KvCacheRuntime, TrtllmPytorchSettings

TRTLLM_BUILD = "trtllm-build"
KV_CACHE_CONFIG = "tensorrt_llm.llmapi.KvCacheConfig"
SAMPLING_PARAMS = "tensorrt_llm.SamplingParams"
CONVERT_SCRIPT = "convert_checkpoint.py"
CONVERT_ARCH_DIRS = {"llama": "llama", "qwen2": "qwen"}  # examples/ folder of each architecture
REQUEST_OUTPUT_READS = ("outputs",)  # attributes read from what generate_async yields
COMPLETION_OUTPUT_READS = ("token_ids",)  # attributes read from each CompletionOutput
SHUTDOWN_ARGS: dict[str, tuple[None, ...]] = {"__exit__": (None, None, None), "shutdown": ()}
NGRAM_DECODING_CONFIG = "tensorrt_llm.llmapi.NGramDecodingConfig"
SPECULATIVE_LLM_KEYWORD = "speculative_config"
KV_CONNECTOR_CONFIG = "tensorrt_llm.llmapi.llm_args.KvCacheConnectorConfig"
# Read after a request finishes: CompletionOutput.request_perf_metrics.speculative_decoding.<counter>
# (filled when SamplingParams(return_perf_metrics=True)); 1.2.x records them, main-2026 is read at 1.2.x.
PERF_METRICS_READ = "request_perf_metrics"
SPECULATIVE_METRICS_GROUP = "speculative_decoding"
SPECULATIVE_COUNTER_READS = ("total_draft_tokens", "total_accepted_draft_tokens")
# Per-request KV reuse counters (multiround): CompletionOutput.request_perf_metrics.kv_cache_metrics.<counter>
# (filled when SamplingParams(return_perf_metrics=True)); recorded at 1.2.x, read at 1.2.x for main-2026.
KV_CACHE_METRICS_GROUP = "kv_cache_metrics"
KV_CACHE_COUNTER_READS = ("num_reused_blocks", "num_missed_blocks")
# Iteration stats (kv_offload): LLM.get_stats_async() -> an async iterable of one dict per iteration; its
# kvCacheStats counters are cumulative over the LLM's life (1.x; 0.15 has only the private _get_stats), so a
# phase's count is a difference. The async form, drained on the backend's own event loop: the executor creates
# its IterationResult on the first submit, inside that loop, where its queue is an AsyncQueue whose sync side
# cannot be read (tensorrt_llm/executor/result.py IterationResult, stored version 005bc848; executor.py
# get_stats/aget_stats), so the sync get_stats() fails once a request has run.
STATS_METHOD = "get_stats_async"
KV_CACHE_STATS_KEY = "kvCacheStats"
KV_CACHE_STATS_READS = ("reusedBlocks", "missedBlocks")
KV_STATS_SAMPLED_FROM = (1, 3)
# The connector's base classes where 1.2.x keeps them (main-2026 moved them to pyexecutor/connectors/ and
# added abstract methods whose signatures the contract does not record, so the variant stops before 1.3).
KV_CONNECTOR_BASE_MODULE = "tensorrt_llm._torch.pyexecutor.kv_cache_connector"
KV_CONNECTOR_SCHEDULER_BASE, KV_CONNECTOR_WORKER_BASE = "KvCacheConnectorScheduler", "KvCacheConnectorWorker"
KV_CONNECTOR_LLM_ARGS_READS = ("kv_cache_config",)
# A contiguous-KV engine cannot run on the LLM API: it always builds an in-flight-batching executor
# (llmapi/llm.py _TrtLLM: `batching_type=... or tllm.BatchingType.INFLIGHT`), and TrtGptModelInflightBatching
# refuses an engine without paged KV (cpp/tensorrt_llm/batch_manager/trtGptModelInflightBatching.cpp, stored
# version 00825c4e). The Python session runtime runs it (runtime/model_runner.py, stored version 0243026f):
# `ModelRunner.from_dir(engine_dir, rank)`, then `generate(batch_input_ids, streaming=True, **SamplingConfig
# fields)`, which yields after every step a dict of `output_ids` [batch, beam, len] and `sequence_lengths`
# [batch, beam], both counting the prompt (examples/run.py reads them so).
SESSION_RUNNER = "tensorrt_llm.runtime.ModelRunner"
SESSION_LOAD_METHOD = "from_dir"
SESSION_OUTPUT_READS = ("output_ids", "sequence_lengths")  # the connector reads llm_args.kv_cache_config.tokens_per_block
KV_CACHE_CONFIG_READS = ("tokens_per_block",)
# What our connector reads from the objects TensorRT-LLM hands it (SchedulerOutput, its RequestData, a request).
SCHEDULER_OUTPUT_READS = ("new_requests",)
REQUEST_DATA_READS = ("request_id", "new_tokens", "new_block_ids", "computed_position")
# The LlmRequest the scheduler is asked about: not in the contract; the names are those NVIDIA's own
# examples/llm-api/llm_kv_cache_connector.py uses (request.request_id, request.get_tokens(0)).
LLM_REQUEST_READS = ("request_id", "get_tokens")


def _enable(on: bool) -> str:
    return "enable" if on else "disable"


def convert_argv(script: Path, model_dir: Path, output_dir: Path, dtype: str, tp_size: int) -> list[str]:
    """`convert_checkpoint.py`: HF directory → TensorRT-LLM checkpoint in `dtype`, split `tp_size` ways."""
    flags = {"--model_dir": str(model_dir), "--output_dir": str(output_dir), "--dtype": dtype,
             "--tp_size": str(tp_size)}
    return [sys.executable, str(script), *chain.from_iterable(flags.items())]


def build_argv(checkpoint_dir: Path, engine_dir: Path, profile: EngineProfile) -> list[str]:
    """`trtllm-build` for one engine profile; paged KV is chosen with `--kv_cache_type` (0.15 on)."""
    flags = {
        "--checkpoint_dir": str(checkpoint_dir),
        "--output_dir": str(engine_dir),
        "--max_batch_size": str(profile.max_batch_size),
        "--max_input_len": str(profile.max_input_len),
        "--max_seq_len": str(profile.max_seq_len),
        "--max_num_tokens": str(profile.max_num_tokens),
        "--gemm_plugin": profile.gemm_plugin,
        "--gpt_attention_plugin": profile.gpt_attention_plugin,
        "--context_fmha": _enable(profile.context_fmha),
        "--kv_cache_type": "paged" if profile.paged_kv_cache else "continuous",
        "--use_paged_context_fmha": _enable(profile.use_paged_context_fmha),
    }
    return [TRTLLM_BUILD, *chain.from_iterable(flags.items())]


def session_load_kwargs(engine_dir: Path) -> dict[str, Any]:
    """`ModelRunner.from_dir`: the engine of rank 0 (the study builds single-rank engines)."""
    return {"engine_dir": str(engine_dir), "rank": 0}


def session_generate_kwargs(batch_input_ids: list[object], output_len: int, end_id: int, pad_id: int
                            ) -> dict[str, Any]:
    """`ModelRunner.generate`, streamed: exactly `output_len` tokens per row (`min_length` keeps EOS from ending a
    row early; greedy is SamplingConfig's default top_k=1), with the lengths that say how many arrived per step."""
    return {"batch_input_ids": batch_input_ids, "max_new_tokens": output_len, "min_length": output_len,
            "end_id": end_id, "pad_id": pad_id, "streaming": True, "return_dict": True,
            "output_sequence_lengths": True}


def kv_cache_kwargs(kv_cache: KvCacheRuntime) -> dict[str, Any]:
    """`KvCacheConfig` keywords: both pinned, because their defaults differ across versions."""
    return {"free_gpu_memory_fraction": kv_cache.free_gpu_memory_fraction,
            "enable_block_reuse": kv_cache.enable_block_reuse}


def block_reuse_kv_cache_kwargs(block_reuse: bool, max_tokens: int, tokens_per_block: int, host_cache_bytes: int,
                                free_gpu_memory_fraction: float) -> dict[str, Any]:
    """`KvCacheConfig` of one arm of the multiround and kv_offload scenarios: a device pool of `max_tokens`
    (running requests and reusable blocks share it), blocks of `tokens_per_block`, reuse on or off, and a
    host tier of `host_cache_bytes` (0: evicted blocks are dropped). Reuse and the fraction are pinned:
    their defaults differ across versions."""
    return {"enable_block_reuse": block_reuse, "max_tokens": max_tokens, "tokens_per_block": tokens_per_block,
            "host_cache_size": host_cache_bytes, "free_gpu_memory_fraction": free_gpu_memory_fraction}


def iteration_stats_llm_kwargs() -> dict[str, Any]:
    """The `LLM` keyword without which the PyTorch backend's `get_stats()` returns nothing."""
    return {"enable_iter_perf_stats": True}


def iteration_stats_kv_cache_kwargs(release: tuple[int, int]) -> dict[str, Any]:
    """`KvCacheConfig` keywords that make every iteration's stats carry the KV counters: from 1.3 (main-2026,
    PR #18943) they are sampled every 10 iterations unless `iteration_stats_interval=1`; before, always."""
    return {"iteration_stats_interval": 1} if release >= KV_STATS_SAMPLED_FROM else {}


def get_stats_kwargs() -> dict[str, Any]:
    """`LLM.get_stats`: drain the iteration stats queued so far, waiting at most 2 s for them."""
    return {"timeout": 2}


def engine_llm_kwargs(engine_dir: Path, tensor_parallel_size: int, kv_cache_config: object) -> dict[str, Any]:
    """The TensorRT-engine `LLM` over a built engine, with the ranks it was built for; prompts arrive as token
    ids, so no tokenizer."""
    return {"model": str(engine_dir), "tensor_parallel_size": tensor_parallel_size, "skip_tokenizer_init": True,
            "kv_cache_config": kv_cache_config}


def pytorch_llm_kwargs(model_dir: Path, dtype: str, settings: TrtllmPytorchSettings,
                       kv_cache_config: object) -> dict[str, Any]:
    """The LLM API's PyTorch backend over the HF directory, with the shape limits the sweep needs."""
    return {
        "model": str(model_dir),
        "dtype": dtype,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "skip_tokenizer_init": True,
        "max_batch_size": settings.max_batch_size,
        "max_input_len": settings.max_input_len,
        "max_seq_len": settings.max_seq_len,
        "max_num_tokens": settings.max_num_tokens,
        "kv_cache_config": kv_cache_config,
    }


def sampling_kwargs(output_len: int, end_id: int, pad_id: int, perf_metrics: bool = False) -> dict[str, Any]:
    """Greedy (no sampling knob given), exactly `output_len` tokens (EOS ignored), token ids out; with
    `perf_metrics`, each request also reports its speculative-decoding counters."""
    kwargs = {"max_tokens": output_len, "ignore_eos": True, "end_id": end_id, "pad_id": pad_id, "detokenize": False}
    return kwargs | ({"return_perf_metrics": True} if perf_metrics else {})


def ngram_decoding_kwargs(draft_len: int, ngram_size: int) -> dict[str, Any]:
    """`NGramDecodingConfig`: prompt lookup with `draft_len` drafts matched on up to `ngram_size` tokens.

    The pool flags are pinned because their defaults may move: each request looks up only its own tokens
    (`is_public_pool=False`, as transformers' prompt lookup does), keeps every match (`is_keep_all`) and
    proposes the oldest one (`is_use_oldest`)."""
    return {"max_draft_len": draft_len, "max_matching_ngram_size": ngram_size, "is_keep_all": True,
            "is_use_oldest": True, "is_public_pool": False}


def kv_connector_kwargs() -> dict[str, Any]:
    """`KvCacheConnectorConfig`: TensorRT-LLM imports our module and instantiates these classes by name."""
    return {"connector_module": "inference_study.trtllm.kv_connector",
            "connector_scheduler_class": "PrefixHashScheduler", "connector_worker_class": "PrefixHashWorker"}


LlmExtras = dict[str, tuple[str, dict[str, Any]]]  # LLM keyword → (config class path, its keywords)


def ngram_llm_extras(draft_len: int, ngram_size: int) -> LlmExtras:
    """The `LLM` keyword that turns on n-gram speculation (PyTorch backend only)."""
    return {SPECULATIVE_LLM_KEYWORD: (NGRAM_DECODING_CONFIG, ngram_decoding_kwargs(draft_len, ngram_size))}


def kv_connector_llm_extras() -> LlmExtras:
    """The `LLM` keyword that plugs our prefix-hash KV cache connector in (PyTorch backend, 1.1 on)."""
    return {"kv_connector_config": (KV_CONNECTOR_CONFIG, kv_connector_kwargs())}


def kv_connector_llm_kwargs() -> dict[str, Any]:
    """Plain `LLM` keywords the connector needs: CUDA graphs off, since they are on by default in 1.x and the
    PyTorch executor refuses a connector with them (`NotImplementedError("CUDA graphs are not supported with KV
    connector hooks.")`, _torch/pyexecutor/py_executor_creator.py, stored version bab0f2e6); NVIDIA's
    examples/llm-api/llm_kv_cache_connector.py passes the same."""
    return {"cuda_graph_config": None}


def generate_async_kwargs(prompt: list[int], sampling_params: object) -> dict[str, Any]:
    """One streamed request: every new token reaches the host as its own update, with its own timestamp."""
    return {"inputs": prompt, "sampling_params": sampling_params, "streaming": True}
