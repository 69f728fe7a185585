"""Typed settings of the Hugging Face transformers backends (import-light: no torch here)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from inference_study.backends.base import BackendSettings

AttnImplementation = Literal["sdpa", "eager"]


class HfEagerSettings(BackendSettings):
    """`generate` with the default dynamic KV cache: what most people run."""

    attn_implementation: AttnImplementation = "sdpa"


class HfStaticCompiledSettings(BackendSettings):
    """`generate` with a static KV cache and torch.compile, as the transformers docs recommend."""

    attn_implementation: AttnImplementation = "sdpa"
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = (
        "reduce-overhead"
    )
    fullgraph: bool = True
    max_cache_len: int | None = Field(
        default=None, gt=0, description="static cache length; null sizes it to the cell's input + output"
    )


class HfCompiledLoopSettings(BackendSettings):
    """HF model forward in a minimal greedy loop; only the decode step is compiled (gpt-fast style)."""

    attn_implementation: AttnImplementation = "sdpa"
    compile_mode: Literal["reduce-overhead", "max-autotune"] = "reduce-overhead"
    coordinate_descent_tuning: bool = Field(
        default=True, description="inductor's per-kernel tile search, as gpt-fast enables it"
    )
