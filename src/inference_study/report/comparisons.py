"""The pairs a preset declares (`study.comparisons.pairs`), rendered from the measured cells.

Every name, explanation and outside number comes from the declaration; this module only joins the cells
of two backends at the same model and shape, divides, and says what is missing.
"""

from __future__ import annotations

import pandas as pd

from inference_study.comparisons import Expected, Pair
from inference_study.config import StudyConfig
from inference_study.plan import bench_units
from inference_study.report.table import SHAPE, measured
from inference_study.tables import markdown_table

LABELS = {  # metric: (name in prose and headings, column of a candidate ÷ other ratio)
    "output_tokens_per_s": ("output tokens/s", "tok/s ×"),
    "ttft_p50_ms": ("TTFT P50 (ms)", "TTFT P50 ×"),
    "tpot_p50_ms": ("TPOT P50 (ms)", "TPOT P50 ×"),
    "e2e_p50_ms": ("E2E latency P50 (ms)", "E2E P50 ×"),
}
LARGER_IS_BETTER = {"output_tokens_per_s"}
THROUGHPUT = "output_tokens_per_s"
OVERLAP = "neither (intervals overlap)"
KEYS = ["model", *SHAPE]


def _names(backends: list[str]) -> str:
    return ", ".join(f"`{name}`" for name in backends)


def _shape(at: dict[str, int]) -> str:
    return f"batch {at['batch_size']}, input {at['input_len']}, output {at['output_len']}"


def _side(ratio: float) -> str:
    return "below 1" if ratio < 1 else ("above 1" if ratio > 1 else "at 1")


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


def _joined(frame: pd.DataFrame, candidate: str, other: str) -> pd.DataFrame:
    """The measured cells of both backends at the same model and shape, side by side (suffixes _a, _b)."""
    ok = measured(frame)
    mine = ok[ok["backend"] == candidate].set_index(KEYS)
    theirs = ok[ok["backend"] == other].set_index(KEYS)
    return mine.merge(theirs, left_index=True, right_index=True, suffixes=("_a", "_b"))


def _higher_throughput(row: pd.Series, candidate: str, other: str) -> str:
    """Which side has the higher output tokens/s: by non-overlapping 95% intervals when both have one."""
    bounds = [row.get(f"{THROUGHPUT}_{end}_{side}") for side in ("a", "b") for end in ("ci_low", "ci_high")]
    if any(value is None or pd.isna(value) for value in bounds):
        return candidate if row[f"{THROUGHPUT}_a"] > row[f"{THROUGHPUT}_b"] else other
    low_a, high_a, low_b, high_b = bounds
    if low_a > high_b:
        return candidate
    if low_b > high_a:
        return other
    return OVERLAP


def ratios(frame: pd.DataFrame, pair: Pair, other: str) -> pd.DataFrame:
    """`pair.candidate` ÷ `other` per model and shape for each metric, with the side of higher tokens/s."""
    joined = _joined(frame, pair.candidate, other)
    table = pd.DataFrame(index=joined.index)
    for metric in pair.metrics:
        table[LABELS[metric][1]] = joined[f"{metric}_a"] / joined[f"{metric}_b"]
    if THROUGHPUT in pair.metrics and not table.empty:
        table["higher tok/s"] = joined.apply(_higher_throughput, axis=1, args=(pair.candidate, other))
    return table.reset_index()


def _expected_lines(frame: pd.DataFrame, candidate: str, other: str, expected: Expected) -> list[str]:
    """This run's ratio at the expected shape on each model, beside the expected one."""
    at = expected.at.model_dump()
    joined = _joined(frame, candidate, other).reset_index()
    there = joined[(joined[SHAPE] == pd.Series(at)).all(axis=1)]
    label = LABELS[expected.metric][0]
    if there.empty:
        return [f"{_shape(at).capitalize()} has no measured `{candidate}` / `{other}` pair in this run, so the "
                f"expected {expected.ratio:g}× is not checked here.", ""]
    lines = []
    for _, row in there.iterrows():
        ratio = float(row[f"{expected.metric}_a"] / row[f"{expected.metric}_b"])
        same = _side(ratio) == _side(expected.ratio)
        outcome = "as expected" if same else f"where {_side(expected.ratio)} was expected"
        lines.append(f"At {_shape(at)} on `{row['model']}`, `{candidate}` ÷ `{other}` {label} is {ratio:.2f}× "
                     f"(expected {expected.ratio:g}×): {_side(ratio)}, {outcome}.")
    return lines + [""]


