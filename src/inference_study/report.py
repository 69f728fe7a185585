"""The report stage: the cells named by params.yaml → tidy CSV, metrics JSON, PNG plots, Markdown.

The cell list comes from the config, never from a directory glob, so stale files of removed cells
are never counted. Output is deterministic: Agg backend, fixed DPI, no timestamps, fixed precision.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from inference_study.backends.registry import backend_class, engine_profile, is_trtllm  # noqa: E402
from inference_study.config import Cell, StudyConfig, Target  # noqa: E402
from inference_study.equivalence import equivalence_table  # noqa: E402
from inference_study.results import CellResult, ResultError, read_result, write_json_atomic, write_result  # noqa: E402
from inference_study.roofline import ROOFLINE_NAME, Roofline, utilization  # noqa: E402
from inference_study.scenarios.report import keep_scenario_inputs, load_scenarios, scenario_sections  # noqa: E402
from inference_study.tables import markdown_table  # noqa: E402

BASELINE = "hf_eager"
INPUTS = "inputs"
HEADLINE_COLUMNS = {"ttft_p50_s": ("ttft_p50_ms", 1000.0), "tpot_p50_s": ("tpot_p50_ms", 1000.0),
                    "output_tokens_per_s": ("output_tokens_per_s", 1.0)}
HEADLINE_LABELS = tuple(label for label, _ in HEADLINE_COLUMNS.values())
FLOAT_FORMAT = "%.6g"
PNG_OPTIONS = {"dpi": 110, "metadata": {"Software": None}}
MS = 1000.0
GIB = 1024.0**3


def load_cells(study: StudyConfig, results_dir: Path) -> list[tuple[Cell, CellResult | None]]:
    """Each configured cell with its validated result, or None when it has not run yet.

    A corrupt or foreign file is an error naming the file: it is never averaged in.
    """
    loaded = []
    for cell in study.all_cells():
        path = cell.result_path(results_dir)
        if not path.exists():
            loaded.append((cell, None))
            continue
        result = read_result(path)
        if result.cell != cell:
            raise ResultError(f"{path}: holds cell {result.cell.key}, expected {cell.key}")
        loaded.append((cell, result))
    return loaded


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


def _scaled(value: float | None, unit: float) -> float | None:
    return None if value is None else value / unit


SHAPE_KEYS = ["model", "backend", "batch_size", "input_len", "output_len"]


def output_equivalence(loaded: list[tuple[Cell, CellResult | None]]) -> pd.DataFrame:
    """Greedy-token agreement of each cell with the baseline backend's cell of the same shape."""
    outputs = {
        tuple(cell.model_dump().values()): result.output_ids
        for cell, result in loaded
        if result is not None and result.output_ids is not None
    }
    return equivalence_table(outputs, BASELINE)


def results_table(loaded: list[tuple[Cell, CellResult | None]], roofline: Roofline | None) -> pd.DataFrame:
    """One tidy row per configured cell, in config order, with its agreement with the baseline."""
    frame = pd.DataFrame([_row(cell, result, roofline) for cell, result in loaded])
    agreement = output_equivalence(loaded)
    if agreement.empty:
        return frame
    return frame.merge(agreement, on=SHAPE_KEYS, how="left")


def _measured(frame: pd.DataFrame) -> pd.DataFrame:
    """Cells with numbers that may be compared: measured, and not failed by a validity check."""
    return frame[(frame["status"] == "ok") & (frame["verdict"] != "fail")]


SPEEDUP_KEYS = ["model", "batch_size", "input_len", "output_len"]


def _paired_with_baseline(frame: pd.DataFrame) -> pd.DataFrame:
    """Each comparable cell beside the baseline cell of the same model and shape."""
    ok = _measured(frame)
    if ok.empty or BASELINE not in set(ok["backend"]):
        return pd.DataFrame(columns=[*SPEEDUP_KEYS, "backend", "speedup", "same_environment",
                                     "environment_fingerprint", "baseline_environment_fingerprint"])
    base = ok[ok["backend"] == BASELINE].set_index(SPEEDUP_KEYS)[["output_tokens_per_s", "environment_fingerprint"]]
    joined = ok.join(base.add_prefix("baseline_"), on=SPEEDUP_KEYS, how="inner")
    joined["speedup"] = joined["output_tokens_per_s"] / joined["baseline_output_tokens_per_s"]
    joined["same_environment"] = joined["environment_fingerprint"] == joined["baseline_environment_fingerprint"]
    return joined


def speedups(frame: pd.DataFrame) -> pd.DataFrame:
    """Output tok/s of each backend over the baseline on the same model, shape and environment.

    A pair measured in two environments (another GPU, driver or library version) is no speedup.
    """
    paired = _paired_with_baseline(frame)
    return paired[paired["same_environment"].astype(bool)][SPEEDUP_KEYS + ["backend", "speedup"]]


