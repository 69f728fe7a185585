"""The report tables of the scenario: a device KV pool of about one request, prompts A,B,A,B, with and without a host cache: block reuse and TTFT."""

from __future__ import annotations

import pandas as pd

from inference_study.results import ScenarioResult
from inference_study.scenarios.report import comparison_lines, null_counters_and_trtllm, table, timing_lines
from inference_study.scenarios.timing import shown


def tables(results: list[ScenarioResult]) -> list[str]:
    """Per request of A,B,A,B, backend and arm: TTFT and reuse counters; the claim beside its control; then what
    is equivalent to TensorRT-LLM."""
    rows = pd.DataFrame(
        [
            {"model": r.model.name,
             **row.model_dump(include={"backend", "host_cache", "round", "prompt", "prompt_len", "output_len"}),
             "ttft_ms": shown(row.ttft_ms),
             **row.model_dump(include={"prompt_blocks", "reused_blocks", "hit_rate", "reused_from", "prefilled_tokens"})}
            for r in results
            for row in r.record.rows
        ]
    )
    paged = [
        f"- `{r.model.name}`, transformers continuous batching, same pool, block sharing, no host tier: "
        f"reused prompt tokens per request {r.record.paged_reused_tokens}, outputs equal to the hf arms': "
        f"{r.record.paged_identical_outputs}"
        for r in results if r.record.paged_reused_tokens is not None
    ]
    pools = {(r.record.gpu_pool_tokens, r.record.tokens_per_block, r.record.host_cache_tokens) for r in results}
    return [
        "Device pool, block and host cache (tokens): " + ", ".join(f"{g}, {b}, {h}" for g, b, h in sorted(pools)),
        "",
        *timing_lines(results),
        table(rows),
        "",
        ("Returning-prompt TTFT with the host cache against without (the claim), beside the first round's, where "
         "neither arm reuses anything (the control):"),
        "",
        *comparison_lines(results),
        *paged,
        "",
        *null_counters_and_trtllm(results, "kv_offload"),
        results[0].record.equivalence,
        "",
    ]
