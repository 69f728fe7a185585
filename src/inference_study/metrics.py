"""Request-level latency metrics and throughput, with trtllm-bench / MLPerf definitions.

TTFT = first token time − request start; E2E = last token time − request start;
TPOT = (E2E − TTFT) / (OSL − 1); ITL = gaps between consecutive tokens of a request.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inference_study.backend import Generation
from inference_study.strict import Record
from inference_study.uncertainty import Interval, interval

PERCENTILES = (50, 90, 95, 99)
# A percentile p says more than the sample maximum only with at least 100 / (100 - p) samples; below that
# it is null, with this reason (MLPerf and AIPerf ask for far more: these are the least that mean anything).
MIN_SAMPLES = {"p90": 10, "p95": 20, "p99": 100}


class Stats(Record):
    """Distribution summary of one metric, in seconds; a tail percentile short of samples is null."""

    n: int
    mean: float
    std: float
    p50: float
    p90: float | None
    p95: float | None
    p99: float | None

    def missing_percentiles(self) -> dict[str, str]:
        """Why each null percentile is null."""
        return {name: f"{name.upper()} needs >= {needed} samples; {self.n} were timed"
                for name, needed in MIN_SAMPLES.items() if getattr(self, name) is None}


class Latency(Record):
    ttft_s: Stats
    tpot_s: Stats
    itl_s: Stats
    e2e_s: Stats

    def missing_percentiles(self) -> dict[str, str]:
        """`latency.<metric>.<percentile>` → why it is null, for the result's null reasons."""
        return {f"latency.{metric}.{name}": why for metric in Latency.model_fields
                for name, why in getattr(self, metric).missing_percentiles().items()}


class Throughput(Record):
    requests_per_s: float
    output_tokens_per_s: float
    total_tokens_per_s: float
    decode_steps_per_s: float


def summarize(samples: Sequence[float]) -> Stats:
    """Mean, sample standard deviation and percentiles (numpy's linear interpolation), each tail percentile
    only where there are enough samples for it."""
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        raise ValueError("cannot summarize an empty sample")
    found = dict(zip(("p50", "p90", "p95", "p99"), (float(v) for v in np.percentile(values, PERCENTILES))))
    tails = {name: found[name] if values.size >= needed else None for name, needed in MIN_SAMPLES.items()}
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return Stats(n=int(values.size), mean=float(values.mean()), std=std, p50=found["p50"], **tails)


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


class Headline(Record):
    ttft_p50_s: Interval
    tpot_p50_s: Interval
    output_tokens_per_s: Interval


def iteration_headline(generation: Generation) -> dict[str, float]:
    """TTFT P50, TPOT P50 and output tok/s of one timed iteration (one repeat of each headline metric)."""
    requests = request_latencies(generation)
    return {"ttft_p50_s": float(np.median([r["ttft"] for r in requests])),
            "tpot_p50_s": float(np.median([r["tpot"] for r in requests])),
            "output_tokens_per_s": throughput([generation], 0).output_tokens_per_s}


def headline(per_iteration: Sequence[Sequence[dict[str, float]]]) -> Headline:
    """Each headline metric over the repeats, `per_iteration[p]` being process p's iterations in order."""
    return Headline(**{name: interval([[values[name] for values in process] for process in per_iteration])
                       for name in Headline.model_fields})