def cross_environment_pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """The cells left out of the speedups because the baseline ran in another environment."""
    paired = _paired_with_baseline(frame)
    return paired[~paired["same_environment"].astype(bool)][
        SPEEDUP_KEYS + ["backend", "environment_fingerprint", "baseline_environment_fingerprint"]]


def setup_share_pct(frame: pd.DataFrame) -> float | None:
    """Load + warmup time as a share of load + warmup + measurement, over measured cells."""
    ok = _measured(frame)
    if ok.empty:
        return None
    setup = float((ok["load_s"] + ok["warmup_s"]).sum())
    return 100.0 * setup / (setup + float(ok["measure_s"].sum()))


def setup_by_backend(frame: pd.DataFrame) -> pd.DataFrame:
    """Seconds of setup and measurement summed per model and backend, with setup's share."""
    ok = _measured(frame)
    totals = ok.groupby(["model", "backend"], sort=False)[["load_s", "warmup_s", "measure_s"]].sum().reset_index()
    setup = totals["load_s"] + totals["warmup_s"]
    totals["setup_share_pct"] = 100.0 * setup / (setup + totals["measure_s"])
    return totals


def _setup_section(frame: pd.DataFrame) -> list[str]:
    lines = ["## Setup versus measurement (seconds)", ""]
    share = setup_share_pct(frame)
    if share is None:
        return lines + ["No measured cell.", ""]
    lines += [f"Setup (load, compile, warmup) took {share:.1f}% of the cells' wall time; the rest was measurement. "
              "Compiled rungs compile one static graph per cell (per shape).", "",
              _markdown_table(setup_by_backend(frame), ["model", "backend", "load_s", "warmup_s", "measure_s",
                                                        "setup_share_pct"]), ""]
    return lines + [_markdown_table(frame, ["model", "backend", "batch_size", "input_len", "load_s", "warmup_s",
                                            "measure_s"]), ""]


def summary(frame: pd.DataFrame) -> dict[str, float]:
    """Flat headline numbers for `dvc metrics show/diff`."""
    ok = _measured(frame)
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
    for (model, backend), group in speedups(frame).groupby(["model", "backend"], sort=True):
        if backend != BASELINE:
            geomean = float(np.exp(np.log(group["speedup"]).mean()))
            out[f"{model}.{backend}.speedup_over_{BASELINE}_geomean"] = round(geomean, 4)
    return out


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, **PNG_OPTIONS)
    plt.close(fig)


def _log2_axis(ax: plt.Axes, values: pd.Series) -> None:
    ticks = sorted(values.unique())
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()


def _colours(values: pd.Series) -> dict:
    """One colour per value for every panel of a figure: a panel missing a line must not shift the others'."""
    return {value: f"C{index}" for index, value in enumerate(sorted(values.unique()))}


def _panels(count: int, width: float = 4.2) -> tuple[plt.Figure, list[plt.Axes]]:
    fig, axes = plt.subplots(1, count, figsize=(width * count, 3.6), squeeze=False)
    return fig, list(axes[0])


def plot_latency_vs_input(ok: pd.DataFrame, model: str, path: Path) -> None:
    """E2E P50 latency against input length, one line per batch size, one panel per backend."""
    data = ok[ok["model"] == model]
    backends = sorted(data["backend"].unique())
    colours = _colours(data["batch_size"])
    fig, axes = _panels(len(backends))
    for ax, backend in zip(axes, backends):
        for batch, group in data[data["backend"] == backend].groupby("batch_size"):
            group = group.sort_values("input_len")
            ax.plot(group["input_len"], group["e2e_p50_ms"], marker="o", label=f"batch {batch}", color=colours[batch])
        ax.set(title=f"{model} · {backend}", xlabel="input length (tokens)", ylabel="E2E latency P50 (ms)")
        _log2_axis(ax, data["input_len"])
        ax.legend(fontsize="small")
    _save(fig, path)


def plot_against_batch(ok: pd.DataFrame, model: str, column: str, ylabel: str, path: Path) -> bool:
    """`column` against batch size, one line per backend, one panel per input length; False if no data."""
    data = ok[ok["model"] == model]
    if column not in data or data[column].isna().all():
        return False
    lengths = sorted(data["input_len"].unique())
    colours = _colours(data["backend"])
    fig, axes = _panels(len(lengths))
    for ax, length in zip(axes, lengths):
        for backend, group in data[data["input_len"] == length].groupby("backend"):
            group = group.sort_values("batch_size")
            ax.plot(group["batch_size"], group[column], marker="o", label=backend, color=colours[backend])
        ax.set(title=f"{model} · input {length}", xlabel="batch size", ylabel=ylabel)
        _log2_axis(ax, data["batch_size"])
        ax.legend(fontsize="small")
    _save(fig, path)
    return True


