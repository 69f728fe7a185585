"""Another GPU's committed run beside this one (`study.compare_with`): the cells both measured, as two environments.

A ratio across GPUs is no speedup of an optimization, so this section never enters the speedup tables: it
shows each GPU's own numbers, their ratio, and the ratio divided by the two measured copy bandwidths, which
is 1 where a cell sped up exactly as the bandwidth grew (decode of a memory-bound step) and below 1 where
something else (kernel launches, the host) kept it from following.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from inference_study.config import CompareWith, StudyConfig, load_params
from inference_study.report.inputs import load_roofline
from inference_study.report.table import SHAPE_KEYS, Loaded, load_cells, ratio_text
from inference_study.results import CellResult, ResultError
from inference_study.roofline import ROOFLINE_NAME, Roofline
from inference_study.tables import markdown_table
from inference_study.uncertainty import Ratio, ratio

FIGURE = "cross_environment.png"


def _comparable(result: CellResult | None) -> bool:
    return (result is not None and result.status == "ok" and result.verdict.comparable
            and result.headline is not None and result.headline.output_tokens_per_s.ci_low is not None)


def _gpu(loaded: Loaded) -> str:
    names = sorted({r.environment.gpu_name or "no GPU" for _, r in loaded if r is not None and r.status == "ok"})
    return " / ".join(names) or "no measured cell"


def _bandwidth(roofline: Roofline | None) -> float | None:
    return None if roofline is None else roofline.measured_bandwidth_gb_s


def load_other(compare: CompareWith) -> tuple[Loaded, Roofline | None]:
    """The other run's configured cells and roofline, read from its committed inputs (old schemas upgrade)."""
    inputs = Path(compare.inputs)
    if not (inputs / "params.yaml").exists():
        raise ResultError(f"study.compare_with.inputs: {inputs}/params.yaml not found (a committed report's "
                          "inputs folder, e.g. reports/measured/h100/inputs)")
    other = load_params(inputs / "params.yaml", legacy_ok=True)
    return load_cells(other, inputs), load_roofline(inputs / ROOFLINE_NAME)


def _scaled(value: Ratio, factor: float) -> Ratio:
    """A ratio and its interval times a constant (the bandwidth ratio is one measured number per run)."""
    def times(bound: float | None) -> float | None:
        return None if bound is None else bound * factor

    return Ratio(value=value.value * factor, ci_low=times(value.ci_low), ci_high=times(value.ci_high),
                 method=value.method)


def paired(here: Loaded, there: Loaded) -> list[tuple[dict, CellResult, CellResult]]:
    """Cells measured and comparable in both runs, matched by model, backend and shape (not by config hash:
    the two runs may differ in their stopping rule, which the section says)."""
    theirs = {cell: result for cell, result in there if _comparable(result)}
    return [(cell.model_dump(), result, theirs[cell]) for cell, result in here
            if _comparable(result) and cell in theirs]


def cross_environment_section(study: StudyConfig, here: Loaded, roofline: Roofline | None,
                              figures_dir: Path, out_dir: Path) -> list[str]:
    """The section, and its figure written into `figures_dir`; nothing when the preset names no other run."""
    compare = study.study.compare_with
    if compare is None:
        return []
    there, other_roofline = load_other(compare)
    label_here, label_there = study.study.name, compare.label
    lines = [f"## Across GPUs: {label_here} against {label_there}", "",
             f"Two environments: `{label_there}` is the committed run in `{compare.inputs}` ({_gpu(there)}); "
             f"`{label_here}` is this run ({_gpu(here)}). A ratio here is the GPU's, never an optimization's. "
             "Cells are matched by model, backend and shape; only cells comparable in both runs are shown. "
             "Divided by the ratio of measured copy bandwidths, ≈1 means the cell sped up as the bandwidth grew "
             "(a memory-bound step); below 1, something else (kernel launches, the host) held it back.", ""]
    bandwidths = _bandwidth(roofline), _bandwidth(other_roofline)
    if None in bandwidths:
        lines += ["Not bandwidth-normalised: a run has no measured roofline.", ""]
    else:
        lines += [f"Measured copy bandwidth: {bandwidths[0]:,.0f} GB/s here against {bandwidths[1]:,.0f} GB/s "
                  f"there, a ratio of {bandwidths[0] / bandwidths[1]:.3g}.", ""]
    matched = paired(here, there)
    if not matched:
        return lines + ["No cell was measured and comparable in both runs.", ""]
    rows = []
    for cell, mine, theirs in matched:
        speed: Ratio = ratio(mine.headline.output_tokens_per_s, theirs.headline.output_tokens_per_s)
        normalised = None if None in bandwidths else ratio_text(_scaled(speed, bandwidths[1] / bandwidths[0]))
        rows.append({**{key: cell[key] for key in SHAPE_KEYS},
                     f"tok/s {label_there}": theirs.headline.output_tokens_per_s.value,
                     f"tok/s {label_here}": mine.headline.output_tokens_per_s.value,
                     "ratio (95% CI)": ratio_text(speed), "ratio": speed.value,
                     "low": speed.ci_low, "high": speed.ci_high,
                     "ratio ÷ bandwidth ratio (95% CI)": normalised})
    frame = pd.DataFrame(rows)
    bandwidth_ratio = None if None in bandwidths else bandwidths[0] / bandwidths[1]
    _figure(frame, label_here, label_there, bandwidth_ratio, figures_dir / FIGURE)
    shown = frame.drop(columns=["ratio", "low", "high"]).round(1)
    return lines + [markdown_table(shown), "",
                    f"![{label_here} over {label_there}]({(figures_dir / FIGURE).relative_to(out_dir).as_posix()})", ""]


def _figure(frame: pd.DataFrame, label_here: str, label_there: str, bandwidth_ratio: float | None,
            path: Path) -> None:
    """Each backend's ratio with its 95% interval against batch size, one panel per model and input length, with
    lines at 1 and at the bandwidth ratio (where a purely memory-bound cell would lie)."""
    models, inputs = sorted(frame["model"].unique()), sorted(frame["input_len"].unique())
    fig, axes = plt.subplots(len(models), len(inputs), figsize=(4 * len(inputs), 3 * len(models)),
                             squeeze=False, sharey=True)
    for row, model in enumerate(models):
        for col, length in enumerate(inputs):
            ax = axes[row][col]
            part = frame[(frame["model"] == model) & (frame["input_len"] == length)]
            for backend, group in part.groupby("backend", sort=True):
                group = group.sort_values("batch_size")
                errors = [group["ratio"] - group["low"], group["high"] - group["ratio"]]
                ax.errorbar(group["batch_size"], group["ratio"], yerr=errors, marker="o", capsize=3, label=backend)
            ax.axhline(1.0, color="grey", linewidth=0.8)
            if bandwidth_ratio is not None:
                ax.axhline(bandwidth_ratio, color="black", linestyle="--", linewidth=0.8, label="bandwidth ratio")
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(frame["batch_size"].unique()), labels=[str(b) for b in sorted(frame["batch_size"].unique())])
            ax.minorticks_off()
            ax.set_title(f"{model}, input {length}", fontsize=9)
            ax.set_xlabel("batch size")
            if col == 0:
                ax.set_ylabel(f"tok/s {label_here} ÷ {label_there}")
            if not part.empty:
                ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
