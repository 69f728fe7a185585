"""How a scenario times what it compares: arms repeated round-robin until a stopping rule says stop, every
timing an Interval over its repeats, comparisons as speedups with intervals, and the verdict (no torch here).

A scenario's timed loop runs one request (or one sequence of requests) of every arm it compares per
iteration, so a change in the machine's load during the loop falls on every arm alike, instead of on
whichever arm happened to run then (the cause of a "speedup" of 18.58x between runs doing identical
work). The loop stops by `stopping.run_until_converged`: the rule's minimum requests and seconds, then
every headline interval within the target half-width, or a maximum. Seconds count timed work only
(`WorkClock`), never model loads, cache set-up or the checks between iterations.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from inference_study.scenarios.records import Comparison
from inference_study.stopping import Stopping, StoppingRule, run_until_converged
from inference_study.uncertainty import Interval, interval, ratio
from inference_study.validity import Verdict

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

# An Interval read from a record written before scenario timings were repeated to convergence: it kept the
# median of a fixed count of iterations and not that count, so its repeats are unrecorded (0).
UNRECORDED_REPEATS = 0


class WorkClock:
    """Seconds of timed work so far, as the scenario measured them: the clock `run_until_converged` reads."""

    def __init__(self) -> None:
        self.total = 0.0

    def add(self, seconds: float) -> None:
        self.total += seconds

    def __call__(self) -> float:
        return self.total


@dataclass
class Repeats(Generic[K, T]):
    """Every timed run of every arm, in order, and why the loop stopped."""

    runs: dict[K, list[T]]
    stopping: Stopping

    def interval(self, arm: K, value: Callable[[T], float]) -> Interval:
        return interval([[value(run) for run in self.runs[arm]]])


def converge(
    arms: Mapping[K, Callable[[], T]],
    *,
    warmup: int,
    rule: StoppingRule,
    work_s: Callable[[T], float],
    requests: Callable[[T], int],
    headline: Callable[[dict[K, list[T]]], dict[str, Interval]],
) -> Repeats[K, T]:
    """Warm every arm up `warmup` times, then run one of each per iteration, round-robin, until `rule` stops
    the loop on the `headline` intervals of the runs so far. `work_s` is a run's timed seconds and
    `requests` its request count (what the rule's limits count)."""
    for _ in range(warmup):
        for run in arms.values():
            run()
    runs: dict[K, list[T]] = {name: [] for name in arms}
    clock = WorkClock()

    def iterate() -> int:
        count = 0
        for name, run in arms.items():
            result = run()
            runs[name].append(result)
            clock.add(work_s(result))
            count += requests(result)
        return count

    stopping = run_until_converged(iterate, lambda: headline(runs), rule, clock)
    return Repeats(runs, stopping)


def unrepeated(value: float) -> Interval:
    """A timing from a record of before repeats were kept: its median alone, no interval."""
    return Interval(value=value, ci_low=None, ci_high=None, cv=None, repeats=UNRECORDED_REPEATS, samples=None)


def scaled(timing: Interval, factor: float) -> Interval:
    """The same timing in other units (seconds to milliseconds)."""
    samples = None if timing.samples is None else [[v * factor for v in group] for group in timing.samples]
    return timing.model_copy(update={
        "value": timing.value * factor,
        "ci_low": None if timing.ci_low is None else timing.ci_low * factor,
        "ci_high": None if timing.ci_high is None else timing.ci_high * factor,
        "samples": samples,
    })


def mean_of(timings: Sequence[Interval]) -> Interval:
    """Per repeat, the mean of several timings taken in the same iterations (A's and B's TTFT in one
    sequence), as one Interval; the mean of their medians, without an interval, when they kept no repeats."""
    series = [t.samples for t in timings]
    if all(s is not None and len(s) == 1 for s in series) and len({len(s[0]) for s in series}) == 1:
        return interval([np.mean([s[0] for s in series], axis=0).tolist()])
    return unrepeated(float(np.mean([t.value for t in timings])))


def time_speedup(what: str, subject: str, baseline: str, metric: str, subject_time: Interval,
                 baseline_time: Interval) -> Comparison:
    """`subject`'s speedup over `baseline` on a time (lower is better): baseline time / subject time."""
    return Comparison(what=what, subject=subject, baseline=baseline, metric=metric,
                      speedup=ratio(baseline_time, subject_time))


def rate_speedup(what: str, subject: str, baseline: str, metric: str, subject_rate: Interval,
                 baseline_rate: Interval) -> Comparison:
    """`subject`'s speedup over `baseline` on a rate (higher is better): subject rate / baseline rate."""
    return Comparison(what=what, subject=subject, baseline=baseline, metric=metric,
                      speedup=ratio(subject_rate, baseline_rate))


def control_warnings(controls: Sequence[Comparison]) -> list[str]:
    """A control that differs says timing differences of its size are noise here, whatever the claims say."""
    return [f"control differs: {c.sentence()}; equal work measured apart, so a claim of that size is noise here"
            for c in controls if c.speedup.distinguishable]


def verdict(*, warmup_iterations: int, stopping: Mapping[str, Stopping], intervals: Mapping[str, Interval],
            max_cv: float, controls: Sequence[Comparison]) -> Verdict:
    """pass, or warn with the reasons: no warmup, a loop that hit a maximum before its intervals narrowed,
    a timing whose repeats vary more than `max_cv`, a control that differed."""
    warnings = []
    if warmup_iterations == 0:
        warnings.append("no warmup: first-call allocations and lazy initialization are inside the timings")
    for loop, stopped in stopping.items():
        reason = stopped.not_converged_reason()
        if reason:
            warnings.append(f"{loop}: {reason}")
    warnings += [f"{name} varies across repeats: CV {timing.cv:.1%} > {max_cv:.0%}"
                 for name, timing in intervals.items() if timing.cv is not None and timing.cv > max_cv]
    warnings += control_warnings(controls)
    return Verdict(status="warn" if warnings else "pass", reasons=warnings)


def unrepeated_verdict(record_version: int, controls: Sequence[Comparison]) -> Verdict:
    """The verdict of a record from before repeats were kept (what it holds: medians, no intervals)."""
    return Verdict(status="warn", reasons=[
        (f"timings of record version {record_version}: medians of a fixed count of iterations, kept without their "
         "repeats, so no interval, convergence or CV; no timing difference is stated as faster or slower"),
        *control_warnings(controls),
    ])


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def shown(timing: Interval | None) -> str:
    """A timing for a table: the median and its 95% interval."""
    if timing is None:
        return "—"
    if timing.ci_low is None or timing.ci_high is None:
        return f"{_number(timing.value)} (no interval)"
    return f"{_number(timing.value)} [{_number(timing.ci_low)}, {_number(timing.ci_high)}]"


@dataclass(frozen=True)
class Policy:
    """How a scenario's timed loops stop, and how much their repeats may vary before the verdict warns."""

    rule: StoppingRule
    max_cv: float