def plot_speedup_heatmap(speedup: pd.DataFrame, model: str, path: Path) -> bool:
    """Throughput speedup over the baseline per batch × input length, one panel per backend."""
    data = speedup[(speedup["model"] == model) & (speedup["backend"] != BASELINE)]
    if data.empty:
        return False
    backends = sorted(data["backend"].unique())
    fig, axes = _panels(len(backends), width=4.6)
    for ax, backend in zip(axes, backends):
        grid = data[data["backend"] == backend].pivot_table(
            index="batch_size", columns="input_len", values="speedup", aggfunc="mean"
        )
        image = ax.imshow(grid.values, cmap="RdYlGn", vmin=0, vmax=max(2.0, float(np.nanmax(grid.values))))
        ax.set_xticks(range(len(grid.columns)), [str(c) for c in grid.columns])
        ax.set_yticks(range(len(grid.index)), [str(i) for i in grid.index])
        for (y, x), value in np.ndenumerate(grid.values):
            ax.text(x, y, f"{value:.2f}×", ha="center", va="center", fontsize="small")
        ax.set(title=f"{model} · {backend} vs {BASELINE}", xlabel="input length", ylabel="batch size")
        fig.colorbar(image, ax=ax, shrink=0.8)
    _save(fig, path)
    return True


