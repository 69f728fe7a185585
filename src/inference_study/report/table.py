"""The configured cells → one tidy frame (results.csv), the speedups over the baseline, and summary.json.

The cell list comes from the config, never from a directory glob, so stale files of removed cells are
never counted. A speedup is the ratio of two cells' medians with a 95% interval bootstrapped from both
cells' repeats (`uncertainty.ratio`), and it is computed only where both cells are comparable (COMPARABLE):
a ratio resting on a biased cell is left out with its reason, never shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from inference_study.config import Cell, StudyConfig
from inference_study.equivalence import equivalence_table
from inference_study.plan import bench_units
from inference_study.results import CellResult, ResultError, read_result
from inference_study.roofline import Roofline, utilization
from inference_study.uncertainty import Ratio, geometric_mean, ratio

HEADLINE_COLUMNS = {"ttft_p50_s": ("ttft_p50_ms", 1000.0), "tpot_p50_s": ("tpot_p50_ms", 1000.0),
                    "output_tokens_per_s": ("output_tokens_per_s", 1.0)}
HEADLINE_LABELS = tuple(label for label, _ in HEADLINE_COLUMNS.values())
SHAPE = ["batch_size", "input_len", "output_len"]
SHAPE_KEYS = ["model", "backend", *SHAPE]
SPEEDUP_KEYS = ["model", *SHAPE]
SPEEDUP_COLUMNS = [*SHAPE_KEYS, "speedup", "speedup_ci_low", "speedup_ci_high", "distinguishable", "method"]
PAIR_COLUMNS = [*SPEEDUP_COLUMNS, "left_out", "environment_fingerprint", "baseline_environment_fingerprint"]
PERCENTILE_COLUMNS = ("mean", "p50", "p90", "p95", "p99")
MS = 1000.0
GIB = 1024.0**3
# Verdict reasons (validity.py, and older results' wording) whose text before the first colon names more than
# their kind: a metric, the slowdown's details, a clock's range.
KIND_MARKERS = {"varies across repeats": "varies across repeats", "GPU slowed down": "GPU slowed down",
                "clock varied": "GPU slowed down"}
VERDICT_VERBS = {"warn": "warns", "fail": "fails"}
# The rule a ratio's cells meet, as the report states it.
COMPARABLE = ("both cells measured, with an interval, in one environment, and neither failed nor warned of bias "
              "(a clock that fell, timings without warmup); a warning of spread (repeats that vary, an interval "
              "that did not narrow) only widens the ratio's interval")
# Warnings about spread: the cell's intervals carry them into any ratio, so they do not keep it out of one.
SPREAD_KINDS = {"varies across repeats", "not converged"}

Loaded = list[tuple[Cell, CellResult | None]]


def load_cells(study: StudyConfig, results_dir: Path) -> Loaded:
    """Each configured cell with its validated result, or None when it has not run yet.

    A corrupt or foreign file is an error naming the file: it is never averaged in.
    """
    loaded = []
    for cell in (unit.cell for unit in bench_units(study)):
        path = cell.result_path(results_dir)
        if not path.exists():
            loaded.append((cell, None))
            continue
        result = read_result(path)
        if result.cell != cell:
            raise ResultError(f"{path}: holds cell {result.cell.key}, expected {cell.key}")
        loaded.append((cell, result))
    return loaded


def _scaled(value: float | None, factor: float) -> float | None:
    """`value` × `factor`, a null staying null (NaN in the frame), never 0."""
    return None if value is None else value * factor


def _row(cell: Cell, result: CellResult | None, roofline: Roofline | None) -> dict[str, object]:
    row: dict[str, object] = cell.model_dump()
    if result is None:
        return row | {"status": "missing"}
    row |= {
        "status": result.status,
        "verdict": result.verdict.status,
        "verdict_reasons": "; ".join(result.verdict.reasons),
        "error": result.error,
        "device": result.device,
    }
    if result.stopping is not None:
        row |= {"stop_reason": result.stopping.reason, "converged": result.stopping.converged,
                "iterations": result.stopping.iterations}
    if result.headline is not None:
        for name, value in result.headline.model_dump().items():
            label, scale = HEADLINE_COLUMNS[name]
            row |= {
                f"{label}_median": value["value"] * scale,
                f"{label}_ci_low": _scaled(value["ci_low"], scale),
                f"{label}_ci_high": _scaled(value["ci_high"], scale),
                f"{label}_cv": value["cv"],
            }
    if result.latency is not None:
        for metric in ("ttft_s", "tpot_s", "itl_s", "e2e_s"):
            stats = getattr(result.latency, metric)
            name = metric.removesuffix("_s")
            row |= {f"{name}_{p}_ms": _scaled(getattr(stats, p), MS) for p in PERCENTILE_COLUMNS}
    if result.throughput is not None:
        row |= result.throughput.model_dump()
    gpu = result.gpu
    row |= {
        "nvml_memory_peak_gib": _scaled(gpu.nvml_device_memory_used_peak_bytes, 1 / GIB),
        "torch_allocated_peak_gib": _scaled(gpu.torch_allocated_peak_bytes, 1 / GIB),
        "gpu_utilization_mean_pct": gpu.utilization_mean_pct,
        "gpu_power_mean_w": gpu.power_mean_w,
        "joules_per_output_token": gpu.joules_per_output_token,
        "output_tokens_per_joule": gpu.output_tokens_per_joule,
    }
    if roofline is not None:
        row |= utilization(result, roofline)
    row |= result.phases.model_dump()
    row |= {
        "random_weights": result.model.random_weights if result.model else None,
        "gpus": result.model.tensor_parallel if result.model else None,
        "config_hash": result.config_hash,
        "environment_fingerprint": result.environment_fingerprint,
    }
    return row


def output_equivalence(loaded: Loaded, baseline: str | None) -> pd.DataFrame:
    """Greedy-token agreement of each cell with the baseline backend's cell of the same shape."""
    if baseline is None:
        return pd.DataFrame()
    outputs = {
        tuple(cell.model_dump().values()): result.output_ids
        for cell, result in loaded
        if result is not None and result.output_ids is not None
    }
    return equivalence_table(outputs, baseline)


