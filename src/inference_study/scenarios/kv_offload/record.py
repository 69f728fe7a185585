"""The result record of the scenario: a device KV pool of about one request, prompts A,B,A,B, with and without a
host cache, block reuse and TTFT; and what it says, computed from its rows: the expectation (reuse counters and
outputs), the claim (returning prompts' TTFT with the host cache against without), the control (first-round
prompts, which reuse nothing in either arm) and the upgrade of versions 1 and 2 (import-light: no torch)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from inference_study.scenario import ScenarioRecord
from inference_study.scenarios.records import Comparison, Divergence, Expectation, Record, agreement
from inference_study.scenarios.timing import mean_of, time_speedup, unrepeated, unrepeated_verdict
from inference_study.uncertainty import Interval


class KvOffloadRow(Record):
    """One request of the A,B,A,B sequence on one backend and arm (host cache off or on): its TTFT over the
    timed sequences, counters of the last (every sequence starts from an empty pool and repeats them)."""

    backend: Literal["hf", "trtllm_pytorch"] = "hf"
    host_cache: bool
    round: Literal[1, 2]
    prompt: Literal["A", "B"]
    prompt_len: int
    output_len: int
    ttft_ms: Interval
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
    """Per backend, the claim is the returning prompts' (round 2) TTFT with the host cache against without; the
    control is the first round's, where neither arm has anything to reuse."""

    scenario: Literal["kv_offload"] = "kv_offload"
    record_version: Literal[3] = 3
    gpu_pool_tokens: int
    tokens_per_block: int
    host_cache_tokens: int
    rows: list[KvOffloadRow]
    identical_outputs: bool = Field(description="every request of a prompt on a backend, in both arms, same tokens")
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

    @classmethod
    def upgraded(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Versions 1 and 2 kept one median TTFT per request and a bare returning-TTFT speedup (version 1: hf's
        only; version 2: per backend); they are read as version 3."""
        return upgrade(data)


EXPECTED = (
    "With a device pool that holds one request, B evicts A's blocks: returning A and B reuse 0 blocks "
    "without a host cache and more than 0 with it, and the outputs are identical either way (the KV "
    "host-offload benchmarks). Met is judged on the reuse counters and the outputs; whether returning TTFT fell is "
    "the timing claim, beside the first round's control."
)
ARM = {False: "host cache off", True: "host cache on"}


def backends(rows: list[KvOffloadRow]) -> list[str]:
    return list(dict.fromkeys(r.backend for r in rows))


def round_ttft(rows: list[KvOffloadRow], backend: str, host_cache: bool, round_: int) -> Interval:
    """TTFT of one round's requests (A and B) on one backend and arm: per timed sequence, their mean."""
    return mean_of([r.ttft_ms for r in rows if (r.backend, r.host_cache, r.round) == (backend, host_cache, round_)])


def _by_round(rows: list[KvOffloadRow], round_: int, what: str) -> list[Comparison]:
    return [time_speedup(f"{backend}: {what}", ARM[True], ARM[False], "TTFT (mean of A and B per sequence)",
                         round_ttft(rows, backend, True, round_), round_ttft(rows, backend, False, round_))
            for backend in backends(rows)]


def claims(rows: list[KvOffloadRow]) -> list[Comparison]:
    return _by_round(rows, 2, "returning prompts (round 2)")


def controls(rows: list[KvOffloadRow]) -> list[Comparison]:
    """Round 1 prefills A and B whole in both arms (an empty pool has nothing to reuse): it should not differ."""
    return _by_round(rows, 1, "first-round prompts (round 1), which reuse nothing in either arm")


def headline(rows: list[KvOffloadRow]) -> dict[str, Interval]:
    """Each backend, arm and round's TTFT in `rows`: what a loop converges on, and what the verdict checks for CV."""
    arms = dict.fromkeys((r.backend, r.host_cache) for r in rows)
    return {f"{backend} {ARM[host]} round {round_} TTFT": round_ttft(rows, backend, host, round_)
            for backend, host in arms for round_ in (1, 2)}


def _outcome(backend_rows: list[KvOffloadRow]) -> tuple[bool, str]:
    """Whether one backend's returning prompts reused nothing without a host cache and something with it."""
    returning = [r for r in backend_rows if r.round == 2]
    if any(r.reused_blocks is None for r in returning):
        return False, f"reuse counters null ({returning[0].null_reason})"
    without = sum(r.reused_blocks for r in returning if not r.host_cache)
    with_host = [r.reused_blocks for r in returning if r.host_cache]
    words = f"returning prompts reused {without} blocks without a host cache and {with_host} with it"
    return without == 0 and all(n > 0 for n in with_host), words


def expectation(rows: list[KvOffloadRow], identical: bool, divergences: list[Divergence]) -> Expectation:
    agree, outputs = agreement(identical, divergences)
    outcomes = {b: _outcome([r for r in rows if r.backend == b]) for b in backends(rows)}
    observed = "; ".join(f"{backend}: {words}" for backend, (_, words) in outcomes.items())
    met = all(ok for ok, _ in outcomes.values()) and agree
    return Expectation(expected=EXPECTED, met=met, observed=f"{observed}; outputs {outputs} across rounds and arms")


def identical_outputs(rows: list[KvOffloadRow]) -> bool:
    """Every request of a prompt got the same tokens on one backend, in both arms and both rounds."""
    first = {}
    for r in rows:
        first.setdefault((r.backend, r.prompt), r.output_ids)
    return all(r.output_ids == first[(r.backend, r.prompt)] for r in rows)


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """A version-1 or -2 record as version 3: each median TTFT becomes an Interval without an interval, the bare
    speedups give way to the claim and the control (without intervals), the expectation is judged anew."""
    rows = [KvOffloadRow.model_validate({**r, "ttft_ms": unrepeated(r["ttft_ms"])}) for r in data["rows"]]
    divergences = [Divergence.model_validate(d) for d in data.get("divergences", [])]
    checks = controls(rows)
    kept = {k: v for k, v in data.items() if k != "returning_ttft_speedup"}
    return {**kept, "record_version": 3, "rows": rows,
            "expectation": expectation(rows, data["identical_outputs"], divergences),
            "verdict": unrepeated_verdict(data["record_version"], checks), "stopping": {},
            "claims": claims(rows), "controls": checks}