def write_figures(frame: pd.DataFrame, figures_dir: Path) -> list[Path]:
    """All PNGs of the report, per model; returns their paths in a stable order."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    for stale in figures_dir.glob("*.png"):
        stale.unlink()
    ok, speedup = _measured(frame), speedups(frame)
    written = []
    for model in sorted(ok["model"].unique()):
        plots = {
            "latency_vs_input": lambda path: plot_latency_vs_input(ok, model, path),
            "throughput_vs_batch": lambda path: plot_against_batch(ok, model, "output_tokens_per_s",
                                                                   "output tokens/s", path),
            "speedup_heatmap": lambda path: plot_speedup_heatmap(speedup, model, path),
            "mbu_vs_batch": lambda path: plot_against_batch(ok, model, "mbu_pct", "decode MBU (% of measured)",
                                                            path),
        }
        for name, plot in plots.items():
            path = figures_dir / f"{name}_{model}.png"
            if plot(path) is not False:
                written.append(path)
    return written


def _readable(value: object) -> object:
    """Three significant digits, without scientific notation for large rates."""
    if isinstance(value, float):
        if np.isnan(value):
            return "—"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return value


def _markdown_table(frame: pd.DataFrame, columns: list[str]) -> str:
    shown = frame[[c for c in columns if c in frame.columns]].map(_readable)
    return shown.to_markdown(index=False, missingval="—", disable_numparse=True)


def _environment_section(loaded: list[tuple[Cell, CellResult | None]]) -> list[str]:
    environments = {r.environment_fingerprint: r.environment for _, r in loaded if r is not None}
    lines = ["## Environment", ""]
    if len(environments) > 1:
        lines += [f"**Warning:** cells were measured in {len(environments)} different environments; "
                  "compare them with care.", ""]
    for fingerprint, env in sorted(environments.items()):
        lines += [f"Fingerprint `{fingerprint}`:", ""]
        lines += [f"- {key}: {value if value is not None else 'none'}" for key, value in env.model_dump().items()]
        lines.append("")
    return lines


def _with_interval(frame: pd.DataFrame, label: str) -> pd.Series:
    """"median [low, high]" per cell for a headline metric; the bare median when there is no interval."""
    def cell(row: pd.Series) -> str:
        if pd.isna(row.get(f"{label}_median")):
            return "—"
        text = _readable(float(row[f"{label}_median"]))
        if pd.notna(row.get(f"{label}_ci_low")):
            text += f" [{_readable(float(row[f'{label}_ci_low']))}, {_readable(float(row[f'{label}_ci_high']))}]"
        return text

    return frame.apply(cell, axis=1)


def _repeatability_section(frame: pd.DataFrame) -> list[str]:
    ok = frame[frame["status"] == "ok"]
    if ok.empty:
        return []
    if f"{HEADLINE_LABELS[0]}_median" not in ok:
        return ["## Repeatability", "", "These results predate per-repeat intervals (result schema 1): "
                "each cell reports one pooled distribution, without a confidence interval.", ""]
    table = ok[["model", "backend", "batch_size", "input_len", "output_len"]].copy()
    for label in HEADLINE_LABELS:
        table[label] = _with_interval(ok, label)
    table["max CV"] = ok[[f"{label}_cv" for label in HEADLINE_LABELS]].max(axis=1).map(
        lambda cv: "—" if pd.isna(cv) else f"{cv:.1%}"
    )
    lines = ["## Repeatability", "",
             "Median over the timed iterations (each one a repeat), with a 95% percentile-bootstrap interval "
             "(scipy, seeded) and the largest coefficient of variation of the three.", ""]
    return lines + [table.to_markdown(index=False, disable_numparse=True), ""]


def _verdict_section(frame: pd.DataFrame) -> list[str]:
    flagged = frame[frame["verdict"].isin(["warn", "fail"])] if "verdict" in frame else frame.iloc[0:0]
    lines = ["## Validity", ""]
    counts = frame["verdict"].value_counts().to_dict() if "verdict" in frame else {}
    lines.append("Verdicts: " + (", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "none") + ".")
    if not flagged.empty:
        lines += ["", _markdown_table(flagged, ["model", "backend", "batch_size", "input_len", "output_len",
                                                "verdict", "verdict_reasons"])]
    return lines + [""]


def _equivalence_section(frame: pd.DataFrame) -> list[str]:
    lines = ["## Output equivalence", ""]
    if "greedy_match_pct" not in frame or frame["greedy_match_pct"].isna().all():
        return lines + [f"No cell has both its own and `{BASELINE}`'s greedy tokens to compare.", ""]
    compared = frame[frame["greedy_match_pct"].notna()]
    early = int(compared["early_divergence"].fillna(False).astype(bool).sum())
    lines += [
        f"Greedy tokens of the last timed iteration against `{BASELINE}` on the same inputs: the share of",
        "requests with identical tokens, and the first position where any request differs (— when none does).",
        "These optimizations are lossless; numeric noise can still flip an argmax between nearly equal logits,",
        f"most often with random weights. {early} of {len(compared)} cells diverge within the first quarter "
        "of the output (flagged).",
        "",
        _markdown_table(compared, [*SHAPE_KEYS, "greedy_match_pct", "first_divergence", "early_divergence"]),
        "",
    ]
    return lines


def _null_reasons_section(loaded: list[tuple[Cell, CellResult | None]]) -> list[str]:
    """Why a column shows "—": each null value carries its reason in the result file."""
    reasons = sorted({(field, why) for _, r in loaded if r is not None for field, why in r.null_reasons.items()})
    if not reasons:
        return []
    lines = ["Values shown as — were not measured, for these reasons:", ""]
    return lines + [f"- `{field}`: {why}" for field, why in reasons] + [""]


def _configuration_section(study: StudyConfig) -> list[str]:
    lines = ["## Configuration", "", f"- bench: `{json.dumps(study.bench.model_dump())}`"]
    lines += [f"- sweep: `{json.dumps(study.sweep.model_dump())}`", "", "Backends:", ""]
    for name in study.sweep.backends:
        settings = json.dumps(study.backend_settings(name).model_dump())
        lines.append(f"- `{name}`: {backend_class(name).description}. Settings `{settings}`")
    lines += ["", "Models:", ""]
    for name in study.sweep.models:
        spec = study.models[name]
        weights = "random weights (timing does not depend on weight values)" if spec.source == "random" else spec.source
        shape = json.dumps(spec.model_dump(exclude_none=True).get("shape"))
        lines.append(f"- `{name}`: {spec.architecture}, {spec.dtype}, {weights}; shape `{shape}`")
    if any(study.models[name].source == "random" for name in study.sweep.models):
        lines += ["", "Timing does not depend on weight values, so random weights give the real model's speed. "
                  "Experiments whose outcome depends on the generated text (speculative-decoding acceptance, "
                  "output-dependent cache reuse) do depend on them, and are not representative with random weights."]
    return lines + [""]


def _roofline_section(roofline: Roofline | None) -> list[str]:
    lines = ["## Roofline", ""]
    if roofline is None:
        return lines + ["The roofline stage has not run: MBU and MFU are not shown.", ""]
    for field in ("measured_bandwidth_gb_s", "datasheet_bandwidth_gb_s", "measured_matmul_tflops", "datasheet_fp16_tflops"):
        value = getattr(roofline, field)
        shown = f"{value:,.0f}" if value is not None else f"— ({roofline.null_reasons.get(field, 'not measured')})"
        lines.append(f"- {field}: {shown}")
    lines += [
        "",
        "MBU = (weight bytes + K/V bytes of the mean context) × decode steps/s ÷ measured bandwidth.",
        "Prefill MFU = (2 × non-embedding parameters × prompt tokens + causal attention FLOPs) ÷ TTFT P50 ÷ measured",
        f"{roofline.matmul_dtype} matmul throughput. TTFT includes the host work before the first token, so MFU is a lower bound.",
        "",
    ]
    return lines


def render_markdown(
    study: StudyConfig, frame: pd.DataFrame, loaded, roofline: Roofline | None, figures: list[Path], out_dir: Path,
    scenarios: list[str],
) -> str:
    """The human-readable report; every number in it comes from the result files."""
    counts = frame["status"].value_counts().to_dict()
    lines = [f"# Inference study: {study.study.name}", "", study.study.description, ""]
    lines += [f"Cells: {len(frame)} configured; " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ".", ""]
    lines += [
        "Metrics follow trtllm-bench/MLPerf: TTFT = first token − request start; TPOT = (E2E − TTFT)/(OSL − 1);",
        "ITL = gap between consecutive tokens; output length is forced (EOS ignored) and checked per request.",
        "Values are P50 over all requests of all timed iterations unless named otherwise.",
        "",
    ]
    lines += ["## Results", "", _markdown_table(frame, [
        "model", "backend", "batch_size", "input_len", "output_len", "status", "verdict", "ttft_p50_ms",
        "tpot_p50_ms", "e2e_p50_ms", "e2e_p95_ms", "e2e_p99_ms", "output_tokens_per_s", "mbu_pct",
        "prefill_mfu_pct", "nvml_memory_peak_gib", "torch_allocated_peak_gib", "gpu_utilization_mean_pct"]), ""]
    lines += _repeatability_section(frame) + _verdict_section(frame) + _equivalence_section(frame)
    problems = frame[frame["status"] != "ok"]
    if not problems.empty:
        lines += ["Cells without a measurement (never counted in speedups):", ""]
        lines += [_markdown_table(problems, ["model", "backend", "batch_size", "input_len", "output_len", "status", "error"]), ""]
    unpaired = cross_environment_pairs(frame)
    if not unpaired.empty:
        lines += [f"**Warning:** these cells ran in another environment than their `{BASELINE}` cell, so no "
                  "speedup is computed for them:", "", _markdown_table(unpaired, list(unpaired.columns)), ""]
    speedup = speedups(frame)
    if not speedup.empty and (speedup["backend"] != BASELINE).any():
        lines += [f"## Speedup over `{BASELINE}` (output tokens/s ratio)", ""]
        table = speedup[speedup["backend"] != BASELINE].pivot_table(
            index=["model", "batch_size", "input_len", "output_len"], columns="backend", values="speedup"
        ).reset_index()
        lines += [markdown_table(table, floatfmt=".2f"), ""]
    lines += trtllm_section(study, frame) + scenarios
    lines += _targets_section(study, frame)
    lines += paged_kv_section(study, frame)
    lines += _null_reasons_section(loaded)
    lines += _setup_section(frame)
    lines += ["## Plots", ""] + [f"![{p.stem}]({p.relative_to(out_dir).as_posix()})" for p in figures] + [""]
    lines += _roofline_section(roofline) + _environment_section(loaded) + _configuration_section(study)
    return "\n".join(lines)


def target_value(target: Target, frame: pd.DataFrame) -> tuple[float | None, str]:
    """The target's measured value, or None with the reason it cannot be judged."""
    def measured(batch_size: int) -> tuple[float | None, str]:
        coords = target.cell.model_dump() | {"batch_size": batch_size}
        rows = frame[np.logical_and.reduce([frame[key] == value for key, value in coords.items()])]
        if rows.empty:
            cell = target.cell
            return None, (f"{cell.model} {cell.backend} batch {batch_size}, {cell.input_len}/{cell.output_len} "
                          "is not in this sweep")
        row = rows.iloc[0]
        if row["status"] != "ok":
            return None, f"batch {batch_size}: {row['status']}"
        if row["verdict"] == "fail" or pd.isna(row.get(target.metric)):
            return None, f"batch {batch_size}: verdict {row['verdict']}, {target.metric} not measured"
        return float(row[target.metric]), ""

    value, why = measured(target.cell.batch_size)
    if value is None or target.relative_to_batch is None:
        return value, why
    base, why = measured(target.relative_to_batch)
    return (None, why) if base is None else (value / base, "")