def results_table(loaded: Loaded, roofline: Roofline | None, baseline: str | None) -> pd.DataFrame:
    """One tidy row per configured cell, in config order, with its agreement with the baseline."""
    frame = pd.DataFrame([_row(cell, result, roofline) for cell, result in loaded])
    agreement = output_equivalence(loaded, baseline)
    if agreement.empty:
        return frame
    return frame.merge(agreement, on=SHAPE_KEYS, how="left")


def measured(frame: pd.DataFrame) -> pd.DataFrame:
    """Cells with numbers that may be shown and plotted: measured, and not failed by a validity check."""
    if "verdict" not in frame:
        return frame.iloc[0:0]
    return frame[(frame["status"] == "ok") & (frame["verdict"] != "fail")]


def reason_kind(reason: str) -> str:
    """A verdict reason without its numbers, to count cells by what makes them doubtful ("not converged",
    "varies across repeats", "GPU slowed down", "no warmup", ...): the text before its first colon, except
    where a metric name or the slowdown's details come first."""
    return next((kind for marker, kind in KIND_MARKERS.items() if marker in reason), reason.split(":", 1)[0])


def verdict_kinds(result: CellResult) -> list[str]:
    """The kinds of a cell's verdict reasons, each once, in the verdict's order."""
    return list(dict.fromkeys(reason_kind(reason) for reason in result.verdict.reasons))


