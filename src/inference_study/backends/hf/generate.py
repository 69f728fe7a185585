"""PyTorch backends built on Hugging Face transformers `generate`."""

from __future__ import annotations

import gc
import importlib.util
import time
from typing import ClassVar

import torch
from transformers import AutoModelForCausalLM, CompileConfig, GenerationConfig
from transformers.generation.streamers import BaseStreamer

from inference_study.backend import Backend, Generation
from inference_study.backends.hf.settings import HfEagerSettings, HfStaticCompiledSettings
from inference_study.strict import ConfigError


class TokenTimestamps(BaseStreamer):
    """Records when each decode step's tokens reach the host.

    transformers calls `put` once with the prompt before prefill, then once per step with tokens
    already copied to the host (a blocking copy), so a timestamp here marks a token that exists; no
    extra device synchronization is added inside the timed region.
    """

    def __init__(self) -> None:
        self.times: list[float] = []
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if self._prompt_seen:
            self.times.append(time.perf_counter())
        self._prompt_seen = True

    def end(self) -> None:
        """Nothing to flush: the last token's time was taken in `put`."""


def synchronize(device: str) -> None:
    """Wait for queued device work, so host clocks bracket real completion (outside timed regions)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def torch_compile_unavailable(device: str) -> str | None:
    """torch.compile (Inductor) generates Triton kernels on a GPU and C++ on a CPU: is the tool there?"""
    if device.startswith("cuda"):
        return None if importlib.util.find_spec("triton") else "torch.compile on CUDA needs the triton package"
    from torch._inductor.cpp_builder import get_cpp_compiler  # heavy: torch loads only where something runs on a device

    try:
        get_cpp_compiler()
    except Exception as error:  # Inductor raises its own error types when no compiler is found
        return f"torch.compile on CPU needs a C++ compiler: {type(error).__name__}: {error}"
    return None


class HfGenerate(Backend):
    """Shared body of the transformers backends; subclasses only choose the generation config."""

    settings: HfEagerSettings | HfStaticCompiledSettings
    uses_torch_compile: ClassVar[bool] = False

    @classmethod
    def unavailable_reason(cls, device: str) -> str | None:
        return torch_compile_unavailable(device) if cls.uses_torch_compile else None

    def load(self) -> None:
        self.model = AutoModelForCausalLM.from_pretrained(
            self.model_dir,
            dtype=getattr(torch, self.dtype),
            attn_implementation=self.settings.attn_implementation,
            local_files_only=True,
        ).to(self.device)
        self.model.eval()

    def generation_config(self, input_len: int, output_len: int) -> GenerationConfig:
        """Greedy decoding of exactly `output_len` tokens: EOS is ignored, as trtllm-bench does."""
        return GenerationConfig(
            max_new_tokens=output_len,
            min_new_tokens=output_len,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=self.model.config.pad_token_id or 0,
        )

    @torch.inference_mode()
    def generate(self, input_ids: list[list[int]], output_len: int) -> Generation:
        ids = torch.tensor(input_ids, dtype=torch.long, device=self.device)
        config = self.generation_config(ids.shape[1], output_len)
        streamer = TokenTimestamps()
        synchronize(self.device)
        start = time.perf_counter()
        output = self.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config, streamer=streamer
        )
        generated = output[:, ids.shape[1] :].tolist()
        return Generation(output_ids=generated, start=start, token_times=[streamer.times] * len(generated))

    def release(self) -> None:
        self.model = None
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


class HfEager(HfGenerate):
    name = "hf_eager"
    description = "HF generate, dynamic KV cache, no compilation: what most people run"


class HfStaticCompiled(HfGenerate):
    name = "hf_static_compiled"
    description = (
        "changes from hf_eager: a static (pre-allocated) KV cache and torch.compile of the decode step"
    )
    settings: HfStaticCompiledSettings
    uses_torch_compile = True

    def generation_config(self, input_len: int, output_len: int) -> GenerationConfig:
        config = super().generation_config(input_len, output_len)
        config.cache_implementation = "static"
        needed = input_len + output_len
        length = self.settings.max_cache_len or needed
        if length < needed:
            raise ConfigError(
                f"backends.{self.name}.max_cache_len: {length} is shorter than "
                f"input {input_len} + output {output_len}; allowed: null or >= {needed}"
            )
        config.max_cache_len = length
        compile_config = CompileConfig(fullgraph=self.settings.fullgraph, mode=self.settings.compile_mode)
        # transformers compiles only on accelerators; this documented testing switch makes the CPU run
        # exercise the same compiled path instead of silently falling back to eager.
        compile_config._compile_all_devices = not self.device.startswith("cuda")
        config.compile_config = compile_config
        return config
