"""What the scenarios' own report tables share: one table format, the timing verdict and loops, the claims
beside their controls, and the null-counter lines."""

from __future__ import annotations

import pandas as pd

from inference_study.results import ScenarioResult
from inference_study.scenarios.records import Comparison
from inference_study.stopping import Stopping
from inference_study.tables import markdown_table

TIMING_NOTE = (
    "Timings are medians over repeats with their 95% interval (`median [low, high]`); arms compared with each other "
    "run round-robin, one request of each per iteration, until the stopping rule is met. A speedup is stated as "
    "faster or slower only where its 95% interval excludes 1, else as not distinguishable; a control compares equal "
    "work, so its interval is the noise floor the claims must clear. Met (above) is judged on counters and "
    "outputs only."
)


def table(frame: pd.DataFrame) -> str:
    return markdown_table(frame, floatfmt=".3g")


def _loop(name: str, stopped: Stopping) -> str:
    seconds = "" if stopped.seconds is None else f", {stopped.seconds:.2f} s timed"
    return f"{name}: {stopped.reason} after {stopped.iterations} iterations ({stopped.requests} requests{seconds})"


def timing_lines(results: list[ScenarioResult]) -> list[str]:
    """Per model: the timing verdict with its reasons, and how each timed loop stopped."""
    lines = [TIMING_NOTE, ""]
    for r in results:
        verdict = r.record.verdict
        reasons = "".join(f"\n  - {reason}" for reason in verdict.reasons)
        lines.append(f"- `{r.model.name}` timing verdict: **{verdict.status}**{reasons}")
        if r.record.stopping:
            lines.append("  - loops: " + "; ".join(_loop(n, s) for n, s in r.record.stopping.items()))
    return lines + [""]


def comparison_lines(results: list[ScenarioResult], claims: bool = True) -> list[str]:
    """Per model, each claim and then each control, in words with their intervals."""
    lines = []
    for r in results:
        shown: list[tuple[str, Comparison]] = [("claim", c) for c in r.record.claims] if claims else []
        shown += [("control, should not differ", c) for c in r.record.controls]
        lines += [f"- `{r.model.name}` {kind}: {c.sentence()}" for kind, c in shown]
    return lines + ([""] if lines else [])


def null_counters_and_trtllm(results: list[ScenarioResult], scenario: str) -> list[str]:
    """Why any counters are null, and a line saying so when no TensorRT-LLM row was measured."""
    reasons = sorted({row.null_reason for r in results for row in r.record.rows if row.null_reason})
    lines = [f"- null counters: {reason}" for reason in reasons] + ([""] if reasons else [])
    if not any(row.backend == "trtllm_pytorch" for r in results for row in r.record.rows):
        lines += [f"TensorRT-LLM: not measured in this study (`scenarios.{scenario}.backends` lists only `hf`).", ""]
    return lines
