"""The pairs a preset declares (`study.comparisons.pairs`), rendered from the measured cells.

Every name, explanation and outside number comes from the declaration; this module only pairs the cells
of two backends at the same model and shape, divides, and says what is missing. A ratio follows the
speedups' rule (table.left_out_reason): both cells comparable (no failure or bias) in one environment, its 95%
interval is bootstrapped from both cells' repeats, and one whose interval spans 1 reads as no measurable
difference, never as a number.
"""

from __future__ import annotations

import pandas as pd

from inference_study.comparisons import Expected, Pair
from inference_study.config import Cell, StudyConfig
from inference_study.plan import bench_units
from inference_study.report.sections import left_out_lines
from inference_study.report.table import COMPARABLE, MS, SHAPE, Loaded, left_out_reason, measured, ratio_text
from inference_study.results import CellResult
from inference_study.tables import MISSING, markdown_table, readable
from inference_study.uncertainty import Ratio, ratio

LABELS = {  # metric: (name in prose and headings, column of a candidate ÷ other ratio)
    "output_tokens_per_s": ("output tokens/s", "tok/s ×"),
    "ttft_p50_ms": ("TTFT P50 (ms)", "TTFT P50 ×"),
    "tpot_p50_ms": ("TPOT P50 (ms)", "TPOT P50 ×"),
    "e2e_p50_ms": ("E2E latency P50 (ms)", "E2E P50 ×"),
}
LARGER_IS_BETTER = {"output_tokens_per_s"}
THROUGHPUT = "output_tokens_per_s"
HEADLINE_FIELD = {  # report metric: the headline Interval it is the median of (E2E P50 has none)
    "output_tokens_per_s": "output_tokens_per_s", "ttft_p50_ms": "ttft_p50_s", "tpot_p50_ms": "tpot_p50_s"}
KEYS = ["model", *SHAPE]
Paired = list[tuple[Cell, CellResult, CellResult]]


def _names(backends: list[str]) -> str:
    return ", ".join(f"`{name}`" for name in backends)


def _shape(at: dict[str, int]) -> str:
    return f"batch {at['batch_size']}, input {at['input_len']}, output {at['output_len']}"


def _side(value: float) -> str:
    return "below 1" if value < 1 else ("above 1" if value > 1 else "at 1")


def _absent_line(absent: list[str], whole: bool) -> str:
    one = len(absent) == 1
    outcome = "so this comparison is not made" if whole else f"so the comparison leaves {'it' if one else 'them'} out"
    return (f"Not in this study: {_names(absent)} {'has' if one else 'have'} no configured cell, {outcome}. "
            f"Add {'it' if one else 'them'} to the study (`sweep.backends`, or the setting of the stage that measures "
            f"{'it' if one else 'them'}) and run `dvc repro` to compare.")


def _unmeasured_lines(frame: pd.DataFrame, backends: list[str], models: list[str]) -> list[str]:
    """Each backend of the pair with no usable cell on a model, with what its cells are instead."""
    lines = []
    for model in models:
        for backend in backends:
            group = frame[(frame["model"] == model) & (frame["backend"] == backend)]
            if group.empty or not measured(group).empty:
                continue
            counts = group["status"].value_counts().to_dict()
            shown = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            lines.append(f"- `{backend}` on `{model}`: no usable measurement ({shown}); missing cells have not run "
                         "yet, the others are listed above with their errors or verdicts.")
    return lines + ([""] if lines else [])


def _point(result: CellResult, metric: str) -> float:
    """A cell's `metric` in its result's units: a headline metric's median of repeats, E2E's P50 over requests."""
    field = HEADLINE_FIELD.get(metric)
    return result.latency.e2e_s.p50 if field is None else getattr(result.headline, field).value


def metric_ratio(numerator: CellResult, denominator: CellResult, metric: str) -> Ratio:
    """`numerator` ÷ `denominator` for a comparison metric: a headline metric's ratio of medians with its
    bootstrap interval; E2E P50 (pooled over every request, with no per-repeat values) without one."""
    field = HEADLINE_FIELD.get(metric)
    if field is None:
        return Ratio(value=_point(numerator, metric) / _point(denominator, metric), ci_low=None, ci_high=None,
                     method="none")
    return ratio(getattr(numerator.headline, field), getattr(denominator.headline, field))


def _measured_pairs(loaded: Loaded, candidate: str, other: str) -> Paired:
    """Each shape where both backends have a measurement (status ok), with both results, in config order."""
    results = dict(loaded)
    pairs = []
    for cell, mine in loaded:
        theirs = results.get(cell.model_copy(update={"backend": other}))
        if cell.backend == candidate and mine is not None and theirs is not None \
                and mine.status == theirs.status == "ok":
            pairs.append((cell, mine, theirs))
    return pairs


