"""When to stop timing: on evidence, not after a fixed count.

Timed iterations go on until the minimum requests and seconds are met and every headline metric's 95%
interval is within the target relative half-width, or until a maximum (requests or seconds) is hit.
This is optimum-benchmark's "at least N iterations and T seconds" joined with AIPerf's convergence
on interval width; a cell that hits a maximum first is recorded as not converged, with its widths.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from pydantic import Field, model_validator

from inference_study.strict import PositiveInt, Record, Strict
from inference_study.tensor_parallel import agree
from inference_study.uncertainty import Interval

FIXED_COUNT_REFUSED = ("a fixed count of timed iterations is the protocol of old results, read only to rebuild "
                       "their reports; remove it: timing stops on evidence, by bench.stopping")


StopReason = Literal["converged", "max_requests", "max_seconds", "processes_disagree", "fixed_iterations"]


class StoppingRule(Strict):
    """How long a cell's (or a scenario arm's) timed iterations run."""

    min_requests: PositiveInt = Field(description="timed requests before the cell may stop as converged")
    max_requests: PositiveInt = Field(description="timed requests after which the cell stops, converged or not")
    min_seconds: float = Field(ge=0, allow_inf_nan=False, description="timed seconds before it may stop")
    max_seconds: float = Field(gt=0, allow_inf_nan=False, description="timed seconds after which it stops")
    target_half_width: float = Field(
        gt=0, lt=1, allow_inf_nan=False,
        description="95% interval half-width, relative to the median, every headline metric must reach")

    @model_validator(mode="after")
    def _reachable(self) -> StoppingRule:
        if self.max_requests < self.min_requests:
            raise ValueError(f"max_requests {self.max_requests} is under min_requests {self.min_requests}")
        if self.max_seconds < self.min_seconds:
            raise ValueError(f"max_seconds {self.max_seconds} is under min_seconds {self.min_seconds}")
        return self


class Stopping(Record):
    """Why and when a timed loop stopped, with the half-widths it had reached."""

    reason: StopReason
    iterations: int
    requests: int
    seconds: float | None
    converged: bool | None = Field(description="stopped because the minimums were met and every headline "
                                   "half-width was within the target; null: not judged (old results)")
    target_half_width: float | None
    half_widths: dict[str, float | None]

    def not_converged_reason(self) -> str | None:
        """The verdict's warning when the loop hit a maximum before its intervals narrowed; else None."""
        if self.converged is not False:
            return None
        wide = ", ".join(f"{name} ±{width:.1%}" if width is not None else f"{name} (no interval)"
                         for name, width in self.half_widths.items()
                         if width is None or width > (self.target_half_width or 0))
        why = f"{wide} > target ±{self.target_half_width:.1%}" if wide else "before the minimum requests and seconds"
        if self.reason == "processes_disagree":
            return f"not converged: each process converged, but over the processes {why}"
        return (f"not converged: stopped at {self.reason} after {self.iterations} iterations ({self.requests} "
                f"requests, {self.seconds or 0:.1f} s); {why}")


def half_widths(intervals: dict[str, Interval]) -> dict[str, float | None]:
    return {name: value.half_width for name, value in intervals.items()}


def within_target(widths: dict[str, float | None], target: float) -> bool:
    return all(width is not None and width <= target for width in widths.values())


def run_until_converged(
    iterate: Callable[[], int],
    intervals: Callable[[], dict[str, Interval]],
    rule: StoppingRule,
    clock: Callable[[], float] = time.perf_counter,
) -> Stopping:
    """Call `iterate` (one timed iteration; returns its request count) until `rule` says stop.

    `intervals` summarizes the iterations so far; between iterations it is only asked once the minimums are
    met, so the short checks stay few (and once more at a maximum, for the half-widths reached). Time is the
    sum of the iterations' own durations on `clock` (the checks between them are not timed work). In a
    tensor-parallel unit, rank 0's clock and intervals decide for every rank.
    """
    iterations = requests = 0
    seconds = 0.0
    widths: dict[str, float | None] = {}
    reason: StopReason | None = None
    while reason is None:
        start = clock()
        requests += iterate()
        seconds += clock() - start
        iterations += 1
        if requests >= rule.min_requests and seconds >= rule.min_seconds:
            widths = half_widths(intervals())
            if within_target(widths, rule.target_half_width):
                reason = "converged"
        if reason is None and requests >= rule.max_requests:
            reason = "max_requests"
        if reason is None and seconds >= rule.max_seconds:
            reason = "max_seconds"
        reason = agree(reason)  # the ranks of a tensor-parallel unit stop together, when rank 0 does
    if reason != "converged":
        widths = half_widths(intervals())
    return Stopping(reason=reason, iterations=iterations, requests=requests, seconds=seconds,
                    converged=reason == "converged", target_half_width=rule.target_half_width, half_widths=widths)
