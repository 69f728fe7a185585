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


def kv_cache_kwargs(kv_cache: KvCacheRuntime) -> dict[str, Any]:
    """`KvCacheConfig` keywords: both pinned, because their defaults differ across versions."""
    return {"free_gpu_memory_fraction": kv_cache.free_gpu_memory_fraction,
            "enable_block_reuse": kv_cache.enable_block_reuse}


def engine_llm_kwargs(engine_dir: Path, kv_cache_config: object) -> dict[str, Any]:
    """The TensorRT-engine `LLM` over a built engine; prompts arrive as token ids, so no tokenizer."""
    return {"model": str(engine_dir), "skip_tokenizer_init": True, "kv_cache_config": kv_cache_config}


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


def sampling_kwargs(output_len: int, end_id: int, pad_id: int) -> dict[str, Any]:
    """Greedy (no sampling knob given), exactly `output_len` tokens (EOS ignored), token ids out."""
    return {"max_tokens": output_len, "ignore_eos": True, "end_id": end_id, "pad_id": pad_id,
            "detokenize": False}


def generate_async_kwargs(prompt: list[int], sampling_params: object) -> dict[str, Any]:
    """One streamed request: every new token reaches the host as its own update, with its own timestamp."""
    return {"inputs": prompt, "sampling_params": sampling_params, "streaming": True}
