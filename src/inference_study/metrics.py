"""Request-level latency metrics and throughput, with trtllm-bench / MLPerf definitions.

TTFT = first token time − request start; E2E = last token time − request start;
TPOT = (E2E − TTFT) / (OSL − 1); ITL = gaps between consecutive tokens of a request.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from inference_study.backends.base import Generation

PERCENTILES = (50, 90, 95, 99)


class Stats(BaseModel):
    """Distribution summary of one metric, in seconds."""

    model_config = ConfigDict(extra="forbid")
    n: int
    mean: float
    std: float
    p50: float
    p90: float
    p95: float
    p99: float


class Latency(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ttft_s: Stats
    tpot_s: Stats
    itl_s: Stats
    e2e_s: Stats


class Throughput(BaseModel):
    model_config = ConfigDict(extra="forbid")
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