def _unusable(result: CellResult | None) -> list[str]:
    """Why one cell cannot enter a ratio, one reason per kind (none: it can: measured, comparable, with an interval)."""
    if result is None:
        return ["missing"]
    if result.status != "ok":
        return [result.status]
    if not result.verdict.comparable:
        return [f"{VERDICT_VERBS[result.verdict.status]} ({kind})" for kind in verdict_kinds(result)
                if kind not in SPREAD_KINDS]
    if result.headline is None:
        return ["has no per-repeat headline"]
    throughput = result.headline.output_tokens_per_s
    return [f"has no interval ({throughput.repeats} repeats)"] if throughput.ci_low is None else []


def left_out_reason(cells: Sequence[tuple[str, CellResult | None]]) -> str | None:
    """Why cells (each named by its backend) give no ratio, "; "-separated, one reason per cell and kind; or None
    when they do: a ratio needs every cell measured and comparable (no failure, no warning about bias such as a
    clock that fell; a warning about spread widens the ratio's interval instead), in one environment (another
    GPU, driver or library version is no speedup)."""
    reasons = [f"`{name}` cell {why}" for name, result in cells for why in _unusable(result)]
    fingerprints = {result.environment_fingerprint for _, result in cells
                    if result is not None and result.status == "ok"}
    if len(fingerprints) > 1:
        reasons.append("the two cells ran in different environments")
    return "; ".join(reasons) or None


def _fingerprint(result: CellResult | None) -> str | None:
    return result.environment_fingerprint if result is not None and result.status == "ok" else None


def baseline_pairs(loaded: Loaded, baseline: str | None) -> pd.DataFrame:
    """Every cell of another backend beside the baseline's cell of the same model and shape: the ratio of their
    output tokens/s with its 95% interval where both may be compared, else why not (`left_out`)."""
    results = dict(loaded)
    rows = []
    for cell, result in loaded:
        base_cell = cell.model_copy(update={"backend": baseline})
        if baseline is None or cell.backend == baseline or base_cell not in results:
            continue
        base = results[base_cell]
        row = cell.model_dump() | {"left_out": left_out_reason([(cell.backend, result), (baseline, base)]),
                                   "environment_fingerprint": _fingerprint(result),
                                   "baseline_environment_fingerprint": _fingerprint(base)}
        if row["left_out"] is None:
            speedup = ratio(result.headline.output_tokens_per_s, base.headline.output_tokens_per_s)
            row |= {"speedup": speedup.value, "speedup_ci_low": speedup.ci_low, "speedup_ci_high": speedup.ci_high,
                    "distinguishable": speedup.distinguishable, "method": speedup.method}
        rows.append(row)
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def speedup_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """The pairs that give a speedup: model, backend, shape, speedup, its interval and whether it excludes 1."""
    return pairs[pairs["left_out"].isna()][SPEEDUP_COLUMNS].astype({"distinguishable": bool}).reset_index(drop=True)


def cross_environment_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    """The measured pairs whose two cells ran in different environments (so they give no speedup)."""
    both = pairs["environment_fingerprint"].notna() & pairs["baseline_environment_fingerprint"].notna()
    differ = pairs["environment_fingerprint"] != pairs["baseline_environment_fingerprint"]
    return pairs[both & differ][[*SHAPE_KEYS, "environment_fingerprint", "baseline_environment_fingerprint"]]


def as_ratio(row: pd.Series) -> Ratio:
    """A speedup row of the table back as the Ratio it was computed as."""
    def bound(name: str) -> float | None:
        return None if pd.isna(row[name]) else float(row[name])

    return Ratio(value=float(row["speedup"]), ci_low=bound("speedup_ci_low"), ci_high=bound("speedup_ci_high"),
                 method=row["method"])


def _number(value: float) -> str:
    """Three significant digits, more where three would round a value onto the other side of 1 (or onto 1):
    a bound of 1.0004 must not read "1", which would look like an interval that spans 1."""
    for digits in range(3, 8):
        text = f"{value:.{digits}g}"
        if (float(text) > 1) == (value > 1) and (float(text) < 1) == (value < 1):
            return text
    return text