def _targets_section(study: StudyConfig, frame: pd.DataFrame) -> list[str]:
    """The study's performance bars, each with its measured value and whether this run met it."""
    section = study.study
    if not section.targets and section.setup_share_at_most_pct is None:
        return []
    rows = []
    for target in section.targets:
        value, why = target_value(target, frame)
        unit = "×" if target.relative_to_batch else ("%" if target.metric.endswith("pct") else "")
        met = "not judged: " + why if value is None else ("met" if value >= target.at_least else "not met")
        rows.append((target.name, f"≥ {target.at_least:g}{unit}", "—" if value is None else f"{value:.3g}{unit}", met))
    if section.setup_share_at_most_pct is not None:
        share = setup_share_pct(frame)
        met = "not judged: no measured cell" if share is None else (
            "met" if share <= section.setup_share_at_most_pct else "not met")
        rows.append(("setup share of cell wall time", f"≤ {section.setup_share_at_most_pct:g}%",
                     "—" if share is None else f"{share:.3g}%", met))
    table = pd.DataFrame(rows, columns=["target", "bar", "measured", "outcome"]).to_markdown(index=False)
    return ["## Performance targets", "", "Bars set by the study preset (`study.targets`), checked against "
            "the measured cells; a cell that is missing, failed or not in the sweep is not judged.", "", table, ""]


