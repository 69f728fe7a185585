"""Typed settings of the Hugging Face transformers backends (import-light: no torch here)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from inference_study.backend import BackendSettings

AttnImplementation = Literal["sdpa", "eager"]


class HfEagerSettings(BackendSettings):
    """`generate` with the default dynamic KV cache: what most people run."""

    attn_implementation: AttnImplementation = "sdpa"


class HfStaticSettings(BackendSettings):
    """`generate` with a static (pre-allocated) KV cache and nothing compiled."""

    attn_implementation: AttnImplementation = "sdpa"
    max_cache_len: int | None = Field(
        default=None, gt=0, description="static cache length; null sizes it to the cell's input + output"
    )


class HfStaticCompiledSettings(HfStaticSettings):
    """`generate` with a static KV cache and torch.compile, as the transformers docs recommend."""

    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = (
        "reduce-overhead"
    )
    fullgraph: bool = True


class HfCompiledLoopSettings(BackendSettings):
    """HF model forward in a minimal greedy loop; only the decode step is compiled (gpt-fast style)."""

    attn_implementation: AttnImplementation = "sdpa"
    compile_mode: Literal["reduce-overhead", "max-autotune"] = "reduce-overhead"
    coordinate_descent_tuning: bool = Field(
        default=True, description="inductor's per-kernel tile search, as gpt-fast enables it"
    )


class HfPagedSettings(BackendSettings):
    """transformers continuous batching over a paged KV pool whose size is fixed here, not from free memory.

    Left to itself, continuous batching sizes the pool from free device memory (about 70 GB on an H100),
    so two runs would differ in pool size; fixing `num_blocks` and `block_size` makes them comparable.
    """

    attn_implementation: Literal["paged|sdpa", "paged|eager"] = "paged|sdpa"
    block_size: int = Field(default=32, ge=4, description="tokens per KV block (transformers' minimum is 4)")
    num_blocks: int = Field(default=64, gt=0, description="blocks in the KV pool, allocated once at load")
    max_batch_tokens: int = Field(
        default=512, gt=0, description="tokens per forward step; a longer batched prefill is split over steps"
    )
    allow_block_sharing: bool = Field(
        default=False, description="prefix reuse across requests; off: timed iterations repeat their prompts"
    )

    def blocks_needed(self, batch_size: int, input_len: int, output_len: int) -> int:
        """Blocks that `batch_size` requests of `input_len + output_len` tokens hold at once."""
        return batch_size * -(-(input_len + output_len) // self.block_size)

    def sweep_errors(
        self, batch_sizes: list[int], input_lens: list[int], output_lens: list[int]
    ) -> list[str]:
        """Why the largest cell of a sweep would not fit this pool or this step size (empty when it does)."""
        batch, longest = max(batch_sizes), max(input_lens) + max(output_lens)
        needed = self.blocks_needed(batch, max(input_lens), max(output_lens))
        problems = []
        if self.num_blocks < needed:
            problems.append(
                f"backends.hf_paged.num_blocks: {self.num_blocks} blocks of {self.block_size} tokens hold "
                f"{self.num_blocks * self.block_size} tokens, but batch {batch} x {longest} tokens needs "
                f"{needed} blocks; allowed: >= {needed}"
            )
        if self.max_batch_tokens < batch:
            problems.append(
                f"backends.hf_paged.max_batch_tokens: {self.max_batch_tokens} cannot decode batch {batch} "
                f"in one step; allowed: >= {batch}"
            )
        return problems
