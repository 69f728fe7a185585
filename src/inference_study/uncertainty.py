"""Intervals on repeated measurements, and ratios of two measurements with theirs.

A headline metric is measured once per timed iteration (a repeat). Its value is the median of the
repeats, and its 95% interval is the distribution-free one for a median: two order statistics picked by
the binomial distribution (scipy's `quantile_test`), which holds whatever the distribution of the
repeats and needs at least 6 of them. Repeats made in several fresh processes are summarized by a
hierarchical bootstrap (processes, then repeats within each), so the interval covers what differs
between processes too. A ratio of two measurements (a speedup) is bootstrapped from both cells' repeats;
cells that kept no repeats (result schema 2) give the conservative ratio of their interval ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from inference_study.strict import Record

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
# The smallest sample whose two-sided 95% order-statistic interval of the median is finite: with 5 the
# chance that all repeats fall on one side of the median (2 / 2^5) is already above 5%.
MIN_REPEATS_FOR_INTERVAL = 6


class Interval(Record):
    """A metric over repeats: median, 95% interval, CV, and the repeats themselves (for ratios).

    `samples` holds the per-repeat values grouped by process (one list per fresh process); it is null in
    results of schema 2, which kept only the summary.
    """

    value: float
    ci_low: float | None
    ci_high: float | None
    cv: float | None
    repeats: int
    samples: list[list[float]] | None = None

    @property
    def half_width(self) -> float | None:
        """Half the interval's width relative to the value; None without an interval."""
        if self.ci_low is None or self.ci_high is None or not self.value:
            return None
        return (self.ci_high - self.ci_low) / 2 / abs(self.value)


def _cv(values: np.ndarray) -> float | None:
    return float(values.std(ddof=1) / values.mean()) if values.size > 1 and values.mean() else None


def _median_interval(values: np.ndarray) -> tuple[float | None, float | None]:
    from scipy import stats  # heavy: scipy.stats loads only to summarize repeats

    if values.size < MIN_REPEATS_FOR_INTERVAL:
        return None, None
    bounds = stats.quantile_test(values, q=float(np.median(values)), p=0.5).confidence_interval(CONFIDENCE)
    return float(bounds.low), float(bounds.high)


def bootstrap_medians(groups: Sequence[Sequence[float]], rng: np.random.Generator) -> np.ndarray:
    """BOOTSTRAP_RESAMPLES medians of resampled repeats: repeats alone for one group; groups, then repeats
    within each, for several (the hierarchical bootstrap)."""
    arrays = [np.asarray(g, dtype=np.float64) for g in groups if len(g)]
    if len(arrays) == 1:
        values = arrays[0]
        return np.median(values[rng.integers(0, values.size, (BOOTSTRAP_RESAMPLES, values.size))], axis=1)
    medians = np.empty(BOOTSTRAP_RESAMPLES)
    picks = rng.integers(0, len(arrays), (BOOTSTRAP_RESAMPLES, len(arrays)))
    for index, chosen in enumerate(picks):
        pooled = np.concatenate([arrays[g][rng.integers(0, arrays[g].size, arrays[g].size)] for g in chosen])
        medians[index] = np.median(pooled)
    return medians


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def interval(groups: Sequence[Sequence[float]]) -> Interval:
    """The Interval of repeats grouped by process (one group: an ordinary single-process cell); over processes
    it needs at least MIN_REPEATS_FOR_INTERVAL of them, as an interval over repeats needs that many repeats."""
    pooled = np.concatenate([np.asarray(g, dtype=np.float64) for g in groups])
    if pooled.size == 0:
        raise ValueError("cannot summarize an empty sample")
    median = float(np.median(pooled))
    processes = len([g for g in groups if len(g)])
    if processes == 1:
        low, high = _median_interval(pooled)
    elif processes >= MIN_REPEATS_FOR_INTERVAL:
        low, high = _percentiles(bootstrap_medians(groups, np.random.default_rng(0)))
    else:  # resampling 2 to 5 processes spans little more than their medians' range: no 95% interval
        low, high = None, None
    return Interval(value=median, ci_low=low, ci_high=high, cv=_cv(pooled), repeats=int(pooled.size),
                    samples=[[float(v) for v in g] for g in groups])


Wording = Literal["faster", "slower", "not distinguishable", "no interval"]


class Ratio(Record):
    """`numerator / denominator` of two measurements, with its 95% interval (null when either has none)."""

    value: float
    ci_low: float | None
    ci_high: float | None
    method: Literal["bootstrap", "interval ends", "log-normal combination", "none"]

    @property
    def distinguishable(self) -> bool:
        """Whether the interval excludes 1: only then is the ratio a difference to quote."""
        return self.ci_low is not None and self.ci_high is not None and not self.ci_low <= 1.0 <= self.ci_high

    def wording(self, higher_is_better: bool = True) -> Wording:
        """"faster" or "slower" when the interval excludes 1, else "not distinguishable"."""
        if self.ci_low is None:
            return "no interval"
        if not self.distinguishable:
            return "not distinguishable"
        return "faster" if (self.value > 1) == higher_is_better else "slower"


def ratio(numerator: Interval, denominator: Interval) -> Ratio:
    """The ratio of the two medians: bootstrapped from both cells' repeats where both kept them, else from the
    interval ends (low / high, high / low), which is wider than the true interval, never narrower."""
    value = numerator.value / denominator.value
    if numerator.samples and denominator.samples and min(numerator.repeats, denominator.repeats) >= \
            MIN_REPEATS_FOR_INTERVAL:
        rng = np.random.default_rng(0)
        low, high = _percentiles(bootstrap_medians(numerator.samples, rng) / bootstrap_medians(denominator.samples, rng))
        return Ratio(value=value, ci_low=low, ci_high=high, method="bootstrap")
    if None not in (numerator.ci_low, numerator.ci_high, denominator.ci_low, denominator.ci_high) \
            and denominator.ci_low > 0:
        return Ratio(value=value, ci_low=numerator.ci_low / denominator.ci_high,
                     ci_high=numerator.ci_high / denominator.ci_low, method="interval ends")
    return Ratio(value=value, ci_low=None, ci_high=None, method="none")


def geometric_mean(ratios: Sequence[Ratio]) -> Ratio:
    """Geometric mean of independent ratios, its interval from their log-scale widths (normal approximation);
    null interval when any ratio has none."""
    logs = np.log([r.value for r in ratios])
    value = float(np.exp(logs.mean()))
    if any(r.ci_low is None or r.ci_low <= 0 for r in ratios):
        return Ratio(value=value, ci_low=None, ci_high=None, method="none")
    from scipy import stats  # heavy: scipy.stats loads only to summarize repeats

    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    standard_errors = np.array([(np.log(r.ci_high) - np.log(r.ci_low)) / (2 * z) for r in ratios])
    spread = z * float(np.sqrt((standard_errors**2).sum())) / len(ratios)
    return Ratio(value=value, ci_low=float(np.exp(logs.mean() - spread)), ci_high=float(np.exp(logs.mean() + spread)),
                 method="log-normal combination")
