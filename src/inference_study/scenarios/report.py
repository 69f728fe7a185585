"""What the scenarios' own report tables share: one table format and the null-counter lines."""

from __future__ import annotations

import pandas as pd

from inference_study.results import ScenarioResult
from inference_study.tables import markdown_table


def table(frame: pd.DataFrame) -> str:
    return markdown_table(frame, floatfmt=".3g")


def null_counters_and_trtllm(results: list[ScenarioResult], scenario: str) -> list[str]:
    """Why any counters are null, and a line saying so when no TensorRT-LLM row was measured."""
    reasons = sorted({row.null_reason for r in results for row in r.record.rows if row.null_reason})
    lines = [f"- null counters: {reason}" for reason in reasons] + ([""] if reasons else [])
    if not any(row.backend == "trtllm_pytorch" for r in results for row in r.record.rows):
        lines += [f"TensorRT-LLM: not measured in this study (`scenarios.{scenario}.backends` lists only `hf`).", ""]
    return lines
