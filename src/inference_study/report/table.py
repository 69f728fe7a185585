"""The configured cells → one tidy frame (results.csv), the speedups over the baseline, and summary.json.

The cell list comes from the config, never from a directory glob, so stale files of removed cells are
never counted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from inference_study.config import Cell, StudyConfig
from inference_study.equivalence import equivalence_table
from inference_study.plan import bench_units
from inference_study.results import CellResult, ResultError, read_result
from inference_study.roofline import Roofline, utilization

HEADLINE_COLUMNS = {"ttft_p50_s": ("ttft_p50_ms", 1000.0), "tpot_p50_s": ("tpot_p50_ms", 1000.0),
                    "output_tokens_per_s": ("output_tokens_per_s", 1.0)}
HEADLINE_LABELS = tuple(label for label, _ in HEADLINE_COLUMNS.values())
SHAPE = ["batch_size", "input_len", "output_len"]
SHAPE_KEYS = ["model", "backend", *SHAPE]
SPEEDUP_KEYS = ["model", *SHAPE]
MS = 1000.0
GIB = 1024.0**3

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


def _scaled(value: float | None, unit: float) -> float | None:
    return None if value is None else value / unit


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
    if result.headline is not None:
        for name, value in result.headline.model_dump().items():
            label, scale = HEADLINE_COLUMNS[name]
            row |= {
                f"{label}_median": value["value"] * scale,
                f"{label}_ci_low": value["ci_low"] * scale if value["ci_low"] is not None else None,
                f"{label}_ci_high": value["ci_high"] * scale if value["ci_high"] is not None else None,
                f"{label}_cv": value["cv"],
            }
    if result.latency is not None:
        for metric in ("ttft_s", "tpot_s", "itl_s", "e2e_s"):
            stats = getattr(result.latency, metric)
            name = metric.removesuffix("_s")
            row |= {f"{name}_{p}_ms": getattr(stats, p) * MS for p in ("mean", "p50", "p90", "p95", "p99")}
    if result.throughput is not None:
        row |= result.throughput.model_dump()
    gpu = result.gpu
    row |= {
        "nvml_memory_peak_gib": _scaled(gpu.nvml_device_memory_used_peak_bytes, GIB),
        "torch_allocated_peak_gib": _scaled(gpu.torch_allocated_peak_bytes, GIB),
        "gpu_utilization_mean_pct": gpu.utilization_mean_pct,
        "gpu_power_mean_w": gpu.power_mean_w,
    }
    if roofline is not None:
        row |= utilization(result, roofline)
    row |= result.phases.model_dump()
    row |= {
        "random_weights": result.model.random_weights if result.model else None,
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
    """Cells with numbers that may be compared: measured, and not failed by a validity check."""
    if "verdict" not in frame:
        return frame.iloc[0:0]
    return frame[(frame["status"] == "ok") & (frame["verdict"] != "fail")]


def _paired_with_baseline(frame: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """Each comparable cell beside the baseline cell of the same model and shape."""
    ok = measured(frame)
    if ok.empty or baseline is None or baseline not in set(ok["backend"]):
        return pd.DataFrame(columns=[*SPEEDUP_KEYS, "backend", "speedup", "same_environment",
                                     "environment_fingerprint", "baseline_environment_fingerprint"])
    base = ok[ok["backend"] == baseline].set_index(SPEEDUP_KEYS)[["output_tokens_per_s", "environment_fingerprint"]]
    joined = ok.join(base.add_prefix("baseline_"), on=SPEEDUP_KEYS, how="inner")
    joined["speedup"] = joined["output_tokens_per_s"] / joined["baseline_output_tokens_per_s"]
    joined["same_environment"] = joined["environment_fingerprint"] == joined["baseline_environment_fingerprint"]
    return joined


def speedups(frame: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """Output tok/s of each backend over the baseline on the same model, shape and environment.

    A pair measured in two environments (another GPU, driver or library version) is no speedup.
    """
    paired = _paired_with_baseline(frame, baseline)
    return paired[paired["same_environment"].astype(bool)][SPEEDUP_KEYS + ["backend", "speedup"]]


def cross_environment_pairs(frame: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """The cells left out of the speedups because the baseline ran in another environment."""
    paired = _paired_with_baseline(frame, baseline)
    return paired[~paired["same_environment"].astype(bool)][
        SPEEDUP_KEYS + ["backend", "environment_fingerprint", "baseline_environment_fingerprint"]]


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


def summary(frame: pd.DataFrame, baseline: str | None) -> dict[str, float]:
    """Flat headline numbers for `dvc metrics show/diff`."""
    ok = measured(frame)
    out: dict[str, float] = {"cells_total": len(frame), "cells_ok": len(ok)}
    for status in ("oom", "failed", "missing"):
        out[f"cells_{status}"] = int((frame["status"] == status).sum())
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
    for (model, backend), group in speedups(frame, baseline).groupby(["model", "backend"], sort=True):
        if backend != baseline:
            geomean = float(np.exp(np.log(group["speedup"]).mean()))
            out[f"{model}.{backend}.speedup_over_{baseline}_geomean"] = round(geomean, 4)
    return out
