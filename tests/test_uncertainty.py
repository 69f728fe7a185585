"""Intervals on repeats and ratios of two measurements: coverage, seeding, and the "spans 1" rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from inference_study.uncertainty import MIN_REPEATS_FOR_INTERVAL, Interval, geometric_mean, interval, ratio


def test_the_median_interval_is_two_order_statistics_of_the_repeats() -> None:
    values = [1.0, 1.1, 0.9, 1.05, 0.95, 1.2, 0.85, 1.02, 0.98, 1.01]
    result = interval([values])
    assert result.value == float(np.median(values)) and result.repeats == len(values)
    assert result.ci_low in values and result.ci_high in values
    assert result.ci_low <= result.value <= result.ci_high
    assert result.cv == pytest.approx(np.std(values, ddof=1) / np.mean(values))
    assert result.half_width == pytest.approx((result.ci_high - result.ci_low) / 2 / result.value)
    assert result.samples == [values]


def test_below_six_repeats_there_is_no_interval() -> None:
    short = interval([[1.0, 1.1, 0.9, 1.05, 0.95]])
    assert MIN_REPEATS_FOR_INTERVAL == 6
    assert (short.ci_low, short.ci_high, short.half_width) == (None, None, None)
    assert interval([[1.0, 1.1, 0.9, 1.05, 0.95, 1.0]]).ci_low is not None


def test_the_interval_covers_the_true_median_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(1)
    true_median = float(stats.lognorm(0.3).median())
    trials = [interval([rng.lognormal(0, 0.3, 30).tolist()]) for _ in range(400)]
    covered = np.mean([t.ci_low <= true_median <= t.ci_high for t in trials])
    assert 0.92 <= covered <= 0.995, covered


def test_processes_that_disagree_widen_the_interval() -> None:
    rng = np.random.default_rng(2)
    within = [rng.normal(1.0, 0.01, 20).tolist() for _ in range(6)]
    apart = [(np.asarray(g) + shift).tolist() for g, shift in zip(within, (0.0, 0.1, -0.1, 0.05, -0.05, 0.02))]
    one_process = interval([sum(within, [])])
    spread = interval(apart)
    assert spread.repeats == 120 and len(spread.samples) == 6
    assert spread.half_width > 3 * one_process.half_width
    assert interval(apart) == spread, "the bootstrap is seeded"


def test_fewer_than_six_processes_give_no_interval_over_processes() -> None:
    rng = np.random.default_rng(3)
    five = [rng.normal(1.0, 0.01, 20).tolist() for _ in range(5)]
    result = interval(five)
    assert result.repeats == 100 and (result.ci_low, result.ci_high) == (None, None)
    assert interval(five[:1]).ci_low is not None, "one process of 20 repeats has its interval over repeats"


def _cell(center: float, spread: float, n: int = 30, seed: int = 0) -> Interval:
    return interval([np.random.default_rng(seed).normal(center, spread, n).tolist()])


def test_a_ratio_of_clearly_different_cells_is_faster_or_slower() -> None:
    fast, slow = _cell(200.0, 2.0), _cell(100.0, 1.0, seed=1)
    speedup = ratio(fast, slow)
    assert speedup.method == "bootstrap"
    assert speedup.value == pytest.approx(fast.value / slow.value)
    assert speedup.ci_low < speedup.value < speedup.ci_high
    assert speedup.distinguishable and speedup.wording() == "faster"
    assert ratio(slow, fast).wording() == "slower"
    assert ratio(fast, slow).wording(higher_is_better=False) == "slower", "for a latency, higher is worse"


def test_a_ratio_whose_interval_spans_one_is_not_distinguishable() -> None:
    same = ratio(_cell(100.0, 10.0), _cell(100.5, 10.0, seed=3))
    assert same.ci_low < 1.0 < same.ci_high
    assert not same.distinguishable and same.wording() == "not distinguishable"


def test_old_cells_without_repeats_give_the_wider_ratio_of_interval_ends() -> None:
    old = Interval(value=100.0, ci_low=95.0, ci_high=105.0, cv=0.02, repeats=10)
    base = Interval(value=50.0, ci_low=48.0, ci_high=52.0, cv=0.02, repeats=10)
    result = ratio(old, base)
    assert result.method == "interval ends"
    assert (result.ci_low, result.ci_high) == (95.0 / 52.0, 105.0 / 48.0)
    no_interval = ratio(Interval(value=1.0, ci_low=None, ci_high=None, cv=None, repeats=1), base)
    assert (no_interval.ci_low, no_interval.wording()) == (None, "no interval")


def test_geometric_mean_of_ratios_and_its_interval() -> None:
    ratios = [ratio(_cell(200.0, 4.0, seed=s), _cell(100.0, 2.0, seed=s + 10)) for s in range(4)]
    mean = geometric_mean(ratios)
    assert mean.value == pytest.approx(float(np.exp(np.mean(np.log([r.value for r in ratios])))))
    assert mean.ci_low < mean.value < mean.ci_high
    widest = max(np.log(r.ci_high / r.ci_low) for r in ratios)
    assert np.log(mean.ci_high / mean.ci_low) < widest, "averaging four independent ratios narrows the interval"
