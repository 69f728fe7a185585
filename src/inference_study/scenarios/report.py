"""A report section per scenario: the seed's expected outcome, whether this run met it, and its tables.

The scenario results read are the ones params.yaml configures (never a directory glob), like the cells.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from inference_study.config import StudyConfig
from inference_study.tables import markdown_table
from inference_study.results import (
    ScenarioResult,
    read_scenario_result,
    scenario_result_path,
    write_scenario_result,
)

TITLES = {
    "ngram": "n-gram speculative decoding (prompt lookup, seed 001 §2)",
    "kv_persist": "Persistent prefix KV cache across instances (seed 001 §3)",
    "kv_offload": "KV offload to a host cache, prompts A,B,A,B (seeds 004, 001 §1)",
    "multiround": "Multi-round chat: U users x R rounds, KV reuse and host offload (seed 003)",
}
RANDOM_WEIGHTS_NOTE = (
    "Random weights: a random model's greedy output is not text, so these acceptance rates say nothing about a "
    "trained model's. Read them beside the workload's n-gram overlap (share of output n-grams already in the "
    "prompt, or anywhere earlier in prompt + output, which is what prompt lookup can find): acceptance follows it."
)
KV_NOTE = (
    "TTFT cold is instance 1 prefilling the whole prompt; TTFT warm is instance 2 (a new process) with the "
    "prefix loaded from disk, prefilling only the rest; load is reading and checking the file, outside TTFT."
)

Loaded = list[tuple[str, str, ScenarioResult | None]]


def load_scenarios(study: StudyConfig, results_dir: Path) -> Loaded:
    """(scenario, model, result or None when it has not run) for every configured scenario run."""
    loaded = []
    for scenario, settings in study.scenarios.enabled().items():
        for model in settings.models:
            path = scenario_result_path(results_dir, scenario, model)
            loaded.append((scenario, model, read_scenario_result(path) if path.exists() else None))
    return loaded


def keep_scenario_inputs(loaded: Loaded, inputs_dir: Path) -> None:
    for scenario, model, result in loaded:
        if result is not None:
            write_scenario_result(scenario_result_path(inputs_dir, scenario, model), result)


def _table(frame: pd.DataFrame) -> str:
    return markdown_table(frame, floatfmt=".3g")


def _ngram_tables(results: list[ScenarioResult]) -> list[str]:
    workloads = pd.DataFrame(
        [
            {"model": r.model.name, **w.model_dump(exclude={"greedy_output_ids", "construction"})}
            for r in results
            for w in r.record.workloads
        ]
    )
    overlap = workloads.set_index(["model", "name"])["context_overlap"]
    rows = pd.DataFrame(
        [{"model": r.model.name, **row.model_dump()} for r in results for row in r.record.rows]
    )
    rows.insert(2, "workload_overlap", [overlap[(m, w)] for m, w in zip(rows["model"], rows["workload"])])
    constructions = {w.name: w.construction for r in results for w in r.record.workloads}
    lines = [
        "Workloads (overlap: share of output n-grams of size `overlap_ngram` already seen):",
        "",
        _table(workloads),
        "",
    ]
    lines += [f"- `{name}`: {text}" for name, text in constructions.items()] + [""]
    lines += [
        (
            "Speculative settings against plain greedy (same workload, same model); `workload_overlap` is the "
            "context overlap:"
        ),
        "",
        _table(rows),
        "",
    ]
    if any(r.model.random_weights for r in results):
        lines += [RANDOM_WEIGHTS_NOTE, ""]
    return lines


def _kv_persist_tables(results: list[ScenarioResult]) -> list[str]:
    rows = pd.DataFrame(
        [{"model": r.model.name, **row.model_dump()} for r in results for row in r.record.rows]
    )
    return [KV_NOTE, "", _table(rows), "", f"Cache format: `{results[0].record.cache_format}`.", ""]


def _null_counters_and_trtllm(results: list[ScenarioResult], scenario: str) -> list[str]:
    """Why any counters are null, and a line saying so when no TensorRT-LLM row was measured."""
    reasons = sorted({row.null_reason for r in results for row in r.record.rows if row.null_reason})
    lines = [f"- null counters: {reason}" for reason in reasons] + ([""] if reasons else [])
    if not any(row.backend == "trtllm_pytorch" for r in results for row in r.record.rows):
        lines += [f"TensorRT-LLM: not measured in this study (`scenarios.{scenario}.backends` lists only `hf`).", ""]
    return lines


def _kv_offload_tables(results: list[ScenarioResult]) -> list[str]:
    """Per request of A,B,A,B, backend and arm: TTFT and reuse counters; then what is equivalent to TensorRT-LLM."""
    rows = pd.DataFrame(
        [
            {"model": r.model.name, **row.model_dump(exclude={"output_ids", "null_reason"})}
            for r in results
            for row in r.record.rows
        ]
    )
    speedups = []
    for r in results:
        for backend, speedup in r.record.returning_ttft_speedup.items():
            speedups.append(f"- `{r.model.name}`, {backend}: returning-prompt TTFT without / with host cache: "
                            f"{speedup:.3g}x")
        if r.record.paged_reused_tokens is not None:
            speedups.append(
                f"- `{r.model.name}`, transformers continuous batching, same pool, block sharing, no host tier: "
                f"reused prompt tokens per request {r.record.paged_reused_tokens}, outputs equal to the hf arms': "
                f"{r.record.paged_identical_outputs}")
    pools = {(r.record.gpu_pool_tokens, r.record.tokens_per_block, r.record.host_cache_tokens) for r in results}
    return [
        "Device pool, block and host cache (tokens): " + ", ".join(f"{g}, {b}, {h}" for g, b, h in sorted(pools)),
        "",
        _table(rows),
        "",
        *speedups,
        "",
        *_null_counters_and_trtllm(results, "kv_offload"),
        results[0].record.equivalence,
        "",
    ]


MULTIROUND_NOTE = (
    "Per backend, arm and user count U: TTFT P50/P99 over every request of the R rounds (and per round, over its "
    "users), E2E for all R rounds, and the reuse hit rate (prompt tokens served from cached KV / prompt tokens). "
    "`fits_on_device`: U x the longest sequence fits the device budget, so nothing need be evicted; past it, "
    "the GPU-only arm evicts least recently used histories (round-robin returns to each user last) and the "
    "host-offload arm brings them back from host memory."
)


def _multiround_tables(results: list[ScenarioResult]) -> list[str]:
    """One row per backend, arm and user count; per-round TTFT in its own table; then the equivalence."""
    rows = pd.DataFrame(
        [
            {"model": r.model.name, **row.model_dump(exclude={"round_ttft_p50_ms", "round_ttft_p99_ms", "null_reason"})}
            for r in results
            for row in r.record.rows
        ]
    )
    per_round = pd.DataFrame(
        [
            {"model": r.model.name, "backend": row.backend, "arm": row.arm, "users": row.users,
             **{f"r{n + 1}_p50_ms": value for n, value in enumerate(row.round_ttft_p50_ms)}}
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
        _table(rows),
        "",
        "TTFT P50 (ms) per round:",
        "",
        _table(per_round),
        "",
    ]
    return lines + _null_counters_and_trtllm(results, "multiround") + [results[0].record.equivalence, ""]


TABLES = {
    "ngram": _ngram_tables,
    "kv_persist": _kv_persist_tables,
    "kv_offload": _kv_offload_tables,
    "multiround": _multiround_tables,
}


def scenario_sections(study: StudyConfig, loaded: Loaded) -> list[str]:
    """One section per configured scenario; nothing when no scenario is configured."""
    lines: list[str] = []
    for scenario in dict.fromkeys(name for name, _, _ in loaded):
        entries = [(model, result) for name, model, result in loaded if name == scenario]
        measured = [result for _, result in entries if result is not None and result.status == "ok"]
        settings = getattr(study.scenarios, scenario).model_dump()
        lines += [f"## Scenario: {TITLES[scenario]}", "", f"Settings: `{json.dumps(settings)}`", ""]
        if measured:
            lines += [f"Expected (seed): {measured[0].record.expectation.expected}", ""]
        for model, result in entries:
            if result is None:
                lines.append(f"- `{model}`: not run (no result file)")
            elif result.status != "ok":
                lines.append(f"- `{model}`: {result.status}: {result.error}")
            else:
                outcome = result.record.expectation
                lines.append(
                    f"- `{model}` on {result.device}: **{'met' if outcome.met else 'not met'}**; "
                    f"{outcome.observed}"
                )
        lines.append("")
        if measured:
            lines += TABLES[scenario](measured)
    return lines
