"""A validity verdict per cell: pass, warn or fail, with the reasons, so no number is trusted blindly.

A `fail` cell never feeds a speedup. The checks follow what users of LLM benchmarks most often get
wrong: token counts that differ from the request, timings that include warmup work, percentiles
from too few samples, memory read from an allocator that does not see the backend's memory (the
TensorRT-LLM engine benchmark's "0.05 GB"), clocks that fell under the measurement, and repeats that disagree.
"""

from __future__ import annotations

from typing import Literal

from inference_study.gpu import GpuUsage
from inference_study.metrics import Headline, Latency
from inference_study.strict import Record

# A percentile p is only more than the sample maximum with at least 100 / (100 − p) samples.
MIN_SAMPLES = {"p90": 10, "p95": 20, "p99": 100}
CLOCK_SPREAD_LIMIT = 0.05


class Verdict(Record):
    status: Literal["pass", "warn", "fail"]
    reasons: list[str]


def _percentile_reasons(latency: Latency) -> list[str]:
    short = [
        f"{percentile.upper()} from {latency.e2e_s.n} requests (needs >= {needed})"
        for percentile, needed in MIN_SAMPLES.items()
        if latency.e2e_s.n < needed
    ]
    return [f"too few samples: {', '.join(short)}"] if short else []


def _gpu_reasons(gpu: GpuUsage, memory_seen_by_torch_allocator: bool, on_gpu: bool) -> tuple[list[str], list[str]]:
    """(failures, warnings) about memory sources and clocks."""
    failures, warnings = [], []
    if on_gpu and not memory_seen_by_torch_allocator and gpu.nvml_device_memory_used_peak_bytes is None:
        failures.append("memory only from the torch allocator, but this backend allocates outside it")
    # Only a clock that fell slowed the measurement. NVML's reason bits and violation counters are its
    # evidence, never a warning alone: on an H200 the power counter ran at full clocks too (docs/h200-probes.md).
    if gpu.sm_clock_min_mhz and gpu.sm_clock_max_mhz:
        fall = 1 - gpu.sm_clock_min_mhz / gpu.sm_clock_max_mhz
        if fall > CLOCK_SPREAD_LIMIT:
            evidence = f" ({', '.join(gpu.slowdown_reasons)})" if gpu.slowdown_reasons else ""
            warnings.append(f"GPU slowed down during the timing: SM clock fell from {gpu.sm_clock_max_mhz} to "
                            f"{gpu.sm_clock_min_mhz} MHz (-{fall:.0%}){evidence}")
    return failures, warnings


def judge(
    *,
    status: str,
    error: str | None,
    warmup_iterations: int,
    latency: Latency | None,
    headline: Headline | None,
    gpu: GpuUsage,
    memory_seen_by_torch_allocator: bool,
    on_gpu: bool,
    max_cv: float,
) -> Verdict:
    """The cell's verdict from its recorded outcome and measurements."""
    if status != "ok":
        return Verdict(status="fail", reasons=[f"no measurement ({status}): {error}"])
    failures, warnings = _gpu_reasons(gpu, memory_seen_by_torch_allocator, on_gpu)
    if warmup_iterations == 0:
        warnings.append("no warmup: compilation and first-call allocations are inside the timings")
    if latency is not None:
        warnings += _percentile_reasons(latency)
    if headline is not None:
        for name, value in headline.model_dump().items():
            if value["cv"] is not None and value["cv"] > max_cv:
                warnings.append(f"{name} varies across repeats: CV {value['cv']:.1%} > {max_cv:.0%}")
    if failures:
        return Verdict(status="fail", reasons=failures + warnings)
    return Verdict(status="warn" if warnings else "pass", reasons=warnings)
