"""The report tables of the scenario: a device KV pool of about one request, prompts A,B,A,B, with and without a host cache: block reuse and TTFT."""

from __future__ import annotations

import pandas as pd

from inference_study.results import ScenarioResult
from inference_study.scenarios.report import null_counters_and_trtllm, table


def tables(results: list[ScenarioResult]) -> list[str]:
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
        table(rows),
        "",
        *speedups,
        "",
        *null_counters_and_trtllm(results, "kv_offload"),
        results[0].record.equivalence,
        "",
    ]
