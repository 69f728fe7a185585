"""The stopping rule: every way a timed loop stops, on a scripted clock and scripted repeats."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from pydantic import ValidationError

from inference_study.gpu import GpuUsage
from inference_study.harness import Measured, _pooled
from inference_study.stopping import StoppingRule, run_until_converged
from inference_study.uncertainty import interval

RULE = dict(min_requests=10, max_requests=400, min_seconds=1.0, max_seconds=30.0, target_half_width=0.02)


class Scripted:
    """A timed loop whose iterations take `step_s` on a fake clock and give the next value of `values`."""

    def __init__(self, values, step_s: float, batch: int = 1):
        self.values, self.step_s, self.batch = iter(values), step_s, batch
        self.now, self.seen = 0.0, []

    def clock(self) -> float:
        return self.now

    def iterate(self) -> int:
        self.now += self.step_s
        self.seen.append(next(self.values))
        return self.batch

    def intervals(self):
        return {"tpot_p50_s": interval([self.seen])}


def _run(scripted: Scripted, **changes):
    return run_until_converged(scripted.iterate, scripted.intervals, StoppingRule(**(RULE | changes)), scripted.clock)


def test_a_steady_cell_converges_once_the_minimums_are_met() -> None:
    steady = Scripted(itertools.cycle([1.0, 1.001, 0.999]), step_s=0.05)
    stopping = _run(steady)
    assert stopping.reason == "converged" and stopping.converged
    assert stopping.iterations == 20, "min_seconds 1.0 at 0.05 s per iteration: 20 iterations, not fewer"
    assert stopping.requests == stopping.iterations and stopping.seconds == pytest.approx(20 * 0.05)
    assert stopping.half_widths["tpot_p50_s"] <= RULE["target_half_width"]
    assert stopping.not_converged_reason() is None


def test_the_minimum_requests_hold_back_a_fast_steady_cell() -> None:
    steady = Scripted(itertools.cycle([1.0, 1.001]), step_s=0.5, batch=4)
    stopping = _run(steady, min_requests=48)
    assert (stopping.reason, stopping.requests, stopping.iterations) == ("converged", 48, 12)


def test_a_noisy_cell_stops_at_max_seconds_without_converging() -> None:
    noisy = Scripted(np.random.default_rng(0).lognormal(0, 0.5, 10_000), step_s=0.5)
    stopping = _run(noisy)
    assert stopping.reason == "max_seconds" and stopping.converged is False
    assert stopping.iterations == 60 and stopping.seconds == pytest.approx(30.0)
    assert stopping.half_widths["tpot_p50_s"] > RULE["target_half_width"]
    assert "not converged: stopped at max_seconds after 60 iterations" in stopping.not_converged_reason()


def test_a_noisy_fast_cell_stops_at_max_requests() -> None:
    noisy = Scripted(np.random.default_rng(0).lognormal(0, 0.5, 10_000), step_s=0.001, batch=8)
    stopping = _run(noisy)
    assert stopping.reason == "max_requests" and stopping.converged is False
    assert stopping.requests == 400 and stopping.iterations == 50


def test_a_cell_longer_than_max_seconds_stops_after_one_iteration_with_no_interval() -> None:
    slow = Scripted(itertools.repeat(1.0), step_s=45.0)
    stopping = _run(slow)
    assert (stopping.reason, stopping.iterations, stopping.converged) == ("max_seconds", 1, False)
    assert stopping.half_widths == {"tpot_p50_s": None}
    assert "tpot_p50_s (no interval)" in stopping.not_converged_reason()


@pytest.mark.parametrize(("changes", "key", "message"), [
    ({"max_requests": 5}, "", "max_requests 5 is under min_requests 10"),
    ({"max_seconds": 0.5}, "", "max_seconds 0.5 is under min_seconds 1.0"),
    ({"target_half_width": 0.0}, "target_half_width", "greater than 0"),
    ({"target_half_width": float("inf")}, "target_half_width", "finite number"),
    ({"max_seconds": float("inf")}, "max_seconds", "finite number"),
    ({"min_requests": 0}, "min_requests", "greater than 0"),
])
def test_a_rule_that_cannot_be_met_is_refused(changes, key, message) -> None:
    with pytest.raises(ValidationError) as caught:
        StoppingRule(**(RULE | changes))
    error = caught.value.errors()[0]
    assert ".".join(str(part) for part in error["loc"]) == key
    assert message in error["msg"]


def test_a_maximum_hit_before_the_minimum_seconds_is_not_converged_even_with_narrow_intervals() -> None:
    steady = Scripted(itertools.cycle([1.0, 1.001, 0.999]), step_s=0.001, batch=8)
    stopping = _run(steady, max_requests=80)
    assert (stopping.reason, stopping.requests, stopping.converged) == ("max_requests", 80, False)
    assert stopping.half_widths["tpot_p50_s"] <= RULE["target_half_width"], "narrow, yet short of min_seconds"
    assert stopping.not_converged_reason().endswith("before the minimum requests and seconds")


def test_processes_that_each_converged_but_disagree_are_not_converged() -> None:
    """`bench.processes`: the pooled record is judged on the interval over processes, not on each process's."""
    rule = StoppingRule(**RULE)
    runs = []
    for shift in (0.0, 0.2, -0.2, 0.1, -0.1, 0.3):
        scripted = Scripted(itertools.cycle([1.0 + shift, 1.001 + shift]), step_s=0.05)
        stopping = run_until_converged(scripted.iterate, scripted.intervals, rule, scripted.clock)
        assert stopping.converged
        runs.append(Measured(per_iteration=[{"ttft_p50_s": v, "tpot_p50_s": v, "output_tokens_per_s": 1 / v}
                                            for v in scripted.seen],
                             phases={"load_s": 1.0, "warmup_s": 2.0, "measure_s": 1.0}, stopping=stopping,
                             gpu=GpuUsage()))
    pooled = _pooled(runs, rule).stopping
    assert (pooled.reason, pooled.converged) == ("processes_disagree", False)
    assert pooled.iterations == sum(run.stopping.iterations for run in runs)
    assert pooled.half_widths["tpot_p50_s"] > RULE["target_half_width"]
    assert "each process converged, but over the processes" in pooled.not_converged_reason()
