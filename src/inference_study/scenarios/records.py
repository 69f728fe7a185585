"""Scenario-specific result records, versioned per scenario (import-light: no torch here).

A scenario result (results.ScenarioResult) carries the study's common header (status, model,
environment, config hash, null reasons) and one of these records, told apart by `scenario`. Each
record has its own `record_version`, so one scenario's fields can change without touching the others
or the common schema.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Expectation(Record):
    """The seed's expected outcome, and whether this run met it, in words a reader can check."""

    expected: str
    met: bool
    observed: str


class Divergence(Record):
    """Where a lossless feature's greedy tokens first differ from the reference's, and whether that is an
    argmax flip between nearly equal logits (numeric noise: another kernel shape, random weights' flat
    logits) rather than a wrong cache or a wrong draft check."""

    what: str = Field(description="the outputs compared: feature against reference")
    position: int = Field(description="first output token that differs")
    logit_gap: float = Field(
        description="at that position, the reference model's logit of the reference token minus that of "
        "the feature's token (a full prefill of prompt + agreed tokens, float32 logits)"
    )
    tolerance: float = Field(description="10 units in the last place of the model dtype at the largest logit")
    within_noise: bool = Field(description="logit_gap <= tolerance")


def agreement(identical: bool, divergences: list[Divergence]) -> tuple[bool, str]:
    """Whether outputs agree up to numeric noise, and the words saying so for an expectation."""
    if identical:
        return True, "identical"
    if divergences and all(d.within_noise for d in divergences):
        worst = max(divergences, key=lambda d: d.logit_gap / d.tolerance)
        return True, (f"different, every divergence a near-tie within numeric noise ({len(divergences)}; "
                      f"largest logit gap {worst.logit_gap:.3g} against a tolerance of {worst.tolerance:.3g})")
    flips = [d for d in divergences if not d.within_noise]
    shown = "; ".join(f"{d.what} at token {d.position}, logit gap {d.logit_gap:.3g}" for d in flips[:3])
    return False, f"DIFFERENT beyond numeric noise ({shown or 'not checked'})"


class NgramWorkloadInfo(Record):
    """A workload of the n-gram scenario and how much its greedy output repeats earlier n-grams."""

    name: Literal["high_overlap", "low_overlap"]
    construction: str
    prompt_len: int
    output_len: int
    overlap_ngram: int
    prompt_overlap: float = Field(description="share of output n-grams that occur in the prompt")
    context_overlap: float = Field(
        description="share of output n-grams that occur in the prompt or earlier "
        "output: what prompt lookup can find"
    )
    greedy_tokens_per_s: float
    greedy_output_ids: list[int]


class NgramRow(Record):
    """One draft length × n-gram size on one workload, against that workload's plain greedy run."""

    workload: Literal["high_overlap", "low_overlap"]
    draft_len: int
    ngram_size: int
    tokens_per_s: float
    speedup: float
    proposed_tokens: int
    accepted_tokens: int
    acceptance_rate: float | None
    forward_passes: int
    tokens_per_forward: float
    identical_to_greedy: bool


class NgramRecord(Record):
    scenario: Literal["ngram"] = "ngram"
    record_version: Literal[1] = 1
    workloads: list[NgramWorkloadInfo]
    rows: list[NgramRow]
    divergences: list[Divergence] = Field(
        default=[], description="first divergence of each output that differs from its reference"
    )
    expectation: Expectation


class KvPersistRow(Record):
    """One prefix length: instance 1 (cold, computes and saves) against instance 2 (warm, loads)."""

    prefix_len: int
    prompt_len: int
    output_len: int
    ttft_cold_ms: float
    ttft_warm_ms: float
    ttft_speedup: float
    cache_bytes: int
    load_ms: float | None = Field(description="null when the cache was refused")
    prefilled_tokens_cold: int
    prefilled_tokens_warm: int
    cache_used: bool
    refused_reason: str | None
    identical_output: bool


class KvPersistRecord(Record):
    scenario: Literal["kv_persist"] = "kv_persist"
    record_version: Literal[1] = 1
    cache_format: str
    rows: list[KvPersistRow]
    divergences: list[Divergence] = Field(
        default=[], description="first divergence of each output that differs from its reference"
    )
    expectation: Expectation


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


class KvOffloadRecord(Record):
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


class MultiroundRecord(Record):
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


ScenarioRecord = Annotated[
    NgramRecord | KvPersistRecord | KvOffloadRecord | MultiroundRecord, Field(discriminator="scenario")
]
