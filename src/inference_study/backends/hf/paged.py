"""Paged KV: the HF model under transformers continuous batching, its KV cache in a fixed pool of blocks.

Changes from `hf_static_compiled`: the KV cache is a pool of `num_blocks` blocks of `block_size` tokens
shared by all requests (allocated once, by the first call: the harness's warmup) instead of one
contiguous `[batch, max_len]` buffer per call; the batch's tokens are packed into one ragged step
with a block-table read/write index, and attention runs as `paged|sdpa`. By default no torch.compile
and no CUDA graphs: transformers turns graphs off under `paged|sdpa` (it needs an attention mask) and
compiles nothing at its default compile level. `use_cuda_graph` and `compile_level` take those two
apart as settings, passed straight to transformers' ContinuousBatchingConfig (docs/h200-probes.md §2
measured both on an H200). The pool is allocated through torch, so the allocator's peak includes it.
"""

from __future__ import annotations

import time
from contextlib import nullcontext

import transformers
from transformers import GenerationConfig
from transformers.generation.continuous_batching import RequestStatus

from inference_study.backend import Generation
from inference_study.backends.hf.generate import HfGenerate, forward_tokens, synchronize
from inference_study.backends.hf.settings import HfPagedSettings
from inference_study.strict import ConfigError

# How long to wait for the next finished request before checking that the manager thread is alive.
RESULT_POLL_S = 1.0


def continuous_batching_missing() -> str | None:
    """Why the installed transformers cannot run the paged rungs (naming its version), or None.

    transformers 4.57 (TensorRT-LLM 1.2's pin) has an earlier continuous batching: no
    ContinuousBatchingConfig, per-token timestamps, block sharing or compile levels, and CUDA graphs refused.
    Driving it would measure another implementation under the same rung name, so the rung is refused.
    """
    if hasattr(transformers, "ContinuousBatchingConfig"):
        return None
    return (f"the paged rungs need transformers' ContinuousBatchingConfig (transformers 5.17), which the "
            f"installed transformers {transformers.__version__} lacks")


class HfPaged(HfGenerate):
    name = "hf_paged"
    description = (
        "changes from hf_static_compiled: a paged KV pool of fixed num_blocks x block_size shared by the "
        "batch (transformers continuous batching, paged|sdpa) instead of a contiguous static cache; "
        "no torch.compile or CUDA graphs unless compile_level or use_cuda_graph is set"
    )
    settings: HfPagedSettings

    @classmethod
    def unavailable_reason(cls, device: str) -> str | None:
        return continuous_batching_missing()

    @property
    def compiles(self) -> bool:
        """Compiled only above compile level 0, so only then is there a compile time and a cache to report."""
        return bool(self.settings.compile_level)

    def load(self) -> None:
        """Refused before the model loads where transformers' continuous batching is not the one driven here
        (the kv_offload scenario's paged reference loads it directly)."""
        problem = continuous_batching_missing()
        if problem:
            raise ConfigError(f"backends.{self.name}: {problem}")
        super().load()
        self.manager = None

    def generation_config(self, input_len: int, output_len: int) -> GenerationConfig:
        """Greedy, EOS disabled (-1 is continuous batching's "never stop"): every request runs its length."""
        return GenerationConfig(
            max_new_tokens=output_len,
            do_sample=False,
            eos_token_id=-1,
            pad_token_id=self.model.config.pad_token_id or 0,
        )

    def continuous_batching_config(self) -> transformers.ContinuousBatchingConfig:
        """The settings as transformers' config; a knob left at None is not passed, so transformers' own
        default applies (graphs off under paged|sdpa, compile level 0)."""
        settings = self.settings
        optional = {"use_cuda_graph": settings.use_cuda_graph, "default_compile_level": settings.compile_level}
        return transformers.ContinuousBatchingConfig(
            block_size=settings.block_size,
            num_blocks=settings.num_blocks,
            max_batch_tokens=settings.max_batch_tokens,
            allow_block_sharing=settings.allow_block_sharing,
            **{name: value for name, value in optional.items() if value is not None},
        )

    def _start_manager(self, generation: GenerationConfig) -> None:
        """Allocate the KV pool and start the manager's thread; the harness's warmup call pays for this."""
        self.manager = self.model.init_continuous_batching(
            generation_config=generation, continuous_batching_config=self.continuous_batching_config()
        )
        self.manager.warmup()
        self.manager.start()

    def is_out_of_memory(self, error: Exception) -> bool:
        """Also transformers' own check, which raises MemoryError for a pool larger than free memory."""
        return isinstance(error, MemoryError) or super().is_out_of_memory(error)

    def generate(self, input_ids: list[list[int]], output_len: int) -> Generation:
        """Submit the batch at once and wait for every request; token times are the manager's own stamps.

        Not under inference mode: the manager's thread updates its buffers in place under `no_grad`, which
        tensors created under inference mode forbid.
        """
        if self.manager is None:
            self._start_manager(self.generation_config(len(input_ids[0]), output_len))
        synchronize(self.device)
        # A compiled forward (compile_level > 0) is one full graph, which a Python hook would break ("Hard failure
        # due to fullgraph=True"): then the tokens fed are not counted.
        counting = forward_tokens(self.model) if not self.compiles else nullcontext(None)
        with counting as fed:
            start = time.perf_counter()
            outputs = self._serve(input_ids, output_len)
        # One request alone: every token fed was its prompt's computed part or one of its output_len - 1 decode
        # steps, so what it did not compute came from shared blocks. A packed batch mixes requests' tokens.
        prefilled = [sum(fed) - (output_len - 1)] if len(input_ids) == 1 and fed is not None else None
        return Generation(
            output_ids=[output.generated_tokens for output in outputs],
            start=start,
            token_times=[output.timestamps for output in outputs],
            prefilled_tokens=prefilled,
        )

    def _serve(self, input_ids: list[list[int]], output_len: int) -> list:
        """Submit the batch at once and wait until every request finished; their outputs, in order."""
        request_ids = self.manager.add_requests(input_ids, max_new_tokens=output_len, record_timestamps=True)
        finished = {}
        while len(finished) < len(request_ids):
            output = self.manager.get_result(timeout=RESULT_POLL_S)
            if output is None:
                if not self.manager.is_running():
                    raise RuntimeError("the continuous batching thread stopped before the batch finished")
                continue
            if output.status == RequestStatus.FAILED:
                raise RuntimeError(f"continuous batching request {output.request_id} failed: {output.error}")
            if output.is_finished():
                finished[output.request_id] = output
        return [finished[request_id] for request_id in request_ids]

    def release(self) -> None:
        """Stop the manager's thread and drop its KV pool before the model goes."""
        if getattr(self, "manager", None) is not None:
            self.manager.destroy()
            self.manager = None
        super().release()
