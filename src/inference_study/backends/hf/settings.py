"""Typed settings of the Hugging Face transformers backends (import-light: no torch here)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

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

    def sweep_errors(
        self, batch_sizes: list[int], input_lens: list[int], output_lens: list[int], key: str = "backends"
    ) -> list[str]:
        """A fixed cache shorter than the longest cell would fail in its stage, after DVC removed its output."""
        needed = max(input_lens) + max(output_lens)
        if self.max_cache_len is not None and self.max_cache_len < needed:
            return [f"{key}.max_cache_len: {self.max_cache_len} is shorter than the longest cell (input + output "
                    f"= {needed}); allowed: null or >= {needed}"]
        return []


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


def _unset(value: Any) -> bool:
    return value is None


def left_to_transformers(description: str, **constraints: Any) -> Any:
    """An optional knob whose None means "transformers' own default", left out of `model_dump` while None.

    Left out, not dumped as null: the dump is what a cell's config hash and recorded settings are made of, so
    adding such a knob keeps every existing result's hash and settings unchanged until someone sets it.
    """
    return Field(default=None, exclude_if=_unset, description=description, **constraints)


class HfFusedLoopSettings(BackendSettings):
    """A plain-PyTorch decode module over the HF weights (fused QKV and gate/up, GQA against the unexpanded
    cache) in the minimal greedy loop; the step is compiled and, on CUDA, captured as one CUDA graph.

    Modes that bring their own CUDA graphs (`reduce-overhead`, `max-autotune`) are not offered: the rung
    already captures the whole step as one graph (`cuda_graph`).
    """

    # Not a setting: the HF model loads with SDPA only for the scenario methods (greedy, next_token_logits);
    # the timed path attends in the fused module (SDPA causal prefill, grouped-matmul decode).
    attn_implementation: ClassVar[str] = "sdpa"
    compile_step: bool = Field(
        default=True,
        description="torch.compile the step; off: it runs eagerly (still one CUDA graph on CUDA), as the H200 "
                    "probe's own_eager_g did: 2.61 ms a step at batch 1 against 1.105 compiled, so most of the gain "
                    "is inductor's fusion, not the graph",
    )
    compile_mode: Literal["default", "max-autotune-no-cudagraphs"] = "default"
    coordinate_descent_tuning: bool = Field(
        default=True, description="inductor's per-kernel tile search, as gpt-fast and the H200 probe enable it"
    )
    cuda_graph: bool = Field(
        default=True,
        description="capture the whole compiled step (token feedback and position included) as one CUDA graph; "
                    "off: the compiled kernels are launched from the host every step. CUDA only",
    )
    # Left out of the dump at its default, so every committed cell keeps its config hash.
    decode_attention: Literal["matmul", "reduction"] = Field(
        default="matmul", exclude_if=lambda value: value == "matmul",
        description="decode attention as two batched matmuls (cuBLAS) and a softmax, or as broadcast products "
                    "summed (reductions inductor can fuse with the rotary embedding, the mask and the softmax: "
                    "fewer kernels a layer); not measured on a GPU yet",
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
    use_cuda_graph: bool | None = left_to_transformers(
        "CUDA graphs on both paths (ContinuousBatchingConfig.use_cuda_graph); null: transformers decides, "
        "which is off under paged|sdpa (it needs an attention mask)"
    )
    compile_level: int | None = left_to_transformers(
        "ContinuousBatchingConfig.default_compile_level, 0-3: 1 compiles with mode default and dynamic shapes, "
        "2 with max-autotune-no-cudagraphs, 3 also with static shapes; null: transformers' default, 0 (none)",
        ge=0, le=3,
    )

    def blocks_needed(self, batch_size: int, input_len: int, output_len: int) -> int:
        """Blocks that `batch_size` requests of `input_len + output_len` tokens hold at once."""
        return batch_size * -(-(input_len + output_len) // self.block_size)

    def sweep_errors(
        self, batch_sizes: list[int], input_lens: list[int], output_lens: list[int], key: str = "backends.hf_paged"
    ) -> list[str]:
        """Why the largest cell of a sweep would not fit this pool or this step size (empty when it does)."""
        batch, longest = max(batch_sizes), max(input_lens) + max(output_lens)
        needed = self.blocks_needed(batch, max(input_lens), max(output_lens))
        problems = []
        if self.num_blocks < needed:
            problems.append(
                f"{key}.num_blocks: {self.num_blocks} blocks of {self.block_size} tokens hold "
                f"{self.num_blocks * self.block_size} tokens, but batch {batch} x {longest} tokens needs "
                f"{needed} blocks; allowed: >= {needed}"
            )
        if self.max_batch_tokens < batch:
            problems.append(
                f"{key}.max_batch_tokens: {self.max_batch_tokens} cannot decode batch {batch} "
                f"in one step; allowed: >= {batch}"
            )
        return problems
