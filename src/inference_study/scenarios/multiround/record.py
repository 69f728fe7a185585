"""The result record of the scenario: U users x R rounds of chat, round-robin, with and without KV reuse and a
host tier, TTFT per round and hit rate; and what it says, computed from its rows: the expectation (reuse counters
and outputs), the timing claims (GPU-only reuse against none while histories fit; host offload against GPU-only
past the device budget), the control (both reuse arms while everything fits: the same hits from the device, so
the same work) and the upgrade of version-1 records (import-light: no torch)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from inference_study.scenario import ScenarioRecord
from inference_study.scenarios.records import Comparison, Divergence, Expectation, Record, agreement
from inference_study.scenarios.timing import time_speedup, unrepeated, unrepeated_verdict
from inference_study.uncertainty import Interval


class MultiroundRow(Record):
    """One backend and arm at one user count: every user's request in every round. Each timing is an Interval over
    the timed iterations (one value per iteration: that iteration's percentile over its requests); counters are
    of the last iteration, which every iteration repeats exactly."""

    backend: Literal["hf", "trtllm_pytorch"]
    arm: Literal["no_reuse", "reuse_gpu_only", "reuse_host_offload"]
    users: int
    rounds: int
    requests: int = Field(description="users x rounds")
    fits_on_device: bool = Field(
        description="every user's final history plus one running request fit the device budget"
    )
    ttft_p50_ms: Interval
    ttft_p99_ms: Interval
    round_ttft_p50_ms: list[Interval] = Field(description="per round, over its users")
    round_ttft_p99_ms: list[Interval]
    e2e_s: Interval = Field(description="all R rounds of all U users")
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
    record_version: Literal[2] = 2
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

    @classmethod
    def upgraded(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Version 1 kept each timing as one number (percentiles of the pooled requests, E2E's median); it is read
        as version 2."""
        return upgrade_v1(data)


EXPECTED = (
    "With KV reuse a returning user prefills only its new tokens, so TTFT falls below the no-reuse arm's while "
    "every user's history fits on the device; once U x history exceeds the device budget the GPU-only arm's reuse "
    "hit rate collapses (the cliff) while the host-offload arm keeps reusing histories brought back from host "
    "memory; greedy outputs are identical in every arm (the multi-round chat benchmark: 16k contexts, 10 rounds, 64/64 tokens, "
    "Llama-3.1-70B). Met is judged on the reuse counters and the outputs; whether time followed is the timing "
    "claims, each with its interval, beside the control."
)
TTFT_P50 = "TTFT P50"


def judged(rows: list[MultiroundRow]) -> list[MultiroundRow]:
    """The hf rows (TensorRT-LLM rows, when measured, are reported beside them), or the TensorRT-LLM rows when
    they are the only ones."""
    return [r for r in rows if r.backend == "hf"] or rows


def _row(rows: list[MultiroundRow], backend: str, arm: str, users: int) -> MultiroundRow | None:
    return next((r for r in rows if (r.backend, r.arm, r.users) == (backend, arm, users)), None)


def _speedups(rows: list[MultiroundRow], fitting: bool, subject: str, baseline: str, what: str) -> list[Comparison]:
    found = []
    for backend in dict.fromkeys(r.backend for r in rows):
        users = [r.users for r in rows if r.backend == backend and r.fits_on_device == fitting]
        if not users:
            continue
        u = max(users)
        fast, slow = _row(rows, backend, subject, u), _row(rows, backend, baseline, u)
        if fast is not None and slow is not None:
            found.append(time_speedup(f"{backend}, U={u} ({what})", subject, baseline, TTFT_P50, fast.ttft_p50_ms,
                                      slow.ttft_p50_ms))
    return found


def claims(rows: list[MultiroundRow]) -> list[Comparison]:
    """Per backend: at the largest U that fits, GPU-only reuse against none; at the largest that does not, host
    offload against GPU-only reuse."""
    return (_speedups(rows, True, "reuse_gpu_only", "no_reuse", "every history fits on the device")
            + _speedups(rows, False, "reuse_host_offload", "reuse_gpu_only", "histories exceed the device budget"))


def controls(rows: list[MultiroundRow]) -> list[Comparison]:
    """Per backend, at the largest U that fits: where both reuse arms reused the same tokens, all from the device,
    they did the same work, so they should not differ."""
    found = []
    for backend in dict.fromkeys(r.backend for r in rows):
        users = [r.users for r in rows if r.backend == backend and r.fits_on_device]
        if not users:
            continue
        u = max(users)
        gpu, host = _row(rows, backend, "reuse_gpu_only", u), _row(rows, backend, "reuse_host_offload", u)
        if gpu is None or host is None or gpu.reused_tokens is None or host.reused_from_host_tokens != 0 \
                or gpu.reused_tokens != host.reused_tokens:
            continue
        found.append(time_speedup(f"{backend}, U={u} (fits: both reuse arms reused {gpu.reused_tokens} tokens, all "
                                  "from the device)", "reuse_host_offload", "reuse_gpu_only", TTFT_P50,
                                  host.ttft_p50_ms, gpu.ttft_p50_ms))
    return found


def _rate(rows: list[MultiroundRow], arm: str, users: int) -> float | None:
    return next((r.hit_rate for r in rows if r.arm == arm and r.users == users), None)


def _shown(rate: float | None) -> str:
    return "not reported" if rate is None else f"{rate:.0%}"


def expectation(rows: list[MultiroundRow], identical: bool, divergences: list[Divergence], fitting: list[int],
                beyond: list[int], gpu_kv_tokens: int) -> Expectation:
    """Judged on the rows `judged` picks, at the user counts that fit the device budget and those beyond it; a
    counter the backend does not report fails the check."""
    hf = judged(rows)
    no_reuse_zero = all(r.hit_rate == 0 for r in hf if r.arm == "no_reuse")
    reuse_while_fitting = all(
        r.hit_rate is not None and r.hit_rate > 0 for r in hf if r.arm != "no_reuse" and r.users in fitting
    )
    agree, outputs = agreement(identical, list(divergences))
    parts = [f"outputs {outputs} across arms and user counts"]
    if fitting:
        u = max(fitting)
        parts.append(f"at U={u} (fits) hit rate {_shown(_rate(hf, 'reuse_gpu_only', u))} GPU-only, "
                     f"{_shown(_rate(hf, 'reuse_host_offload', u))} host offload")
    if beyond:
        u = max(beyond)
        gpu, host = _rate(hf, "reuse_gpu_only", u), _rate(hf, "reuse_host_offload", u)
        parts.append(f"at U={u} (exceeds the {gpu_kv_tokens}-token device budget) hit rate {_shown(gpu)} "
                     f"GPU-only, {_shown(host)} host offload")
        cliff = gpu is not None and host is not None and host > gpu
    else:
        parts.append("no user count exceeds the device budget, so the cliff is not shown")
        cliff = False
    met = agree and no_reuse_zero and reuse_while_fitting and cliff
    return Expectation(expected=EXPECTED, met=met, observed="; ".join(parts))


def upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A version-1 record as version 2: each timing becomes an Interval without an interval, the TTFT ratios its
    observed text quoted give way to claims without intervals, the expectation is judged anew."""
    timed = {"ttft_p50_ms", "ttft_p99_ms", "e2e_s"}
    rows = [MultiroundRow.model_validate({
        **row, **{name: unrepeated(row[name]) for name in timed},
        "round_ttft_p50_ms": [unrepeated(v) for v in row["round_ttft_p50_ms"]],
        "round_ttft_p99_ms": [unrepeated(v) for v in row["round_ttft_p99_ms"]]}) for row in data["rows"]]
    divergences = [Divergence.model_validate(d) for d in data.get("divergences", [])]
    users = dict.fromkeys((r.users, r.fits_on_device) for r in judged(rows))
    checks = controls(rows)
    return {**data, "record_version": 2, "rows": rows,
            "expectation": expectation(rows, data["identical_outputs"], divergences,
                                       [u for u, fits in users if fits], [u for u, fits in users if not fits],
                                       data["gpu_kv_tokens"]),
            "verdict": unrepeated_verdict(1, checks), "stopping": {}, "claims": claims(rows), "controls": checks}
