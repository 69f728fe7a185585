"""Validity verdicts: each check moves a cell to warn or fail for the right reason, and only then."""

from __future__ import annotations

import pytest

from inference_study.gpu import GpuUsage
from inference_study.metrics import Headline, summarize
from inference_study.stopping import Stopping
from inference_study.uncertainty import Interval
from inference_study.validity import judge

CONVERGED = Stopping(reason="converged", iterations=20, requests=20, seconds=2.0, converged=True,
                     target_half_width=0.02, half_widths={"tpot_p50_s": 0.01})


def _headline(cv: float) -> Headline:
    steady = Interval(value=1.0, ci_low=0.99, ci_high=1.01, cv=0.01, repeats=10)
    return Headline(ttft_p50_s=steady, tpot_p50_s=steady,
                    output_tokens_per_s=Interval(value=100.0, ci_low=90.0, ci_high=110.0, cv=cv, repeats=10))


STEADY_GPU = GpuUsage(nvml_device_memory_used_peak_bytes=1 << 30, torch_allocated_peak_bytes=1 << 29,
                      torch_reserved_peak_bytes=1 << 29, utilization_mean_pct=90.0, utilization_max_pct=100.0,
                      power_mean_w=300.0, sm_clock_min_mhz=1980, sm_clock_max_mhz=1980, slowdown_reasons=[],
                      samples=50)


def _judge(**changes):
    arguments = dict(status="ok", error=None, warmup_iterations=2, headline=_headline(0.01), stopping=CONVERGED,
                     gpu=STEADY_GPU, memory_seen_by_torch_allocator=True, on_gpu=True, max_cv=0.05)
    return judge(**(arguments | changes))


def test_a_clean_cell_passes() -> None:
    verdict = _judge()
    assert (verdict.status, verdict.reasons) == ("pass", [])


def test_no_measurement_fails_with_the_error() -> None:
    verdict = _judge(status="oom", error="GPU out of memory", headline=None, stopping=None)
    assert verdict.status == "fail" and "GPU out of memory" in verdict.reasons[0]


def test_no_warmup_warns() -> None:
    verdict = _judge(warmup_iterations=0)
    assert verdict.status == "warn" and "no warmup" in verdict.reasons[0]


@pytest.mark.parametrize("requests", [5, 20, 99])
def test_a_percentile_short_of_samples_is_null_and_no_warning(requests: int) -> None:
    stats = summarize([0.01 * (1 + i % 7) for i in range(requests)])
    missing = stats.missing_percentiles()
    for name, needed in (("p90", 10), ("p95", 20), ("p99", 100)):
        assert (getattr(stats, name) is None) == (requests < needed)
        assert (name in missing) == (requests < needed)
    assert missing, "every case here is short of P99"
    assert f"P99 needs >= 100 samples; {requests} were timed" == missing["p99"]
    assert _judge().status == "pass", "the verdict does not look at percentiles"


def test_a_cell_that_hit_a_maximum_before_converging_warns_with_its_figures() -> None:
    stopped = Stopping(reason="max_seconds", iterations=12, requests=12, seconds=30.4, converged=False,
                       target_half_width=0.02, half_widths={"ttft_p50_s": 0.01, "tpot_p50_s": 0.034})
    verdict = _judge(stopping=stopped)
    assert verdict.status == "warn"
    assert verdict.reasons == ["not converged: stopped at max_seconds after 12 iterations (12 requests, 30.4 s); "
                               "tpot_p50_s ±3.4% > target ±2.0%"]
    assert _judge(stopping=stopped.model_copy(update={"converged": None, "reason": "fixed_iterations"})).status == \
        "pass", "an old fixed-count cell is not judged on convergence"


def test_torch_allocator_alone_fails_for_an_engine_that_allocates_outside_it() -> None:
    blind = STEADY_GPU.model_copy(update={"nvml_device_memory_used_peak_bytes": None})
    assert _judge(gpu=blind).status == "pass", "torch backends are seen by their own allocator"
    verdict = _judge(gpu=blind, memory_seen_by_torch_allocator=False)
    assert verdict.status == "fail" and "allocates outside" in verdict.reasons[0]


@pytest.mark.parametrize(("clock_min", "reasons", "warning"), [
    # the H200 case: the power-cap counter moved while every clock reading stayed at 1980 MHz
    (1980, ["power cap (violation counter): clocks held 71% of the timing"], None),
    (1950, ["software power cap"], None),  # a 1.5% wobble is within the limit, whatever the counters say
    (1245, ["software power cap", "power cap (violation counter): clocks held 99% of the timing"],
     "SM clock fell from 1980 to 1245 MHz (-37%) (software power cap, power cap (violation counter)"),
    (1500, [], "SM clock fell from 1980 to 1500 MHz (-24%)"),  # fell, with no reason NVML could name
])
def test_only_a_clock_that_fell_is_a_slowdown_and_the_counters_are_its_evidence(clock_min, reasons, warning) -> None:
    gpu = STEADY_GPU.model_copy(update={"sm_clock_min_mhz": clock_min, "slowdown_reasons": reasons,
                                        "memory_clock_min_mhz": 2619, "memory_clock_max_mhz": 2619})
    verdict = _judge(gpu=gpu)
    if warning is None:
        assert verdict.status == "pass", verdict.reasons
    else:
        assert verdict.status == "warn" and warning in verdict.reasons[0]


def test_repeats_that_disagree_warn() -> None:
    verdict = _judge(headline=_headline(0.2))
    assert verdict.status == "warn" and "output_tokens_per_s varies across repeats: CV 20.0%" in verdict.reasons[0]
    assert _judge(headline=_headline(0.04)).status == "pass"
