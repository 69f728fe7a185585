"""The report tables of the scenario: a prefix KV cache saved by one process and loaded by a new one: TTFT cold against warm."""

from __future__ import annotations

import pandas as pd

from inference_study.results import ScenarioResult
from inference_study.scenarios.report import table

KV_NOTE = (
    "TTFT cold is instance 1 prefilling the whole prompt; TTFT warm is instance 2 (a new process) with the "
    "prefix loaded from disk, prefilling only the rest; load is reading and checking the file, outside TTFT."
)

def tables(results: list[ScenarioResult]) -> list[str]:
    rows = pd.DataFrame(
        [{"model": r.model.name, **row.model_dump()} for r in results for row in r.record.rows]
    )
    return [KV_NOTE, "", table(rows), "", f"Cache format: `{results[0].record.cache_format}`.", ""]