def _ratios_view(frame: pd.DataFrame, pair: Pair, against: list[str]) -> list[str]:
    lines = [f"Ratios are `{pair.candidate}` ÷ {'each of ' if len(against) > 1 else ''}{_names(against)} at the "
             f"same model and shape, measured cells only: above 1, `{pair.candidate}` has more tokens/s or a longer "
             "latency."]
    if THROUGHPUT in pair.metrics:
        lines[-1] += (" `higher tok/s` names the side whose 95% interval of output tokens/s lies above the other's "
                      "(the larger median where a cell has no interval).")
    lines.append("")
    for other in against:
        table = ratios(frame, pair, other)
        if table.empty:
            continue
        lines += [f"### `{pair.candidate}` ÷ `{other}`", ""]
        if THROUGHPUT in pair.metrics:
            wins, losses = ((table["higher tok/s"] == side).sum() for side in (pair.candidate, other))
            overlap = len(table) - wins - losses
            lines += [f"`{pair.candidate}` has the higher output tokens/s in {wins} of {len(table)} shapes, "
                      f"`{other}` in {losses}" + (f"; in {overlap} their intervals overlap." if overlap else "."), ""]
        lines += [markdown_table(table, floatfmt=".3g"), ""]
        if pair.expected is not None:
            lines += _expected_lines(frame, pair.candidate, other, pair.expected)
    return lines


def best_of(frame: pd.DataFrame, candidate: str, against: list[str], metric: str,
            baseline: str | None) -> pd.DataFrame:
    """`candidate`'s `metric` beside each of `against` per shape, with its speedup over the baseline and over
    the best of `against` at that shape (above 1: more tokens/s, or a shorter latency)."""
    ok = measured(frame)
    others = ok[ok["backend"].isin(against)]
    if others.empty:
        others_wide = pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=SHAPE))
    else:
        others_wide = others.pivot_table(index=SHAPE, columns="backend", values=metric)
    others_wide = others_wide[[name for name in against if name in others_wide]]
    mine = ok[ok["backend"] == candidate].set_index(SHAPE)[metric].rename(candidate)
    table = others_wide.join(mine, how="right")
    larger = metric in LARGER_IS_BETTER
    if not others_wide.empty:
        best = others_wide.idxmax(axis=1) if larger else others_wide.idxmin(axis=1)
        best_value = others_wide.max(axis=1) if larger else others_wide.min(axis=1)
        table["best of against"] = best.reindex(table.index)
        speedup = (lambda value: mine / value) if larger else (lambda value: value / mine)
        if baseline in others_wide:
            table[f"× {baseline}"] = speedup(others_wide[baseline]).reindex(table.index)
        table["× best of against"] = speedup(best_value).reindex(table.index)
    return table.reset_index()


def _best_of_view(frame: pd.DataFrame, pair: Pair, against: list[str], baseline: str | None) -> list[str]:
    lines = []
    ok = measured(frame)
    for model in sorted(ok[ok["backend"] == pair.candidate]["model"].unique()):
        for metric in pair.metrics:
            table = best_of(frame[frame["model"] == model], pair.candidate, against, metric, baseline)
            lines += [f"### {model}, {LABELS[metric][0]}", "", markdown_table(table, readable_numbers=True), ""]
    if lines:
        lines += ["— : that backend has no usable measurement at that shape (missing, out of memory, failed, or a "
                  "`fail` verdict; see Validity). Speedups divide measured values of the same shape only; above 1 "
                  f"`{pair.candidate}` is faster (more tokens/s, or a shorter latency).", ""]
    if pair.expected is not None:
        for other in against:
            lines += _expected_lines(frame, pair.candidate, other, pair.expected)
    return lines


def pair_section(study: StudyConfig, frame: pd.DataFrame, pair: Pair, baseline: str | None) -> list[str]:
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
        lines += [f"Expected from {expected.source}: {expected.ratio:g}× {LABELS[expected.metric][0]} at "
                  f"{_shape(expected.at.model_dump())}, checked below against `{pair.candidate}` ÷ "
                  f"{'each of ' if len(against) > 1 else ''}{_names(against)}.", ""]
    models = sorted(frame[frame["backend"] == pair.candidate]["model"].unique())
    lines += _unmeasured_lines(frame, [pair.candidate, *against], models)
    if pair.view == "ratios":
        return lines + _ratios_view(frame, pair, against)
    return lines + _best_of_view(frame, pair, against, baseline)


def comparison_sections(study: StudyConfig, frame: pd.DataFrame) -> list[str]:
    """Every declared pair, in the preset's order; nothing when it declares none."""
    comparisons = study.study.comparisons
    return [line for pair in comparisons.pairs for line in pair_section(study, frame, pair, comparisons.baseline)]