def ratios(loaded: Loaded, pair: Pair, other: str) -> pd.DataFrame:
    """`pair.candidate` ÷ `other` per model and shape for each metric as shown (ratio_text), the candidate's
    throughput read as faster / slower / not distinguishable, and why a shape is left out."""
    rows = []
    for cell, mine, theirs in _measured_pairs(loaded, pair.candidate, other):
        why = left_out_reason([(pair.candidate, mine), (other, theirs)])
        row: dict[str, object] = {key: getattr(cell, key) for key in KEYS}
        for metric in pair.metrics:
            row[LABELS[metric][1]] = MISSING if why else ratio_text(metric_ratio(mine, theirs, metric))
        if THROUGHPUT in pair.metrics:
            row["throughput"] = MISSING if why else metric_ratio(mine, theirs, THROUGHPUT).wording()
        rows.append(row | {"left_out": why})
    return pd.DataFrame(rows)


def _expected_verdict(value: Ratio, expected: float) -> str:
    """This run's ratio against the expected one: on the same side of 1, or not; or not distinguishable from 1;
    or not checked, without an interval."""
    if value.ci_low is None:
        return "no interval, so not checked against the expected side"
    side = "not distinguishable from 1" if not value.distinguishable else _side(value.value)
    agrees = side == _side(expected) or (side.startswith("not") and expected == 1)
    return f"{side}, {'as expected' if agrees else f'where {_side(expected)} was expected'}"


def _expected_lines(loaded: Loaded, candidate: str, other: str, expected: Expected) -> list[str]:
    """This run's ratio at the expected shape on each model, beside the expected one."""
    at = expected.at.model_dump()
    there = [(cell, mine, theirs) for cell, mine, theirs in _measured_pairs(loaded, candidate, other)
             if {key: getattr(cell, key) for key in SHAPE} == at]
    label = LABELS[expected.metric][0]
    if not there:
        return [(f"{_shape(at).capitalize()} has no measured `{candidate}` / `{other}` pair in this run, so the "
                f"expected {expected.ratio:g}× is not checked here."), ""]
    lines = []
    for cell, mine, theirs in there:
        where = f"At {_shape(at)} on `{cell.model}`, `{candidate}` ÷ `{other}` {label}"
        why = left_out_reason([(candidate, mine), (other, theirs)])
        if why:
            lines.append(f"{where} is left out ({why}), so the expected {expected.ratio:g}× is not checked.")
            continue
        value = metric_ratio(mine, theirs, expected.metric)
        lines.append(f"{where} is {ratio_text(value)} (expected {expected.ratio:g}×): "
                     f"{_expected_verdict(value, expected.ratio)}.")
    return lines + [""]


def _wording_line(table: pd.DataFrame, candidate: str, other: str) -> str:
    counted = table["throughput"].value_counts()
    faster, slower, similar = (int(counted.get(word, 0)) for word in ("faster", "slower", "not distinguishable"))
    compared = int(table["left_out"].isna().sum())
    line = (f"`{candidate}` has more output tokens/s than `{other}` in {faster} of the {compared} shapes compared, "
            f"fewer in {slower}; in {similar} the difference is not distinguishable")
    return line + (f", and {len(table) - compared} are left out." if compared < len(table) else ".")


def _ratios_view(loaded: Loaded, pair: Pair, against: list[str]) -> list[str]:
    lines = [(f"Ratios are `{pair.candidate}` ÷ {'each of ' if len(against) > 1 else ''}{_names(against)} at the "
             "same model and shape, medians with the 95% interval bootstrapped from both cells' repeats (E2E P50 has "
             f"none): above 1, `{pair.candidate}` has more tokens/s or a longer latency; ≈1: the interval spans 1, no "
             f"measurable difference. A pair is compared only with {COMPARABLE}; {MISSING}: left out.")]
    if THROUGHPUT in pair.metrics:
        lines[-1] += (f" `throughput` reads the tok/s ratio: `{pair.candidate}` faster, slower, or not "
                      "distinguishable.")
    lines.append("")
    for other in against:
        table = ratios(loaded, pair, other)
        if table.empty:
            continue
        lines += [f"### `{pair.candidate}` ÷ `{other}`", ""]
        if THROUGHPUT in pair.metrics:
            lines += [_wording_line(table, pair.candidate, other), ""]
        lines += [markdown_table(table.drop(columns="left_out"), disable_numparse=True), ""]
        lines += left_out_lines(table, "ratios")
        if pair.expected is not None:
            lines += _expected_lines(loaded, pair.candidate, other, pair.expected)
    return lines


