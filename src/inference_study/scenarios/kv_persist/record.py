"""The result record of the scenario: a prefix KV cache saved by one process and loaded by a new one: TTFT cold against warm (import-light: no torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from inference_study.scenario import ScenarioRecord
from inference_study.scenarios.records import Divergence, Expectation, Record


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

class KvPersistRecord(ScenarioRecord):
    scenario: Literal["kv_persist"] = "kv_persist"
    record_version: Literal[1] = 1
    cache_format: str
    rows: list[KvPersistRow]
    divergences: list[Divergence] = Field(
        default=[], description="first divergence of each output that differs from its reference"
    )
    expectation: Expectation
