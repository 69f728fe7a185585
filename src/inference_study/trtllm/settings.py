"""Typed `trtllm` section of params.yaml and the settings of the two TensorRT-LLM backends (no torch here).

An empty `trtllm.models` and `trtllm.pytorch_models` (the default) keeps every TensorRT-LLM stage out
of the DVC graph: their matrices expand to nothing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from inference_study.backend import BackendSettings
from inference_study.strict import PositiveInt, Strict, UniqueNames

PluginDtype = Literal["auto", "float16", "bfloat16", "float32", "disable"]
DEFAULT_EXAMPLES_DIR = "/app/tensorrt_llm/examples"  # where NVIDIA's release container installs them


class EngineProfile(Strict):
    """The `trtllm-build` settings of one engine; each profile is its own DVC stage and engine."""

    purpose: Literal["latency", "throughput"] = Field(
        description="latency engines serve one request at a time; throughput engines the largest swept batch"
    )
    max_batch_size: PositiveInt
    max_input_len: PositiveInt
    max_seq_len: PositiveInt
    max_num_tokens: PositiveInt
    gemm_plugin: PluginDtype = "auto"
    gpt_attention_plugin: PluginDtype = "auto"
    context_fmha: bool = True
    paged_kv_cache: bool = True
    use_paged_context_fmha: bool = False

    @model_validator(mode="after")
    def _coherent(self) -> EngineProfile:
        if self.purpose == "latency" and self.max_batch_size != 1:
            raise ValueError(f"max_batch_size: a latency engine serves one request (got {self.max_batch_size}); allowed: 1")
        if self.max_seq_len <= self.max_input_len:
            raise ValueError(f"max_seq_len: {self.max_seq_len} leaves no room to generate after "
                             f"max_input_len={self.max_input_len}; allowed: > {self.max_input_len}")
        if self.max_num_tokens < self.max_input_len:
            raise ValueError(f"max_num_tokens: {self.max_num_tokens} cannot hold one prompt of "
                             f"max_input_len={self.max_input_len}; allowed: >= {self.max_input_len}")
        if self.use_paged_context_fmha and not self.paged_kv_cache:
            raise ValueError("use_paged_context_fmha: needs paged_kv_cache: true; allowed with paged KV off: false")
        if self.use_paged_context_fmha and not self.context_fmha:
            raise ValueError("use_paged_context_fmha: needs context_fmha: true")
        return self


class KvCacheRuntime(Strict):
    """Runtime KV-cache knobs, pinned so arms are comparable (TensorRT-LLM pitfalls 4 and 5)."""

    free_gpu_memory_fraction: float = Field(default=0.9, gt=0, le=1)
    enable_block_reuse: bool = Field(
        default=False, description="off: every timed iteration repeats the same prompts, reuse would skip prefill"
    )


class ConvertSettings(Strict):
    tp_size: PositiveInt = Field(default=1, description="old params only: the model's tensor_parallel splits it")
    examples_dir: str = Field(
        default=DEFAULT_EXAMPLES_DIR,
        description="a TensorRT-LLM examples/ folder of the installed version (convert_checkpoint.py lives there)",
    )


class TrtllmEngineSettings(BackendSettings):
    """One engine profile measured through the version's TensorRT-engine `LLM`."""

    profile: str
    build: EngineProfile
    kv_cache: KvCacheRuntime = KvCacheRuntime()
    engine_dir: str = Field(description="the engine the trtllm_build stage built for this model and profile")
    tensor_parallel_size: PositiveInt = Field(default=1, description="the model's tensor_parallel: its ranks")


class TrtllmPytorchSettings(BackendSettings):
    """The LLM API's PyTorch backend (1.x default `tensorrt_llm.LLM`): loads the HF directory, no engine."""

    tensor_parallel_size: PositiveInt = Field(default=1, description="the model's tensor_parallel, set per unit")
    max_batch_size: PositiveInt = 32
    max_input_len: PositiveInt = Field(default=2048, description="the LLM API's own default is 1024")
    max_seq_len: PositiveInt = 2176
    max_num_tokens: PositiveInt = 8192
    kv_cache: KvCacheRuntime = KvCacheRuntime()

    def fitting(self, prompt_len: int, sequence_len: int) -> TrtllmPytorchSettings:
        """These limits, raised where a scenario's longest prompt or sequence needs more."""
        return self.model_copy(update={
            "max_input_len": max(self.max_input_len, prompt_len),
            "max_seq_len": max(self.max_seq_len, sequence_len),
            "max_num_tokens": max(self.max_num_tokens, prompt_len),
        })


class TrtllmSection(Strict):
    """Which models run through TensorRT-LLM, with which engine profiles, and how."""

    models: UniqueNames = Field(default_factory=list, description="engine flow: convert, build, measure")
    engines: UniqueNames = Field(default_factory=list, description="profiles built and measured per model")
    pytorch_models: UniqueNames = Field(default_factory=list, description="measured with trtllm_pytorch")
    profiles: dict[str, EngineProfile] = Field(default_factory=dict)
    convert: ConvertSettings = ConvertSettings()
    kv_cache: KvCacheRuntime = KvCacheRuntime()
    pytorch: TrtllmPytorchSettings = TrtllmPytorchSettings()

    @model_validator(mode="after")
    def _engines_are_profiles(self) -> TrtllmSection:
        unknown = [name for name in self.engines if name not in self.profiles]
        if unknown:
            raise ValueError(f"engines: unknown profile(s) {unknown}; allowed: {sorted(self.profiles)}")
        return self

    @property
    def enabled_flows(self) -> list[str]:
        """The TensorRT-LLM flows this study runs: `engine`, `pytorch`, both or none."""
        return [flow for flow, on in (("engine", bool(self.models)), ("pytorch", bool(self.pytorch_models))) if on]

    def sweep_errors(self, batch_sizes: list[int], input_lens: list[int], output_lens: list[int]) -> list[str]:
        """Engine profiles and PyTorch-backend limits too small for the swept shapes, as `key: problem` lines.

        A paged latency engine is exempt from the batch check: larger batches queue on its in-flight executor,
        which is what it measures. A contiguous-KV engine runs on the Python session runtime, which takes one
        batch at once and queues nothing, so it must hold the largest swept batch whatever its purpose.
        """
        limits: list[tuple[str, EngineProfile | TrtllmPytorchSettings, bool]] = [
            (f"trtllm.profiles.{name}", profile, profile.purpose == "throughput" or not profile.paged_kv_cache)
            for name, profile in ((name, self.profiles[name]) for name in (self.engines if self.models else []))
        ]
        if self.pytorch_models:
            limits.append(("trtllm.pytorch", self.pytorch, True))
        needs = {"max_input_len": (max(input_lens), "longest swept input"),
                 "max_seq_len": (max(input_lens) + max(output_lens), "longest swept input + output"),
                 "max_num_tokens": (max(input_lens), "longest swept input"),
                 "max_batch_size": (max(batch_sizes), "largest swept batch")}
        return [
            f"{key}.{field}: {getattr(limit, field)} < {what} {needed}"
            for key, limit, check_batch in limits
            for field, (needed, what) in needs.items()
            if (check_batch or field != "max_batch_size") and getattr(limit, field) < needed
        ]