TRTLLM_DOCS = "docs/tensorrt-llm.md"
COMPARED_METRICS = {  # column, label, whether larger is better
    "output_tokens_per_s": ("output tokens/s", True),
    "e2e_p50_ms": ("E2E latency P50 (ms)", False),
}


def _versus_pytorch(measured: pd.DataFrame, rungs: list[str], trtllm_backend: str, column: str,
                    larger_is_better: bool) -> pd.DataFrame:
    """One TensorRT-LLM backend's `column` beside every PyTorch rung's, per shape, with its speedup over
    the baseline and over the best PyTorch rung at that shape (seed 002's table, for every shape)."""
    keys = ["batch_size", "input_len", "output_len"]
    pytorch = measured[measured["backend"].isin(rungs)].pivot_table(index=keys, columns="backend", values=column)
    pytorch = pytorch[[rung for rung in rungs if rung in pytorch]]
    ours = measured[measured["backend"] == trtllm_backend].set_index(keys)[column].rename(trtllm_backend)
    table = pytorch.join(ours, how="right")
    best = pytorch.idxmax(axis=1) if larger_is_better else pytorch.idxmin(axis=1)
    table["best PyTorch"] = best.reindex(table.index)
    best_value = pytorch.max(axis=1) if larger_is_better else pytorch.min(axis=1)
    ratio = (lambda other: ours / other) if larger_is_better else (lambda other: other / ours)
    if BASELINE in pytorch:
        table[f"× {BASELINE}"] = ratio(pytorch[BASELINE]).reindex(table.index)
    table["× best PyTorch"] = ratio(best_value).reindex(table.index)
    return table.reset_index()


def _trtllm_not_measured(trtllm: pd.DataFrame) -> list[str]:
    """Each enabled TensorRT-LLM backend without a usable cell, with what its cells are instead."""
    lines = []
    for (model, backend), group in trtllm.groupby(["model", "backend"], sort=True):
        if _measured(group).empty:
            counts = group["status"].value_counts().to_dict()
            shown = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            lines.append(f"- `{backend}` on `{model}`: no usable measurement ({shown}); missing cells have not run "
                         "yet, the others are listed above with their errors or verdicts.")
    return lines


def trtllm_section(study: StudyConfig, frame: pd.DataFrame) -> list[str]:
    """TensorRT-LLM beside every PyTorch rung with its speedups, or why there are no TensorRT-LLM numbers.

    Only measured cells appear; a TensorRT-LLM number always comes from a result file whose environment
    records an installed TensorRT-LLM (results.py refuses anything else).
    """
    lines = ["## TensorRT-LLM", ""]
    if not study.trtllm.enabled_flows:
        return lines + [
            "Not run: this study enables no TensorRT-LLM backend (`trtllm.models` and `trtllm.pytorch_models` "
            "are empty, as in every preset that leaves TensorRT-LLM out, because it needs NVIDIA's "
            f"TensorRT-LLM package on a GPU). `study=h100_trtllm` enables it; see `{TRTLLM_DOCS}`.", ""]
    trtllm = frame[frame["backend"].map(is_trtllm)]
    measured = _measured(frame)
    lines += ["Backends:", ""]
    for backend in sorted(trtllm["backend"].unique()):
        settings = json.dumps(study.backend_settings(backend).model_dump(exclude={"engine_dir"}))
        lines.append(f"- `{backend}`: {backend_class(backend).description}. Settings `{settings}`")
    lines += [""] + _trtllm_not_measured(trtllm)
    queued = [name for name in trtllm["backend"].unique() if engine_profile(name)
              and study.trtllm.profiles[engine_profile(name)].purpose == "latency"]
    if queued and max(study.sweep.batch_sizes) > 1:
        lines += ["", f"Latency engines ({', '.join(f'`{n}`' for n in sorted(queued))}) hold one request at a "
                  "time: at a larger batch the other requests queue, so those rows measure serial service."]
    for (model, backend), _ in measured[measured["backend"].map(is_trtllm)].groupby(["model", "backend"]):
        for column, (label, larger_is_better) in COMPARED_METRICS.items():
            table = _versus_pytorch(measured[measured["model"] == model], study.sweep.backends, backend, column,
                                    larger_is_better)
            lines += ["", f"### `{backend}` against the PyTorch rungs: {model}, {label}", "",
                      markdown_table(table, floatfmt=".3g")]
    return lines + ["", "— : that rung has no usable measurement at that shape (missing, out of memory, failed, "
                    "or a `fail` verdict; see Validity). Speedups divide measured values of the same shape only.", ""]


