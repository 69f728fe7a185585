"""The report tables of the scenario: u users x R rounds of chat, round-robin, with and without KV reuse and a host tier: TTFT per round, hit rate."""

from __future__ import annotations

import pandas as pd

from inference_study.results import ScenarioResult
from inference_study.scenarios.report import comparison_lines, null_counters_and_trtllm, table, timing_lines
from inference_study.scenarios.timing import shown

MULTIROUND_NOTE = (
    "Per backend, arm and user count U: TTFT P50/P99 over every request of the R rounds (and per round, over its "
    "users), E2E for all R rounds, and the reuse hit rate (prompt tokens served from cached KV / prompt tokens). "
    "Each timing is the median over the timed iterations of that iteration's value, with its 95% interval. "
    "`fits_on_device`: U x the longest sequence fits the device budget, so nothing need be evicted; past it, "
    "the GPU-only arm evicts least recently used histories (round-robin returns to each user last) and the "
    "host-offload arm brings them back from host memory."
)
KEYS = ("backend", "arm", "users", "rounds", "requests", "fits_on_device")
TIMINGS = ("ttft_p50_ms", "ttft_p99_ms", "e2e_s")


def tables(results: list[ScenarioResult]) -> list[str]:
    """One row per backend, arm and user count; per-round TTFT in its own table; the claims beside the control;
    then the equivalence."""
    rows = pd.DataFrame(
        [
            {"model": r.model.name, **row.model_dump(include=set(KEYS)),
             **{name: shown(getattr(row, name)) for name in TIMINGS},
             **row.model_dump(exclude={*KEYS, *TIMINGS, "round_ttft_p50_ms", "round_ttft_p99_ms", "null_reason"})}
            for r in results
            for row in r.record.rows
        ]
    )
    per_round = pd.DataFrame(
        [
            {"model": r.model.name, "backend": row.backend, "arm": row.arm, "users": row.users,
             **{f"r{n + 1}_p50_ms": shown(value) for n, value in enumerate(row.round_ttft_p50_ms)}}
            for r in results
            for row in r.record.rows
        ]
    )
    shapes = sorted({
        (r.record.context_len, r.record.rounds, r.record.new_tokens_per_round, r.record.output_len,
         r.record.tokens_per_block, r.record.gpu_kv_tokens, r.record.host_cache_tokens)
        for r in results
    })
    lines = [
        "Context, rounds, new and output tokens per round, block, device budget and host tier (tokens): "
        + "; ".join(", ".join(map(str, shape)) for shape in shapes),
        "",
        MULTIROUND_NOTE,
        "",
        *timing_lines(results),
        table(rows),
        "",
        "TTFT P50 (ms) per round:",
        "",
        table(per_round),
        "",
        ("TTFT P50 with reuse against without while every history fits, and with host offload against GPU-only reuse "
         "past the device budget (the claims), beside both reuse arms while they reuse the same tokens from the "
         "device (the control):"),
        "",
        *comparison_lines(results),
    ]
    return lines + null_counters_and_trtllm(results, "multiround") + [results[0].record.equivalence, ""]