def best_of(loaded: Loaded, model: str, candidate: str, against: list[str], metric: str,
            baseline: str | None) -> pd.DataFrame:
    """`candidate`'s median `metric` beside each of `against` per shape of `model`, comparable cells only, with its
    ratio over the baseline and over the best of `against` at that shape (above 1: more tokens/s, or a shorter
    latency; the faster cell is the numerator)."""
    results = dict(loaded)
    larger = metric in LARGER_IS_BETTER
    rows = []
    for cell, mine in loaded:
        if cell.model != model or cell.backend != candidate or left_out_reason([(candidate, mine)]):
            continue
        others = {name: theirs for name in against
                  if (theirs := results.get(cell.model_copy(update={"backend": name}))) is not None
                  and not left_out_reason([(candidate, mine), (name, theirs)])}
        values = {name: _point(result, metric) * (1.0 if larger else MS)
                  for name, result in {**others, candidate: mine}.items()}
        row: dict[str, object] = {key: getattr(cell, key) for key in SHAPE}
        row |= {name: readable(values[name]) if name in values else MISSING for name in [*against, candidate]}
        if others:
            faster_over = {name: ratio_text(metric_ratio(mine, theirs, metric) if larger
                                            else metric_ratio(theirs, mine, metric)) for name, theirs in others.items()}
            best = (max if larger else min)(others, key=values.__getitem__)
            row["best of against"] = best
            if baseline in against:
                row[f"× {baseline}"] = faster_over.get(baseline, MISSING)
            row["× best of against"] = faster_over[best]
        rows.append(row)
    return pd.DataFrame(rows)


def _best_of_view(loaded: Loaded, pair: Pair, against: list[str], baseline: str | None) -> list[str]:
    lines = []
    models = sorted({cell.model for cell, result in loaded if cell.backend == pair.candidate
                     and not left_out_reason([(pair.candidate, result)])})
    for model in models:
        for metric in pair.metrics:
            table = best_of(loaded, model, pair.candidate, against, metric, baseline)
            lines += [f"### {model}, {LABELS[metric][0]}", "", markdown_table(table, disable_numparse=True), ""]
    if lines:
        lines += [(f"{MISSING} : that backend has no comparable measurement at that shape (missing, out of memory, "
                  "failed, no interval, a warning of bias, or another environment; see Validity). Values are medians; "
                  f"ratios divide comparable cells of the same shape, with their 95% interval: above 1 `{pair.candidate}`"
                  " is faster (more tokens/s, or a shorter latency), ≈1: no measurable difference."), ""]
    if pair.expected is not None:
        for other in against:
            lines += _expected_lines(loaded, pair.candidate, other, pair.expected)
    return lines


def pair_section(study: StudyConfig, frame: pd.DataFrame, loaded: Loaded, pair: Pair,
                 baseline: str | None) -> list[str]:
    """One declared pair: the preset's note, then its tables, or which of its backends this study lacks."""
    lines = [f"## {pair.title}", ""] + ([pair.note.strip(), ""] if pair.note.strip() else [])
    configured = {unit.cell.backend for unit in bench_units(study)}
    against = [name for name in pair.against if name in configured]
    absent = [name for name in (pair.candidate, *pair.against) if name not in configured]
    if absent:
        lines += [_absent_line(absent, whole=pair.candidate in absent or not against), ""]
    if pair.candidate in absent or not against:
        return lines
    if pair.expected is not None:
        expected = pair.expected
        lines += [(f"Expected from {expected.source}: {expected.ratio:g}× {LABELS[expected.metric][0]} at "
                  f"{_shape(expected.at.model_dump())}, checked below against `{pair.candidate}` ÷ "
                  f"{'each of ' if len(against) > 1 else ''}{_names(against)}."), ""]
    models = sorted(frame[frame["backend"] == pair.candidate]["model"].unique())
    lines += _unmeasured_lines(frame, [pair.candidate, *against], models)
    if pair.view == "ratios":
        return lines + _ratios_view(loaded, pair, against)
    return lines + _best_of_view(loaded, pair, against, baseline)


def comparison_sections(study: StudyConfig, frame: pd.DataFrame, loaded: Loaded) -> list[str]:
    """Every declared pair, in the preset's order; nothing when it declares none."""
    comparisons = study.study.comparisons
    return [line for pair in comparisons.pairs
            for line in pair_section(study, frame, loaded, pair, comparisons.baseline)]