PAGED = "hf_paged"
# Contiguous-KV rungs paged KV is set against: the static-cache rung (issue 5's comparison), then the
# eager rung, which like hf_paged compiles nothing, so its ratio isolates the cache layout from compilation.
CONTIGUOUS_RUNGS = ("hf_static_compiled", "hf_eager")
SEED_000 = {"batch_size": 8, "input_len": 512, "output_len": 512}
SEED_000_RATIO = 0.92
PAGED_RATIOS = {  # column: label of paged ÷ contiguous
    "output_tokens_per_s": "tok/s ×",
    "ttft_p50_ms": "TTFT P50 ×",
    "tpot_p50_ms": "TPOT P50 ×",
    "e2e_p50_ms": "E2E P50 ×",
}
SHAPE = ["batch_size", "input_len", "output_len"]


def _higher_throughput(row: pd.Series) -> str:
    """Which side has the higher output tokens/s: by non-overlapping 95% intervals when both have one."""
    label = "output_tokens_per_s"
    bounds = [row.get(f"{label}_{end}_{side}")
              for side in ("paged", "contiguous") for end in ("ci_low", "ci_high")]
    if any(value is None or pd.isna(value) for value in bounds):
        return "paged" if row["tok/s ×"] > 1 else "contiguous"
    paged_low, paged_high, contiguous_low, contiguous_high = bounds
    if paged_low > contiguous_high:
        return "paged"
    if contiguous_low > paged_high:
        return "contiguous"
    return "neither (intervals overlap)"


def paged_ratios(frame: pd.DataFrame, contiguous: str) -> pd.DataFrame:
    """hf_paged ÷ a contiguous rung per model and shape, measured cells of both only, with the winner."""
    measured = _measured(frame)
    keys = ["model", *SHAPE]
    paged = measured[measured["backend"] == PAGED].set_index(keys)
    other = measured[measured["backend"] == contiguous].set_index(keys)
    joined = paged.merge(other, left_index=True, right_index=True, suffixes=("_paged", "_contiguous"))
    table = pd.DataFrame(index=joined.index)
    for column, label in PAGED_RATIOS.items():
        table[label] = joined[f"{column}_paged"] / joined[f"{column}_contiguous"]
    if not table.empty:
        table["higher tok/s"] = pd.concat([table, joined], axis=1).apply(_higher_throughput, axis=1)
    return table.reset_index()


def _seed_000_lines(ratios: pd.DataFrame, contiguous: str) -> list[str]:
    """Seed 000's shape in this run, if measured: the ratio and whether paged loses, as it did there."""
    at_seed = ratios[(ratios[SHAPE] == pd.Series(SEED_000)).all(axis=1)]
    if at_seed.empty:
        return [f"Seed 000's shape (batch 8, input 512, output 512) has no measured `{PAGED}` / "
                f"`{contiguous}` pair in this run, so its number is not checked here."]
    lines = []
    for _, row in at_seed.iterrows():
        ratio = row["tok/s ×"]
        outcome = "loses, as in the seed" if ratio < 1 else "does not lose, unlike the seed"
        lines.append(f"At seed 000's shape on `{row['model']}`, paged ÷ `{contiguous}` output tokens/s is "
                     f"{ratio:.2f}× (seed 000: {SEED_000_RATIO}× on TensorRT-LLM): paged {outcome}.")
    return lines


def _paged_not_measured(study: StudyConfig, frame: pd.DataFrame) -> str | None:
    """Why there is no paged/contiguous pair to compare, or None when there is one."""
    if PAGED not in study.sweep.backends:
        return (f"Not run: this study's `sweep.backends` does not list `{PAGED}` (the default CPU sweep "
                "leaves it out to keep `dvc repro` quick, and results measured before the rung existed "
                f"cannot hold it). Add it with `sweep.backends=[...,{PAGED}]`, with a pool "
                f"(`backends.{PAGED}.num_blocks`) large enough for the sweep's largest cell.")
    present = [rung for rung in CONTIGUOUS_RUNGS if rung in study.sweep.backends]
    if not present:
        return (f"Not compared: `sweep.backends` lists `{PAGED}` but no contiguous-KV rung "
                f"({', '.join(f'`{r}`' for r in CONTIGUOUS_RUNGS)}) to set it against.")
    if all(paged_ratios(frame, rung).empty for rung in present):
        counts = frame[frame["backend"] == PAGED]["status"].value_counts().to_dict()
        shown = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        return (f"No shape has usable measurements of both `{PAGED}` and a contiguous rung ({PAGED} cells: "
                f"{shown}); missing cells have not run yet, the others are listed above with their errors.")
    return None


