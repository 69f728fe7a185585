"""The report's first section, "What each optimization buys", and the validity summary after it.

A reader opening the report wants one answer per model: what each rung buys over the baseline at each
batch size and input length, and how sure that is. So the report leads with a small table per model of
each rung's speedup with its 95% interval (≈1 where the interval spans 1, "—" with its reason where a cell
is left out), a figure of the same, and then how many cells pass and what is doubtful about the others,
before the full tables. Every number comes from the speedup pairs (table.baseline_pairs).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from inference_study.config import StudyConfig
from inference_study.report.figures import PNG_OPTIONS, ladder_order
from inference_study.report.sections import no_speedup_reason
from inference_study.report.table import (
    COMPARABLE,
    Loaded,
    as_ratio,
    cross_environment_pairs,
    geomeans,
    ratio_text,
    speedup_table,
    verdict_kinds,
)
from inference_study.tables import MISSING, markdown_table

FIGURE = "headline_speedup_{model}.png"
MIN_REACH = 1.25  # the y axis spans at least 1/1.25×…1.25×, so a 3% difference does not fill the plot
# Round speedups for the axis, finer the closer to 1× it reaches: (largest reach, ticks); powers of two beyond.
TICK_SETS = ((1.4, (0.8, 0.9, 1.0, 1.1, 1.25)), (2.6, (0.5, 0.67, 0.8, 1.0, 1.25, 1.5, 2.0)))
MAX_POWERS = 9
LEFT_OUT_COLOUR = "0.55"
POINT_WIDTH = 0.3  # inches of panel per plotted point, so a cluster of rungs stays legible


def _column(input_len: int, output_len: int, several_outputs: bool) -> str:
    return f"input {input_len}" + (f", output {output_len}" if several_outputs else "")


def _shown(pair: pd.Series, notes: dict[str, int]) -> str:
    """A pair as the table shows it: its speedup (ratio_text), or "— (n, …)" naming the notes that say why not."""
    if pd.isna(pair["left_out"]):
        return ratio_text(as_ratio(pair))
    numbers = sorted(notes.setdefault(part, len(notes) + 1) for part in pair["left_out"].split("; "))
    return f"{MISSING} ({', '.join(str(n) for n in numbers)})"


def model_table(pairs: pd.DataFrame, ladder: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """One model's speedups: a row per rung (ladder order) and batch size, a column per input (and output)
    length; and the numbered notes on why a cell is left out, each reason once."""
    several = pairs["output_len"].nunique() > 1
    shapes = sorted({(row.input_len, row.output_len) for row in pairs.itertuples()})
    notes: dict[str, int] = {}
    rows = []
    for backend in ladder_order(list(pairs["backend"].unique()), ladder):
        for batch, group in pairs[pairs["backend"] == backend].groupby("batch_size", sort=True):
            row = {"rung": f"`{backend}`", "batch": str(batch)}
            for _, pair in group.sort_values(["input_len", "output_len"]).iterrows():
                row[_column(pair["input_len"], pair["output_len"], several)] = _shown(pair, notes)
            rows.append(row)
    columns = ["rung", "batch", *(_column(length, output, several) for length, output in shapes)]
    return pd.DataFrame(rows).reindex(columns=columns), [f"- ({n}) left out: {why}" for why, n in notes.items()]


def _geomean_line(pairs: pd.DataFrame, ladder: list[str]) -> str:
    """Each rung's geometric mean over the shapes that give a speedup, with its interval and how many they are."""
    means = {backend: found for (_, backend), found in geomeans(speedup_table(pairs)).items()}
    shapes = pairs.groupby("backend").size()
    parts = [f"`{backend}` {ratio_text(means[backend][0])} over {means[backend][1]} of {shapes[backend]} shapes"
             if backend in means else f"`{backend}` none of its {shapes[backend]} shapes"
             for backend in ladder_order(list(shapes.index), ladder)]
    return ("Geometric mean over the shapes that give a speedup (95% interval from the speedups' intervals, "
            f"on a log scale): {'; '.join(parts)}.")


def _axis(data: pd.DataFrame) -> tuple[float, list[float]]:
    """How far from 1× the y axis reaches either way (past the farthest median or interval end, at least
    MIN_REACH; up to a power of two where it reaches far), and its ticks: the finest round set that spans
    it, else powers of two (every other one where there would be more than MAX_POWERS)."""
    values = data[["speedup", "speedup_ci_low", "speedup_ci_high"]].to_numpy(float)
    finite = values[np.isfinite(values) & (values > 0)]
    reach = 1.1 * max(MIN_REACH, float(np.exp(np.abs(np.log(finite)).max())) if finite.size else MIN_REACH)
    for limit, ticks in TICK_SETS:
        if reach <= limit:
            return reach, [tick for tick in ticks if 1 / reach <= tick <= reach]
    top = int(np.ceil(np.log2(reach)))
    step = 1 if 2 * top + 1 <= MAX_POWERS else 2
    return 2.0**top, [2.0**power for power in range(-top, top + 1) if power % step == 0]


