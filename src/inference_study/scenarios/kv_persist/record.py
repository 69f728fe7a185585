"""The result record of the scenario: a prefix KV cache saved by one process and loaded by a new one, TTFT cold
against warm; and what it says, computed from its rows: the expectation (the prefix loaded, only new tokens
prefilled, identical output), the timing claims (warm TTFT against cold), the controls (cold in instance 2
against cold in instance 1) and the upgrade of version-1 records (import-light: no torch)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from inference_study.scenario import ScenarioRecord
from inference_study.scenarios.records import Comparison, Divergence, Expectation, Record, agreement
from inference_study.scenarios.timing import time_speedup, unrepeated, unrepeated_verdict
from inference_study.uncertainty import Interval


class KvPersistRow(Record):
    """One prefix length: instance 1 (cold, computes and saves) against instance 2 (warm, loads); times are
    over each instance's timed repeats. Warm against cold is the record's claim for this prefix, instance 2's
    own cold prefill against instance 1's its control."""

    prefix_len: int
    prompt_len: int
    output_len: int
    ttft_cold_ms: Interval = Field(description="instance 1: the whole prompt prefilled")
    ttft_warm_ms: Interval = Field(description="instance 2: the prefix loaded from disk, the rest prefilled")
    ttft_cold_instance2_ms: Interval | None = Field(
        description="instance 2, round-robin with its warm requests: the whole prompt prefilled, as instance 1 "
        "does (the control: same work in another process); null in version-1 records, which did not measure it")
    cache_bytes: int
    load_ms: Interval | None = Field(description="reading and checking the file (outside TTFT); null when refused")
    prefilled_tokens_cold: int
    prefilled_tokens_warm: int
    cache_used: bool
    refused_reason: str | None
    identical_output: bool


class KvPersistRecord(ScenarioRecord):
    scenario: Literal["kv_persist"] = "kv_persist"
    record_version: Literal[2] = 2
    cache_format: str
    rows: list[KvPersistRow]
    divergences: list[Divergence] = Field(
        default=[], description="first divergence of each output that differs from its reference"
    )
    expectation: Expectation

    @classmethod
    def upgraded(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Version 1 kept one median per timing and a bare TTFT speedup; it is read as version 2."""
        return upgrade_v1(data)


EXPECTED = (
    "The second instance finds the saved prefix, prefills only the new tokens (skips the prefix's "
    "prefill) and its output is identical to the first instance's (the persistent-KV write-up). Met is judged on "
    "the tokens prefilled and the outputs; whether warm TTFT was lower is each prefix's timing claim."
)


def prefix(row: KvPersistRow) -> str:
    return f"prefix {row.prefix_len} of {row.prompt_len} tokens"


def claims(rows: list[KvPersistRow]) -> list[Comparison]:
    return [time_speedup(prefix(r), "warm (instance 2, prefix loaded)",
                         "cold (instance 1)", "TTFT", r.ttft_warm_ms, r.ttft_cold_ms) for r in rows]


def controls(rows: list[KvPersistRow]) -> list[Comparison]:
    """The same full prefill in the two processes should not differ."""
    return [time_speedup(f"{prefix(r)}, the whole prompt prefilled in both",
                         "cold in instance 2", "cold in instance 1", "TTFT", r.ttft_cold_instance2_ms, r.ttft_cold_ms)
            for r in rows if r.ttft_cold_instance2_ms is not None]


def expectation(rows: list[KvPersistRow], divergences: list[Divergence]) -> Expectation:
    skipped = [r for r in rows if r.cache_used and r.prefilled_tokens_warm == r.prompt_len - r.prefix_len]
    identical = sum(r.identical_output for r in rows)
    agree, outputs = agreement(identical == len(rows), divergences)
    observed = (
        f"{len(skipped)} of {len(rows)} prefixes loaded with only the new tokens prefilled; output identical "
        f"in {identical} of {len(rows)} ({outputs})"
    )
    return Expectation(expected=EXPECTED, met=len(skipped) == len(rows) and agree, observed=observed)


def upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A version-1 record as version 2: medians become Intervals without an interval, the bare speedups give way
    to claims without intervals, and there is no control (version 1 did not time a cold prefill in instance 2)."""
    rows = []
    for row in data["rows"]:
        kept = {k: v for k, v in row.items() if k != "ttft_speedup"}
        rows.append(KvPersistRow.model_validate({
            **kept, "ttft_cold_ms": unrepeated(row["ttft_cold_ms"]), "ttft_warm_ms": unrepeated(row["ttft_warm_ms"]),
            "ttft_cold_instance2_ms": None,
            "load_ms": None if row["load_ms"] is None else unrepeated(row["load_ms"])}))
    divergences = [Divergence.model_validate(d) for d in data.get("divergences", [])]
    return {**data, "record_version": 2, "rows": rows, "expectation": expectation(rows, divergences),
            "verdict": unrepeated_verdict(1, []), "stopping": {}, "claims": claims(rows), "controls": []}
