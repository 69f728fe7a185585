"""The report tables of the scenario: a prefix KV cache saved by one process and loaded by a new one: TTFT cold against warm."""

from __future__ import annotations

import pandas as pd

from inference_study.results import ScenarioResult
from inference_study.scenarios.kv_persist.record import prefix
from inference_study.scenarios.report import comparison_lines, table, timing_lines
from inference_study.scenarios.timing import shown

KV_NOTE = (
    "TTFT cold is instance 1 prefilling the whole prompt; TTFT warm is instance 2 (a new process) with the "
    "prefix loaded from disk, prefilling only the rest; load is reading and checking the file, outside TTFT. "
    "`ttft_cold_instance2_ms` is instance 2 prefilling the whole prompt too, round-robin with its warm requests: "
    "the same work as instance 1's, so it should not differ from `ttft_cold_ms` (the control)."
)
TIMINGS = ("ttft_cold_ms", "ttft_warm_ms", "ttft_cold_instance2_ms", "load_ms")


def tables(results: list[ScenarioResult]) -> list[str]:
    rows = []
    for r in results:
        warm = {c.what: c.short() for c in r.record.claims}
        for row in r.record.rows:
            claim = warm.get(prefix(row), "—")
            rows.append({"model": r.model.name, **row.model_dump(include={"prefix_len", "prompt_len", "output_len"}),
                         **{name: shown(getattr(row, name)) for name in TIMINGS}, "warm_against_cold": claim,
                         **row.model_dump(exclude={"prefix_len", "prompt_len", "output_len", *TIMINGS})})
    return [KV_NOTE, "", *timing_lines(results), table(pd.DataFrame(rows)), "", *comparison_lines(results),
            f"Cache format: `{results[0].record.cache_format}`.", ""]
