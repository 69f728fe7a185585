"""Latency and throughput metrics against values computed by hand from exact timestamps.

TTFT = first token − start; E2E = last token − start; TPOT = (E2E − TTFT) / (OSL − 1);
ITL = gaps between consecutive tokens; percentiles use linear interpolation between order statistics.
"""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from inference_study.backend import Generation
from inference_study.metrics import Stats, latency, request_latencies, summarize, throughput

approx = pytest.approx


def _generation(start: float, times: list[float], batch: int = 1) -> Generation:
    """Static batching: every request of the batch shares the same token times."""
    return Generation(
        output_ids=[list(range(len(times))) for _ in range(batch)],
        start=start,
        token_times=[list(times) for _ in range(batch)],
    )


# ---------------------------------------------------------------- summarize


def test_summarize_small_sample_by_hand() -> None:
    stats = summarize([1.0, 2.0, 3.0, 4.0])
    # mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, over n-1 = 3
    # p50 at rank h = (n-1)/2 = 1.5 → 2.5; the tails need 10, 20 and 100 samples, so they are null
    assert stats.n == 4
    assert stats.mean == approx(2.5)
    assert stats.std == approx(math.sqrt(5 / 3))
    assert stats.p50 == approx(2.5)
    assert (stats.p90, stats.p95, stats.p99) == (None, None, None)


@pytest.mark.parametrize("n", [10, 20, 100])
def test_summarize_tail_percentiles_once_there_are_enough_samples(n: int) -> None:
    stats = summarize([float(v) for v in range(1, n + 1)])
    # percentile p of 1..n at rank h = (n-1) p/100, linear between neighbours: 1 + h
    for name, p, needed in (("p90", 90, 10), ("p95", 95, 20), ("p99", 99, 100)):
        expected = 1 + (n - 1) * p / 100 if n >= needed else None
        assert getattr(stats, name) == (approx(expected) if expected is not None else None)


def test_summarize_is_order_independent_and_odd_sample() -> None:
    stats = summarize([5.0, 1.0, 3.0])
    # sorted 1, 3, 5: p50 → rank 1 → 3; std sqrt((4+0+4)/2) = 2
    assert stats.mean == approx(3.0)
    assert stats.p50 == approx(3.0)
    assert stats.std == approx(2.0)


def test_summarize_single_value_has_zero_std() -> None:
    stats = summarize([0.25])
    assert stats.n == 1
    assert stats.std == 0.0
    assert stats.mean == stats.p50 == approx(0.25)
    assert stats.missing_percentiles() == {"p90": "P90 needs >= 10 samples; 1 were timed",
                                           "p95": "P95 needs >= 20 samples; 1 were timed",
                                           "p99": "P99 needs >= 100 samples; 1 were timed"}


def test_summarize_empty_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        summarize([])


def test_stats_forbid_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        Stats(n=1, mean=1, std=0, p50=1, p90=1, p95=1, p99=1, p999=1)


# ---------------------------------------------------------------- per-request latency


def test_request_latencies_by_hand() -> None:
    generation = _generation(0.0, [0.1, 0.15, 0.2, 0.3])
    (request,) = request_latencies(generation)
    assert request["ttft"] == approx(0.1)
    assert request["e2e"] == approx(0.3)
    assert request["tpot"] == approx((0.3 - 0.1) / 3)
    assert request["itl"] == approx([0.05, 0.05, 0.1])


def test_request_latencies_are_relative_to_start() -> None:
    """Absolute perf_counter values are large; only differences from `start` matter."""
    offset = 12345.0
    (request,) = request_latencies(_generation(offset, [offset + 0.1, offset + 0.15, offset + 0.2, offset + 0.3]))
    assert request["ttft"] == approx(0.1)
    assert request["e2e"] == approx(0.3)
    assert request["tpot"] == approx(0.2 / 3)


def test_request_latencies_one_entry_per_request_with_own_times() -> None:
    """Continuous batching: requests of one call may finish at different times."""
    generation = Generation(
        output_ids=[[1, 2, 3], [4, 5, 6]], start=1.0, token_times=[[1.1, 1.2, 1.3], [1.2, 1.4, 1.8]]
    )
    first, second = request_latencies(generation)
    assert (first["ttft"], first["e2e"], first["tpot"]) == approx((0.1, 0.3, 0.1))
    assert (second["ttft"], second["e2e"], second["tpot"]) == approx((0.2, 0.8, 0.3))
    assert second["itl"] == approx([0.2, 0.4])


