"""The result record of the scenario: a device KV pool of about one request, prompts A,B,A,B, with and without a host cache: block reuse and TTFT (import-light: no torch)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from inference_study.scenario import ScenarioRecord
from inference_study.scenarios.records import Divergence, Expectation, Record


class KvOffloadRow(Record):
    """One request of the A,B,A,B sequence on one backend and arm (host cache off or on); times are medians."""

    backend: Literal["hf", "trtllm_pytorch"] = "hf"
    host_cache: bool
    round: Literal[1, 2]
    prompt: Literal["A", "B"]
    prompt_len: int
    output_len: int
    ttft_ms: float
    prompt_blocks: int | None = Field(
        description="blocks block reuse looked up for the prompt: hf, its full blocks before the last token; "
        "TensorRT-LLM, reused + missed blocks from its iteration stats"
    )
    reused_blocks: int | None
    hit_rate: float | None = Field(description="reused_blocks / prompt_blocks")
    reused_from: Literal["gpu", "host"] | None = Field(description="the tier reused blocks came from (hf only)")
    prefilled_tokens: int | None = Field(description="tokens the first forward pass fed (hf only)")
    output_ids: list[int]
    null_reason: str | None = Field(default=None, description="why counters are null (TensorRT-LLM only)")

class KvOffloadRecord(ScenarioRecord):
    scenario: Literal["kv_offload"] = "kv_offload"
    record_version: Literal[2] = 2
    gpu_pool_tokens: int
    tokens_per_block: int
    host_cache_tokens: int
    rows: list[KvOffloadRow]
    identical_outputs: bool = Field(description="every request of a prompt on a backend, in both arms, same tokens")
    returning_ttft_speedup: dict[Literal["hf", "trtllm_pytorch"], float] = Field(
        description="per backend: median TTFT of round 2 without / with host cache"
    )
    equivalence: str
    divergences: list[Divergence] = Field(
        default=[], description="first divergence of each output that differs from its reference"
    )
    expectation: Expectation
    paged_reused_tokens: list[int] | None = Field(
        default=None,
        description="transformers continuous batching over a pool of the same size, block sharing on, no "
        "host tier: prompt tokens its prefix counter reused per request of A,B,A,B",
    )
    paged_identical_outputs: bool | None = Field(
        default=None, description="its outputs equal the eager arms' for the same prompt"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_version_1(cls, data: Any) -> Any:
        """Read a version-1 record as version 2: version 1 measured hf only, so its one returning-TTFT
        speedup is hf's (its rows take the defaults: backend hf, no null reason)."""
        if isinstance(data, dict) and data.get("record_version") == 1:
            return {**data, "record_version": 2, "returning_ttft_speedup": {"hf": data["returning_ttft_speedup"]}}
        return data
