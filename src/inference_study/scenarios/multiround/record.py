"""The result record of the scenario: u users x R rounds of chat, round-robin, with and without KV reuse and a host tier: TTFT per round, hit rate (import-light: no torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from inference_study.scenario import ScenarioRecord
from inference_study.scenarios.records import Divergence, Expectation, Record


class MultiroundRow(Record):
    """One backend and arm at one user count: every user's request in every round (times of the timed
    iterations pooled; counters of the last one, which every iteration repeats exactly)."""

    backend: Literal["hf", "trtllm_pytorch"]
    arm: Literal["no_reuse", "reuse_gpu_only", "reuse_host_offload"]
    users: int
    rounds: int
    requests: int = Field(description="users x rounds")
    fits_on_device: bool = Field(
        description="every user's final history plus one running request fit the device budget"
    )
    ttft_p50_ms: float
    ttft_p99_ms: float
    round_ttft_p50_ms: list[float] = Field(description="per round, over its users")
    round_ttft_p99_ms: list[float]
    e2e_s: float = Field(description="all R rounds of all U users, median over the timed iterations")
    prompt_tokens: int
    reused_tokens: int | None = Field(description="prompt tokens served from cached KV instead of prefilled")
    reused_from_host_tokens: int | None
    hit_rate: float | None = Field(description="reused_tokens / prompt_tokens")
    prefilled_tokens: int | None = Field(description="prompt tokens the first forward pass of each request fed")
    output_tokens: int
    identical_to_no_reuse: bool | None = Field(
        description="every request's greedy output equals the same backend's no_reuse arm's"
    )
    null_reason: str | None = Field(default=None, description="why counters are null (TensorRT-LLM only)")

class MultiroundRecord(ScenarioRecord):
    scenario: Literal["multiround"] = "multiround"
    record_version: Literal[1] = 1
    context_len: int
    rounds: int
    new_tokens_per_round: int
    output_len: int
    tokens_per_block: int
    gpu_kv_tokens: int
    host_cache_tokens: int
    rows: list[MultiroundRow]
    identical_outputs: bool = Field(description="every arm of a backend, every request, same tokens")
    equivalence: str
    divergences: list[Divergence] = Field(
        default=[], description="first divergence of each output that differs from its reference"
    )
    expectation: Expectation