def _draw_panel(ax: plt.Axes, cells: pd.DataFrame, rungs: list[str], batches: list[int],
                colours: dict[str, str]) -> None:
    """A cluster per batch size, a point per rung with its interval: filled when the interval excludes 1,
    hollow when it spans 1, a grey cross at 1× where the pair is left out."""
    width = 0.8 / len(rungs)
    for index, backend in enumerate(rungs):
        for _, pair in cells[cells["backend"] == backend].iterrows():
            x = batches.index(pair["batch_size"]) + (index - (len(rungs) - 1) / 2) * width
            if pd.notna(pair["left_out"]):
                ax.plot(x, 1.0, marker="x", color=LEFT_OUT_COLOUR, linestyle="none")
                continue
            errors = None
            if pd.notna(pair["speedup_ci_low"]):
                errors = [[pair["speedup"] - pair["speedup_ci_low"]], [pair["speedup_ci_high"] - pair["speedup"]]]
            ax.errorbar(x, pair["speedup"], yerr=errors, marker="o", capsize=3, color=colours[backend],
                        markerfacecolor=colours[backend] if pair["distinguishable"] else "white", linestyle="none")


def _format_axes(ax: plt.Axes, reach: float, ticks: list[float], batches: list[int]) -> None:
    """Log y axis from 1/reach to reach with round speedup ticks, a batch-size cluster per x position."""
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_ylim(1 / reach, reach)
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda tick, _: f"{tick:.3g}×"))
    ax.set_xticks(range(len(batches)), [str(batch) for batch in batches])
    ax.set_xlim(-0.6, len(batches) - 0.4)
    ax.set(xlabel="batch size")
    ax.grid(axis="y", color="0.9")


