"""PyTorch backends built on Hugging Face transformers `generate`."""

from __future__ import annotations

import gc
import importlib.util
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import torch
from transformers import AutoModelForCausalLM, CompileConfig, GenerationConfig, PretrainedConfig
from transformers.generation.streamers import BaseStreamer

from inference_study.backend import Backend, Generation
from inference_study.backends.hf.compile_cache import CompileCache, CompileReport
from inference_study.backends.hf.settings import HfEagerSettings, HfStaticCompiledSettings, HfStaticSettings
from inference_study.strict import ConfigError
from inference_study.tensor_parallel import world_size


class TokenTimestamps(BaseStreamer):
    """Records when each decode step's tokens reach the host, and how many each step produced.

    transformers calls `put` once with the prompt before prefill, then once per step with tokens
    already copied to the host (a blocking copy), so a timestamp here marks a token that exists; no
    extra device synchronization is added inside the timed region. A step produces one token per row,
    or the accepted drafts plus one under prompt lookup.
    """

    def __init__(self) -> None:
        self.times: list[float] = []
        self.sizes: list[int] = []
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if self._prompt_seen:
            self.times.append(time.perf_counter())
            self.sizes.append(value.numel())
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
    from torch._inductor.cpp_builder import (
        get_cpp_compiler,  # heavy: torch loads only where something runs on a device
    )

    try:
        get_cpp_compiler()
    except Exception as error:  # noqa: BLE001 -- Inductor raises its own error types when no compiler is found
        return f"torch.compile on CPU needs a C++ compiler: {type(error).__name__}: {error}"
    return None


@contextmanager
def forward_tokens(model: torch.nn.Module) -> Iterator[list[int]]:
    """Tokens fed to each forward pass of `model`, seen at its input embedding (a public module hook)."""
    lengths: list[int] = []
    handle = model.get_input_embeddings().register_forward_hook(
        lambda module, args, output: lengths.append(args[0].shape[-1])
    )
    try:
        yield lengths
    finally:
        handle.remove()


@dataclass(frozen=True)
class GreedyRun:
    """One greedy `generate` call of batch 1: its new tokens, timings and counters."""

    output_ids: list[int]
    elapsed_s: float
    ttft_s: float
    step_sizes: list[int]
    forward_lengths: list[int]