def ratio_text(value: Ratio) -> str:
    """How a ratio is shown: "1.52× (1.50–1.54)" when its 95% interval excludes 1; "≈1 (0.971–1.04)" when it
    spans 1, a difference not measured and so no number to quote; "1.52× (no interval)" without one."""
    if value.ci_low is None or value.ci_high is None:
        return f"{_number(value.value)}× (no interval)"
    bounds = f"({_number(value.ci_low)}–{_number(value.ci_high)})"
    return f"{_number(value.value)}× {bounds}" if value.distinguishable else f"≈1 {bounds}"


def geomeans(speedup: pd.DataFrame) -> dict[tuple[str, str], tuple[Ratio, int]]:
    """Per (model, backend): the geometric mean of its speedups with its interval, and how many shapes it spans."""
    return {key: (geometric_mean([as_ratio(row) for _, row in group.iterrows()]), len(group))
            for key, group in speedup.groupby(["model", "backend"], sort=True)}


def setup_share_pct(frame: pd.DataFrame) -> float | None:
    """Load + warmup time as a share of load + warmup + measurement, over measured cells."""
    ok = measured(frame)
    if ok.empty:
        return None
    setup = float((ok["load_s"] + ok["warmup_s"]).sum())
    return 100.0 * setup / (setup + float(ok["measure_s"].sum()))


def setup_by_backend(frame: pd.DataFrame) -> pd.DataFrame:
    """Seconds of setup and measurement summed per model and backend, with setup's share."""
    ok = measured(frame)
    totals = ok.groupby(["model", "backend"], sort=False)[["load_s", "warmup_s", "measure_s"]].sum().reset_index()
    setup = totals["load_s"] + totals["warmup_s"]
    totals["setup_share_pct"] = 100.0 * setup / (setup + totals["measure_s"])
    return totals


def summary(frame: pd.DataFrame, pairs: pd.DataFrame, baseline: str | None) -> dict[str, float]:
    """Flat headline numbers for `dvc metrics show/diff`; speedup geomeans only over pairs of comparable cells."""
    ok = measured(frame)
    out: dict[str, float] = {"cells_total": len(frame), "cells_ok": len(ok)}
    for status in ("oom", "failed", "missing"):
        out[f"cells_{status}"] = int((frame["status"] == status).sum())
    verdicts = frame["verdict"] if "verdict" in frame else pd.Series(dtype=object)
    for verdict in ("pass", "warn", "fail"):
        out[f"cells_{verdict}"] = int((verdicts == verdict).sum())
    share = setup_share_pct(frame)
    if share is not None:
        out["setup_share_pct"] = round(share, 2)
    if "early_divergence" in frame:
        out["cells_early_divergence"] = int(frame["early_divergence"].fillna(False).astype(bool).sum())
    for (model, backend), group in ok.groupby(["model", "backend"], sort=True):
        smallest = group.sort_values(["batch_size", "input_len"]).iloc[0]
        out[f"{model}.{backend}.max_output_tokens_per_s"] = round(float(group["output_tokens_per_s"].max()), 3)
        out[f"{model}.{backend}.tpot_p50_ms_smallest_cell"] = round(float(smallest["tpot_p50_ms"]), 4)
        if "mbu_pct" in group and group["mbu_pct"].notna().any():
            out[f"{model}.{backend}.max_mbu_pct"] = round(float(group["mbu_pct"].max()), 2)
    if not pairs.empty:
        out["speedup_pairs"], out["speedup_pairs_left_out"] = len(pairs), int(pairs["left_out"].notna().sum())
    for (model, backend), (mean, _) in geomeans(speedup_table(pairs)).items():
        key = f"{model}.{backend}.speedup_over_{baseline}_geomean"
        out[key] = round(mean.value, 4)
        if mean.ci_low is not None and mean.ci_high is not None:
            out[f"{key}_ci_low"], out[f"{key}_ci_high"] = round(mean.ci_low, 4), round(mean.ci_high, 4)
    return out
