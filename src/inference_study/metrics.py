"""Request-level latency metrics and throughput, with trtllm-bench / MLPerf definitions.

TTFT = first token time − request start; E2E = last token time − request start;
TPOT = (E2E − TTFT) / (OSL − 1); ITL = gaps between consecutive tokens of a request.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inference_study.backend import Generation
from inference_study.strict import Record

PERCENTILES = (50, 90, 95, 99)


class Stats(Record):
    """Distribution summary of one metric, in seconds."""

    n: int
    mean: float
    std: float
    p50: float
    p90: float
    p95: float
    p99: float


class Latency(Record):
    ttft_s: Stats
    tpot_s: Stats
    itl_s: Stats
    e2e_s: Stats


class Throughput(Record):
    requests_per_s: float
    output_tokens_per_s: float
    total_tokens_per_s: float
    decode_steps_per_s: float


def summarize(samples: Sequence[float]) -> Stats:
    """Mean, sample standard deviation and percentiles (numpy's linear interpolation)."""
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        raise ValueError("cannot summarize an empty sample")
    p50, p90, p95, p99 = np.percentile(values, PERCENTILES)
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return Stats(n=int(values.size), mean=float(values.mean()), std=std, p50=p50, p90=p90, p95=p95, p99=p99)


def request_latencies(generation: Generation) -> list[dict[str, object]]:
    """Per-request TTFT, E2E, TPOT and ITLs of one generate call."""
    requests = []
    for times in generation.token_times:
        ttft = times[0] - generation.start
        e2e = times[-1] - generation.start
        requests.append(
            {
                "ttft": ttft,
                "e2e": e2e,
                "tpot": (e2e - ttft) / (len(times) - 1),
                "itl": list(np.diff(times)),
            }
        )
    return requests


def latency(generations: Sequence[Generation]) -> Latency:
    """Latency distributions over every request of every timed iteration."""
    requests = [r for g in generations for r in request_latencies(g)]
    return Latency(
        ttft_s=summarize([r["ttft"] for r in requests]),
        tpot_s=summarize([r["tpot"] for r in requests]),
        itl_s=summarize([gap for r in requests for gap in r["itl"]]),
        e2e_s=summarize([r["e2e"] for r in requests]),
    )


def throughput(generations: Sequence[Generation], input_len: int) -> Throughput:
    """Aggregate rates: total work over the total busy time of the timed iterations."""
    wall = sum(max(times[-1] for times in g.token_times) - g.start for g in generations)
    requests = sum(len(g.token_times) for g in generations)
    output_tokens = sum(len(times) for g in generations for times in g.token_times)
    decode_steps = sum(max(len(times) for times in g.token_times) - 1 for g in generations)
    decode_wall = sum(
        max(times[-1] for times in g.token_times) - min(times[0] for times in g.token_times) for g in generations
    )
    return Throughput(
        requests_per_s=requests / wall,
        output_tokens_per_s=output_tokens / wall,
        total_tokens_per_s=(output_tokens + requests * input_len) / wall,
        decode_steps_per_s=decode_steps / decode_wall,
    )


class Interval(Record):
    """A headline metric over the timed iterations: median, its bootstrap confidence interval, and CV.

    Each timed iteration is one repeat; `ci_low`/`ci_high` are null below two repeats (no spread).
    """

    value: float
    ci_low: float | None
    ci_high: float | None
    cv: float | None
    repeats: int


class Headline(Record):
    ttft_p50_s: Interval
    tpot_p50_s: Interval
    output_tokens_per_s: Interval


CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000


def interval(per_repeat: Sequence[float]) -> Interval:
    """Median of the repeats with a seeded percentile-bootstrap CI (scipy) and the coefficient of variation."""
    from scipy import stats  # heavy: scipy.stats loads only to bootstrap an interval

    values = np.asarray(per_repeat, dtype=np.float64)
    median = float(np.median(values))
    if values.size < 2:
        return Interval(value=median, ci_low=None, ci_high=None, cv=None, repeats=int(values.size))
    if np.all(values == values[0]):
        low = high = median
    else:
        result = stats.bootstrap(
            (values,), np.median, confidence_level=CONFIDENCE, n_resamples=BOOTSTRAP_RESAMPLES,
            method="percentile", rng=np.random.default_rng(0),
        )
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    cv = float(values.std(ddof=1) / values.mean()) if values.mean() else None
    return Interval(value=median, ci_low=low, ci_high=high, cv=cv, repeats=int(values.size))


def headline(generations: Sequence[Generation]) -> Headline:
    """TTFT P50, TPOT P50 and output tok/s of each timed iteration, summarized across iterations."""
    per_iteration = [request_latencies(g) for g in generations]
    return Headline(
        ttft_p50_s=interval([np.median([r["ttft"] for r in requests]) for requests in per_iteration]),
        tpot_p50_s=interval([np.median([r["tpot"] for r in requests]) for requests in per_iteration]),
        output_tokens_per_s=interval([throughput([g], 0).output_tokens_per_s for g in generations]),
    )