class HfGenerate(Backend):
    """Shared body of the transformers backends; subclasses only choose the generation config."""

    settings: HfEagerSettings | HfStaticSettings
    uses_torch_compile: ClassVar[bool] = False
    compile_cache: CompileCache | None = None

    @classmethod
    def unavailable_reason(cls, device: str) -> str | None:
        return torch_compile_unavailable(device) if cls.uses_torch_compile else None

    @property
    def compiles(self) -> bool:
        """Whether warmup runs torch.compile, so its cache is opened at load (compile_cache.py)."""
        return self.uses_torch_compile

    def load(self) -> None:
        """The weights on the device; in a rank of a tensor-parallel unit, this rank's shard of them
        (transformers' `tp_plan="auto"` places it on the rank's own device)."""
        if self.compiles:
            self.compile_cache = CompileCache.open()  # before anything compiles in this process
        sharded = world_size() > 1
        model = AutoModelForCausalLM.from_pretrained(
            self.model_dir,
            dtype=getattr(torch, self.dtype),
            attn_implementation=self.settings.attn_implementation,
            local_files_only=True,
            **({"tp_plan": "auto"} if sharded else {}),
        )
        if sharded and getattr(model, "tp_size", None) != world_size():
            raise RuntimeError(f"transformers sharded {self.model_dir.name} over {getattr(model, 'tp_size', None)} "
                               f"ranks, not {world_size()}: its architecture has no tensor-parallel plan here")
        self.model = model if sharded else model.to(self.device)
        self.model.eval()

    def warmup(self, input_ids: list[list[int]], output_len: int) -> None:
        """The base warmup, its compilation counted and cached when this backend compiles."""
        if self.compile_cache is None:
            super().warmup(input_ids, output_len)
        else:
            self.compile_cache.warmup(partial(super().warmup, input_ids, output_len), self.is_out_of_memory)

    def compile_report(self) -> CompileReport | None:
        """Warmup's compile time and whether the cache was warm; None for a backend that compiles nothing."""
        return self.compile_cache.report() if self.compile_cache is not None else None

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
        output, start, streamer = self._timed_generate(ids, self.generation_config(ids.shape[1], output_len))
        generated = output[:, ids.shape[1] :].tolist()
        return Generation(output_ids=generated, start=start, token_times=[streamer.times] * len(generated))

    def _timed_generate(self, ids: torch.Tensor, config: GenerationConfig,
                        **extra: Any) -> tuple[torch.Tensor, float, TokenTimestamps]:
        """One `generate` call from a synchronized device: its output, start time and per-step host times."""
        streamer = TokenTimestamps()
        synchronize(self.device)
        start = time.perf_counter()
        output = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config,
                                     streamer=streamer, **extra)
        return output, start, streamer

    @property
    def model_config(self) -> PretrainedConfig:
        """The loaded model's config (layers, heads), which caches built outside `generate` need."""
        return self.model.config

    @torch.inference_mode()
    def greedy(self, prompt: list[int], output_len: int, past_key_values: Any = None, **generation: Any) -> GreedyRun:
        """Exactly `output_len` greedy tokens after `prompt`, timed like the harness times a request, from a
        cache the caller built (a prefix it kept), with `generation` fields of the greedy config set (e.g.
        prompt lookup): what the scenarios change, through transformers' public `generate`."""
        ids = torch.tensor([prompt], dtype=torch.long, device=self.device)
        config = self.generation_config(len(prompt), output_len)
        config.update(**generation)
        with forward_tokens(self.model) as lengths:
            output, start, streamer = self._timed_generate(ids, config, past_key_values=past_key_values)
            synchronize(self.device)
            elapsed = time.perf_counter() - start
        return GreedyRun(output_ids=output[0, len(prompt):].tolist(), elapsed_s=elapsed,
                         ttft_s=streamer.times[0] - start, step_sizes=streamer.sizes, forward_lengths=list(lengths))

    @torch.inference_mode()
    def prefill(self, ids: list[int], cache: Any) -> None:
        """Run `ids` through the model into `cache` (a prefix computed once and kept)."""
        self.model(input_ids=torch.tensor([ids], device=self.device), past_key_values=cache, use_cache=True)

    @torch.inference_mode()
    def next_token_logits(self, ids: list[int]) -> tuple[torch.Tensor, float]:
        """float32 logits of the token after `ids` (a full prefill), and the dtype's machine epsilon."""
        tensor = torch.tensor([ids], dtype=torch.long, device=self.device)
        logits = self.model(input_ids=tensor, logits_to_keep=1).logits[0, -1].float()
        return logits, torch.finfo(self.model.dtype).eps

    def release(self) -> None:
        self.model = None
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
        if self.compile_cache is not None:
            self.compile_cache.close()


class HfEager(HfGenerate):
    name = "hf_eager"
    description = "HF generate, dynamic KV cache, no compilation: what most people run"


class HfStatic(HfGenerate):
    name = "hf_static"
    description = "changes from hf_eager: a static (pre-allocated) KV cache, nothing compiled"
    settings: HfStaticSettings

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
        config.disable_compile = True  # transformers compiles a static-cache decode step by itself otherwise
        return config


class HfStaticCompiled(HfStatic):
    name = "hf_static_compiled"
    description = "changes from hf_static: torch.compile of the decode step (CUDA graphs on a GPU)"
    settings: HfStaticCompiledSettings
    uses_torch_compile = True

    def generation_config(self, input_len: int, output_len: int) -> GenerationConfig:
        config = super().generation_config(input_len, output_len)
        config.disable_compile = False
        compile_config = CompileConfig(fullgraph=self.settings.fullgraph, mode=self.settings.compile_mode)
        # transformers compiles only on accelerators; this documented testing switch makes the CPU run
        # exercise the same compiled path instead of silently falling back to eager.
        compile_config._compile_all_devices = not self.device.startswith("cuda")
        config.compile_config = compile_config
        return config