def paged_kv_section(study: StudyConfig, frame: pd.DataFrame) -> list[str]:
    """Paged against contiguous KV per cell (seed 000's question, PyTorch side), or why it is not shown."""
    lines = [
        "## Paged KV", "",
        f"Seed 000 measured a TensorRT-LLM engine with paged KV at {SEED_000_RATIO}× the throughput of the "
        "same engine with contiguous KV, at batch 8, input 512, output 512. Here `hf_paged` (transformers "
        "continuous batching over a fixed pool of KV blocks, `paged|sdpa`) is set against the contiguous-KV "
        "rungs. Ratios are paged ÷ contiguous: above 1 paged has more tokens/s or a longer latency.", "",
    ]
    reason = _paged_not_measured(study, frame)
    if reason:
        return lines + [reason, ""]
    for rung in (rung for rung in CONTIGUOUS_RUNGS if rung in study.sweep.backends):
        ratios = paged_ratios(frame, rung)
        if ratios.empty:
            continue
        wins = (ratios["higher tok/s"] == "paged").sum()
        losses = (ratios["higher tok/s"] == "contiguous").sum()
        lines += [f"### `{PAGED}` ÷ `{rung}`", "",
                  f"Paged has the higher throughput in {wins} of {len(ratios)} shapes and the lower in "
                  f"{losses}.",
                  "", ratios.to_markdown(index=False, floatfmt=".3g"), ""]
        lines += _seed_000_lines(ratios, rung) + [""]
    lines += [f"Against `{CONTIGUOUS_RUNGS[0]}` the ratio also carries that rung's torch.compile and CUDA "
              f"graphs, which `{PAGED}` does without; against `{CONTIGUOUS_RUNGS[1]}` neither side compiles, "
              "so it compares the cache layout and continuous batching's packed steps alone. transformers' "
              "`paged|sdpa` gathers K/V through an index and builds a mask each step, where TensorRT-LLM "
              "runs fused paged-attention kernels, so the size of the seed's ratio is not expected to carry over; "
              "its direction is what is compared.", ""]
    return lines


def load_roofline(path: Path) -> Roofline | None:
    """The measured ceilings, or None when the roofline stage has not run (MBU columns stay empty)."""
    if not path.exists():
        return None
    try:
        return Roofline.model_validate_json(path.read_text())
    except ValueError as error:
        raise ResultError(f"{path}: not a valid roofline file: {error}") from None


def keep_inputs(study: StudyConfig, loaded, loaded_scenarios, roofline_path: Path, out_dir: Path) -> None:
    """Copy what the report is built from (params, cell and scenario results, roofline) into `out_dir/inputs/`.

    A committed report then carries its own raw data: `inference-study report --inputs DIR` rebuilds
    it on any machine, without a GPU and without DVC.
    """
    inputs = out_dir / INPUTS
    (inputs / "params.yaml").parent.mkdir(parents=True, exist_ok=True)
    (inputs / "params.yaml").write_text(yaml.safe_dump(study.model_dump(mode="json"), sort_keys=False))
    cells_dir = inputs / "cells"
    if cells_dir.exists():
        shutil.rmtree(cells_dir)
    for cell, result in loaded:
        if result is not None:
            write_result(cell.result_path(inputs), result)
    keep_scenario_inputs(loaded_scenarios, inputs)
    (inputs / ROOFLINE_NAME).unlink(missing_ok=True)
    if roofline_path.exists():
        shutil.copyfile(roofline_path, inputs / ROOFLINE_NAME)


def build_report(study: StudyConfig, results_dir: Path, out_dir: Path, roofline_path: Path) -> dict[str, float]:
    """Write results.csv, summary.json, figures/*.png, report.md and the inputs into `out_dir`."""
    loaded = load_cells(study, results_dir)
    loaded_scenarios = load_scenarios(study, results_dir)
    roofline = load_roofline(roofline_path)
    frame = results_table(loaded, roofline)
    out_dir.mkdir(parents=True, exist_ok=True)
    if results_dir.resolve() != (out_dir / INPUTS).resolve():
        keep_inputs(study, loaded, loaded_scenarios, roofline_path, out_dir)
    frame.to_csv(out_dir / "results.csv", index=False, float_format=FLOAT_FORMAT)
    headline = summary(frame)
    write_json_atomic(out_dir / "summary.json", headline)
    figures = write_figures(frame, out_dir / "figures")
    (out_dir / "report.md").write_text(render_markdown(study, frame, loaded, roofline, figures, out_dir,
                                                        scenario_sections(study, loaded_scenarios)))
    return headline
