"""A validity verdict per cell: pass, warn or fail, with the reasons, so no number is trusted blindly.

A `fail` cell never feeds a speedup. The checks follow what users of LLM benchmarks most often get
wrong: token counts that differ from the request, timings that include warmup work, memory read from an
allocator that does not see the backend's memory (the TensorRT-LLM engine benchmark's "0.05 GB"), clocks
that fell under the measurement, intervals that did not narrow before a maximum, and repeats that disagree.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import model_validator

from inference_study.gpu import GpuUsage, slowdown_warning
from inference_study.metrics import Headline
from inference_study.stopping import Stopping
from inference_study.strict import Record

NO_WARMUP = "no warmup: compilation and first-call allocations are inside the timings"


class Verdict(Record):
    """`comparable`: whether the cell's numbers may enter a ratio. A warning about spread (an interval that
    did not narrow, repeats that vary) is carried by the interval itself, so such a cell still compares;
    one about bias (a clock that fell, timings with compilation in them) or a failure is not."""

    status: Literal["pass", "warn", "fail"]
    reasons: list[str]
    comparable: bool

    @model_validator(mode="before")
    @classmethod
    def _comparable_unless_failed(cls, data: Any) -> Any:
        """Where `comparable` is not given (a scenario's verdict), only a clean pass compares."""
        if isinstance(data, dict) and "comparable" not in data:
            return {**data, "comparable": data.get("status") == "pass"}
        return data


def judge(
    *,
    status: str,
    error: str | None,
    warmup_iterations: int,
    headline: Headline | None,
    stopping: Stopping | None,
    gpu: GpuUsage,
    memory_seen_by_torch_allocator: bool,
    on_gpu: bool,
    max_cv: float,
) -> Verdict:
    """The cell's verdict from its recorded outcome and measurements.

    A warning is kept for what makes a number doubtful: intervals that did not narrow, clocks that fell,
    repeats that disagree, no warmup. A percentile without enough requests is null in the result, with
    its reason, and no warning: the headline numbers do not rest on it.
    """
    if status != "ok":
        return Verdict(status="fail", reasons=[f"no measurement ({status}): {error}"], comparable=False)
    failures, warnings = [], []
    if on_gpu and not memory_seen_by_torch_allocator and gpu.nvml_device_memory_used_peak_bytes is None:
        failures.append("memory only from the torch allocator, but this backend allocates outside it")
    slowed = slowdown_warning(gpu)
    if slowed:
        warnings.append(slowed)
    if warmup_iterations == 0:
        warnings.append(NO_WARMUP)
    biased = bool(slowed) or warmup_iterations == 0
    not_converged = stopping.not_converged_reason() if stopping is not None else None
    if not_converged:
        warnings.append(not_converged)
    if headline is not None:
        for name, value in headline.model_dump().items():
            if value["cv"] is not None and value["cv"] > max_cv:
                warnings.append(f"{name} varies across repeats: CV {value['cv']:.1%} > {max_cv:.0%}")
    if failures:
        return Verdict(status="fail", reasons=failures + warnings, comparable=False)
    return Verdict(status="warn" if warnings else "pass", reasons=warnings, comparable=not biased)