def test_latency_over_iterations_and_batch() -> None:
    generations = [
        _generation(0.0, [0.1, 0.15, 0.2, 0.3], batch=2),
        _generation(1.0, [1.2, 1.3, 1.4, 1.5], batch=2),
    ]
    result = latency(generations)
    # 2 iterations × 2 requests: TTFT 0.1, 0.1, 0.2, 0.2; E2E 0.3, 0.3, 0.5, 0.5
    assert result.ttft_s.n == 4
    assert result.ttft_s.mean == approx(0.15)
    assert result.ttft_s.std == approx(math.sqrt(4 * 0.05**2 / 3))
    assert result.ttft_s.p50 == approx(0.15)
    assert result.ttft_s.p90 is None and "latency.ttft_s.p90" in result.missing_percentiles()
    assert result.e2e_s.n == 4
    assert result.e2e_s.mean == approx(0.4)
    assert result.e2e_s.p50 == approx(0.4)
    # TPOT: (0.3-0.1)/3 twice and (0.5-0.2)/3 = 0.1 twice
    assert result.tpot_s.n == 4
    assert result.tpot_s.mean == approx((0.2 / 3 + 0.1) / 2)
    assert result.tpot_s.p50 == approx((0.2 / 3 + 0.1) / 2)
    # ITL: 3 gaps per request × 4 requests = 12: [0.05, 0.05, 0.1] ×2 and [0.1, 0.1, 0.1] ×2
    assert result.itl_s.n == 12
    assert result.itl_s.mean == approx((0.2 * 2 + 0.3 * 2) / 12)
    assert result.itl_s.p50 == approx(0.1)
    assert result.itl_s.p90 == approx(0.1)
    # 4 gaps of 0.05 and 8 of 0.1, mean 1/12: squared deviations 4·(1/30)² + 8·(1/60)² = 6/900, over 11
    assert result.itl_s.std == approx(math.sqrt(6 / 900 / 11))


def test_tpot_equals_mean_itl_of_each_request() -> None:
    """Per request, (E2E − TTFT)/(OSL − 1) is the mean of its ITLs (the definitions agree)."""
    generation = _generation(0.0, [0.3, 0.31, 0.37, 0.40, 0.52, 0.53])
    (request,) = request_latencies(generation)
    assert request["tpot"] == approx(sum(request["itl"]) / len(request["itl"]))
    assert request["tpot"] == approx((0.53 - 0.3) / 5)


# ---------------------------------------------------------------- throughput


def test_throughput_two_iterations_batch_of_two() -> None:
    generations = [
        _generation(0.0, [0.1, 0.15, 0.2, 0.3], batch=2),
        _generation(1.0, [1.2, 1.3, 1.4, 1.5], batch=2),
    ]
    result = throughput(generations, input_len=10)
    # busy wall time: (0.3 - 0.0) + (1.5 - 1.0) = 0.8 s
    # requests 4, output tokens 4 × 4 = 16, input tokens 4 × 10 = 40
    # decode steps (OSL - 1) per call: 3 + 3 = 6 over (0.3-0.1) + (1.5-1.2) = 0.5 s
    assert result.requests_per_s == approx(4 / 0.8)
    assert result.output_tokens_per_s == approx(16 / 0.8)
    assert result.total_tokens_per_s == approx((16 + 40) / 0.8)
    assert result.decode_steps_per_s == approx(6 / 0.5)


def test_throughput_excludes_idle_time_between_iterations() -> None:
    """The gap between two calls (0.3 → 1.0 above) is not busy time; moving call 2 later changes nothing."""
    early = [_generation(0.0, [0.1, 0.2, 0.3]), _generation(1.0, [1.1, 1.2, 1.3])]
    late = [_generation(0.0, [0.1, 0.2, 0.3]), _generation(50.0, [50.1, 50.2, 50.3])]
    assert throughput(late, 8).model_dump() == approx(throughput(early, 8).model_dump())
    assert throughput(early, 8).requests_per_s == approx(2 / 0.6)


def test_throughput_uses_the_last_request_to_finish() -> None:
    """Unequal finish times within a call: wall time ends at the slowest request."""
    generation = Generation(
        output_ids=[[1, 2, 3], [4, 5, 6]], start=0.0, token_times=[[0.1, 0.2, 0.3], [0.15, 0.25, 0.45]]
    )
    result = throughput([generation], input_len=4)
    assert result.requests_per_s == approx(2 / 0.45)
    assert result.output_tokens_per_s == approx(6 / 0.45)
    assert result.total_tokens_per_s == approx((6 + 2 * 4) / 0.45)
    assert result.decode_steps_per_s == approx(2 / (0.45 - 0.1))


def test_headline_uses_one_value_per_iteration() -> None:
    from inference_study.metrics import headline, iteration_headline

    fast = Generation(output_ids=[[1, 2, 3]], start=0.0, token_times=[[0.1, 0.2, 0.3]])
    slow = Generation(output_ids=[[1, 2, 3]], start=0.0, token_times=[[0.3, 0.5, 0.7]])
    result = headline([[iteration_headline(g) for g in (fast, slow, fast)]])
    assert result.ttft_p50_s.value == pytest.approx(0.1) and result.ttft_p50_s.repeats == 3
    assert result.tpot_p50_s.value == pytest.approx(0.1)
    # per-iteration output tok/s: 3/0.3 = 10, 3/0.7 = 4.2857, 10 → median 10
    assert result.output_tokens_per_s.value == pytest.approx(10.0)
    assert result.output_tokens_per_s.samples == [[pytest.approx(10.0), pytest.approx(3 / 0.7), pytest.approx(10.0)]]