def speedup_figure(pairs: pd.DataFrame, model: str, baseline: str, ladder: list[str],
                   figures_dir: Path) -> Path | None:
    """`model`'s speedups over the baseline against batch size, a panel per input length (a row per output
    length), rungs in ladder order, log y axis centred on 1×; written as a deterministic PNG, its path
    returned (None: the model has no pair)."""
    data = pairs[pairs["model"] == model]
    if data.empty:
        return None
    rungs = ladder_order(list(data["backend"].unique()), ladder)
    colours = {backend: f"C{index}" for index, backend in enumerate(ladder_order([baseline, *rungs], ladder))}
    batches, lengths, outputs = (sorted(data[column].unique()) for column in ("batch_size", "input_len", "output_len"))
    panel_width = max(3.2, 1.0 + POINT_WIDTH * len(batches) * len(rungs))
    size = (2.2 + panel_width * len(lengths), 0.4 + 3.4 * len(outputs))
    fig, axes = plt.subplots(len(outputs), len(lengths), figsize=size, squeeze=False, sharey=True, layout="constrained")
    reach, ticks = _axis(data)
    for row, output in zip(axes, outputs):
        for ax, length in zip(row, lengths):
            _draw_panel(ax, data[(data["input_len"] == length) & (data["output_len"] == output)], rungs, batches,
                        colours)
            _format_axes(ax, reach, ticks, batches)
            ax.set_title(_column(length, output, len(outputs) > 1))
        row[0].set_ylabel(f"output tok/s over {baseline}")
    handles = [Line2D([], [], marker="o", color=colours[backend], linestyle="none", label=backend) for backend in rungs]
    handles += [Line2D([], [], marker="o", color="0.3", markerfacecolor="white", linestyle="none",
                       label="≈1: interval spans 1×"),
                Line2D([], [], marker="x", color=LEFT_OUT_COLOUR, linestyle="none", label="left out (see table)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize="small")
    fig.suptitle(f"{model}: what each rung buys over {baseline} (median ratio, 95% interval)", fontsize="medium")
    path = figures_dir / FIGURE.format(model=model)
    fig.savefig(path, **PNG_OPTIONS)
    plt.close(fig)
    return path


def write_figures(pairs: pd.DataFrame, baseline: str | None, ladder: list[str], figures_dir: Path) -> dict[str, Path]:
    """The headline figure of every model with a pair, by model. Call it after figures.write_figures, which
    clears the folder's PNGs."""
    if baseline is None:
        return {}
    figures_dir.mkdir(parents=True, exist_ok=True)
    drawn = {model: speedup_figure(pairs, model, baseline, ladder, figures_dir)
             for model in sorted(pairs["model"].unique())}
    return {model: path for model, path in drawn.items() if path is not None}


def section(study: StudyConfig, pairs: pd.DataFrame, ladder: list[str], figures: dict[str, Path],
            out_dir: Path) -> list[str]:
    """"What each optimization buys": per model, the table of speedups, its notes, geomeans and figure."""
    baseline = study.study.comparisons.baseline
    lines = ["## What each optimization buys", ""]
    why = no_speedup_reason(study, baseline)
    if why is not None:
        return lines + [why, ""]
    if pairs.empty:
        return lines + [f"No backend but the baseline `{baseline}` has a cell at a shape the baseline has.", ""]
    lines += [(f"Median output tokens/s of each rung over `{baseline}`'s at the same model and shape, with its 95% "
              "interval bootstrapped from both cells' repeats. ≈1: the interval spans 1, no measurable difference "
              "(no number to quote); a cell that kept no repeats (an old result) gives the wider ratio of its "
              "interval ends. Rungs are in the ladder's order (`sweep.backends`), each changing one thing from the "
              f"one before. A speedup is computed only where {COMPARABLE}; {MISSING} (n): left out, for reason n "
              "below the table."), ""]
    if study.bench.processes == 1:
        lines += [("Each cell ran in one process (`bench.processes: 1`), so its intervals cover the spread between "
                   "its repeats, not what differs between processes or runs; two runs of the default study on 2 CPU "
                   "cores differed beyond these intervals in most cells (the repository's `docs/repeatability.md`). "
                   "`bench.processes` of 6 or more puts the intervals over processes."), ""]
    for model in sorted(pairs["model"].unique()):
        data = pairs[pairs["model"] == model]
        table, notes = model_table(data, ladder)
        lines += [f"### {model}", "", markdown_table(table, disable_numparse=True), ""]
        lines += [*notes, ""] if notes else []
        lines += [_geomean_line(data, ladder), ""]
        if model in figures:
            lines += [f"![speedup over {baseline}: {model}]({figures[model].relative_to(out_dir).as_posix()})", ""]
    return lines


def _reason_rows(loaded: Loaded) -> pd.DataFrame:
    """Cells that warn or fail, counted once per kind of reason, most frequent first."""
    counts: Counter[tuple[str, str]] = Counter(
        (kind, result.verdict.status) for _, result in loaded if result is not None and result.verdict.status != "pass"
        for kind in verdict_kinds(result))
    kinds = sorted({kind for kind, _ in counts}, key=lambda kind: (-counts[kind, "warn"] - counts[kind, "fail"], kind))
    return pd.DataFrame([{"reason": kind, "warn": str(counts[kind, "warn"]), "fail": str(counts[kind, "fail"])}
                         for kind in kinds])


def _report_level(frame: pd.DataFrame, loaded: Loaded, pairs: pd.DataFrame, baseline: str | None) -> list[str]:
    """What is doubtful across cells rather than in one: early divergence from the baseline's greedy tokens,
    several environments, and the pairs left out of the speedups."""
    lines = []
    if "early_divergence" in frame:
        early = int(frame["early_divergence"].fillna(False).astype(bool).sum())
        compared = int(frame["greedy_match_pct"].notna().sum())
        if early:
            lines.append(f"- greedy tokens diverge early from `{baseline}`'s (within the first quarter of the output) "
                         f"in {early} of {compared} compared cells: timings do not depend on it (the output length is "
                         "forced), but those cells did not compute the baseline's tokens (see Output equivalence).")
    environments = Counter(result.environment_fingerprint for _, result in loaded if result is not None)
    if len(environments) > 1:
        crossing = len(cross_environment_pairs(pairs))
        lines.append(f"- cells ran in {len(environments)} environments ("
                     + ", ".join(f"`{fingerprint}`: {n} cells" for fingerprint, n in sorted(environments.items()))
                     + f"); {crossing} pairs with `{baseline}` span two of them and give no speedup.")
    left_out = int(pairs["left_out"].notna().sum())
    if left_out:
        lines.append(f"- {left_out} of {len(pairs)} pairs with `{baseline}` are left out of the speedups (each "
                     "reason under What each optimization buys).")
    return ["Across the report:", "", *lines, ""] if lines else []


def validity_summary(frame: pd.DataFrame, loaded: Loaded, pairs: pd.DataFrame, baseline: str | None) -> list[str]:
    """How many cells pass, warn, fail or are missing, and why the others are doubtful, by kind of reason."""
    verdicts = frame["verdict"] if "verdict" in frame else pd.Series(index=frame.index, dtype=object)
    passed, warned, failed = (int((verdicts == verdict).sum()) for verdict in ("pass", "warn", "fail"))
    missing = int((frame["status"] == "missing").sum())
    lines = ["## Validity summary", "",
             (f"Of the {len(frame)} configured cells, {passed} pass, {warned} warn, {failed} fail and {missing} "
             f"{'is' if missing == 1 else 'are'} missing (not run yet). A speedup, a geometric mean or a declared "
             f"comparison needs {COMPARABLE}; every cell's verdict and reasons are under Validity below."), ""]
    reasons = _reason_rows(loaded)
    if not reasons.empty:
        lines += ["Why cells warn or fail (a cell counts once under each kind of reason it has):", "",
                  markdown_table(reasons, disable_numparse=True), ""]
    return lines + _report_level(frame, loaded, pairs, baseline)
