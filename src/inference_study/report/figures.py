"""The report's PNG plots, per model, and the Markdown section that shows them.

Every figure shares its y axis across panels, orders backends as the study's ladder does, draws the 95%
intervals the results carry and turns logarithmic where a plotted column spans more than 10×, so panels
can be read against each other. A figure that cannot be drawn comes back with its reason instead of
vanishing. Output is deterministic: Agg backend, fixed DPI, no timestamp in the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import Colormap, LogNorm
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter

from inference_study.report.table import measured

PNG_OPTIONS = {"dpi": 110, "metadata": {"Software": None}}
LOG_SPAN = 10.0
SPEEDUP_REACH = 2.0  # the heatmap's scale spans at least 1/2×…2×, so a 5% change stays pale
THROUGHPUT = "output_tokens_per_s_median"
SPEEDUP_COLUMNS = ["backend", "batch_size", "input_len", "output_len", "speedup", "speedup_ci_low",
                   "speedup_ci_high", "distinguishable"]
NOT_MEASURED = "no cell of this model was measured (status ok, not failed by a validity check)"
NO_BASELINE = "no baseline is declared (`study.comparisons.baseline`), so there is no speedup"
MBU_REASONS = ("no roofline: MBU needs the roofline stage's measured bandwidth",
               "no roofline on this device: MBU needs a measured bandwidth")
ENERGY_REASONS = ("the results predate the energy counter: no `joules_per_output_token` column",
                  "no NVML energy counter: joules per token are null on CPU (and on a GPU without one)")
HEATMAP_NOTE = ("grey, hatched ≈1: the 95% interval spans 1×, no measurable difference; "
                "italic: no interval; —: no pair measured at that shape")

Drawn = plt.Figure | str  # a figure, or the reason it is not drawn


def ladder_order(backends: pd.Series | list[str], ladder: list[str]) -> list[str]:
    """The study's backend order; backends it does not name go last, alphabetically."""
    present = set(backends)
    return [backend for backend in ladder if backend in present] + sorted(present - set(ladder))


def spans_decade(values: pd.Series) -> bool:
    """True when the finite values are positive and span over 10×: linear would flatten the small ones."""
    finite = values[np.isfinite(values)]
    return finite.size > 0 and finite.min() > 0 and finite.max() > LOG_SPAN * finite.min()


def _ordered(values: pd.Series, ladder: list[str]) -> list:
    """Backends in ladder order, anything else (batch sizes, lengths) ascending."""
    return ladder_order(values, ladder) if values.name == "backend" else sorted(values.unique())


def _name(column: str, value: object) -> str:
    return {"backend": str(value), "batch_size": f"batch {value}", "input_len": f"input {value}"}[column]


def _colours(values: pd.Series, ladder: list[str]) -> dict:
    """One colour per value for every panel of a figure: a panel missing a line must not shift the others'."""
    return {value: f"C{index}" for index, value in enumerate(_ordered(values, ladder))}


def _grid(data: pd.DataFrame, model: str, panel_by: str, ladder: list[str],
          share_x: bool = False) -> tuple[plt.Figure, list[tuple[plt.Axes, pd.DataFrame]]]:
    """A panel per value of `panel_by` (columns) and per output length (rows), all on one y axis."""
    columns = _ordered(data[panel_by], ladder)
    outputs = sorted(data["output_len"].unique())
    size = (4.2 * len(columns) + 1.8, 3.6 * len(outputs))
    fig, axes = plt.subplots(len(outputs), len(columns), figsize=size, squeeze=False, sharey=True,
                             sharex=share_x, layout="constrained")
    panels = []
    for row, output in zip(axes, outputs):
        for ax, value in zip(row, columns):
            suffix = f" · output {output}" if len(outputs) > 1 else ""
            ax.set_title(f"{model} · {_name(panel_by, value)}{suffix}")
            panels.append((ax, data[(data[panel_by] == value) & (data["output_len"] == output)]))
    return fig, panels


def _errors(cells: pd.DataFrame, column: str) -> np.ndarray | None:
    """Distances from each median to its 95% interval's ends; NaN (no bar) where a cell has no interval."""
    base = column.removesuffix("_median")
    if base == column or f"{base}_ci_low" not in cells:
        return None
    value = cells[column].to_numpy(float)
    low, high = cells[f"{base}_ci_low"].to_numpy(float), cells[f"{base}_ci_high"].to_numpy(float)
    return np.clip(np.vstack([value - low, high - value]), 0, None)


def _log2_axis(ax: plt.Axes, values: pd.Series) -> None:
    """Batch sizes and lengths grow in powers of two: spaced evenly, a tick at each measured value."""
    ticks = sorted(values.unique())
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()


def _value_scale(panels: list[tuple[plt.Axes, pd.DataFrame]], axis: str, values: pd.Series) -> None:
    """Log for every panel of the figure, or for none, so shared axes read alike."""
    if spans_decade(values):
        for ax, _ in panels:
            ax.set(**{f"{axis}scale": "log"})


def _legend(fig: plt.Figure, panels: list[tuple[plt.Axes, pd.DataFrame]], order: list[str]) -> None:
    """One legend for the figure in ladder order, whichever panels hold which lines."""
    entries = {}
    for ax, _ in panels:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    labels = [label for label in order if label in entries]
    fig.legend([entries[label] for label in labels], labels, loc="outside right upper", fontsize="small")


def _ylabel(panels: list[tuple[plt.Axes, pd.DataFrame]], label: str) -> None:
    """The y label on the left column only: the panels share the axis."""
    for ax, _ in panels:
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel(label)


def _missing(data: pd.DataFrame, column: str, reasons: tuple[str, str] | None) -> str | None:
    """Why `column` cannot be plotted (absent, or null in every cell), or None when it can."""
    absent, null = reasons or (f"the results have no `{column}` column", f"no measured cell has `{column}`")
    if column not in data:
        return absent
    return null if data[column].isna().all() else None


def line_figure(ok: pd.DataFrame, model: str, ladder: list[str], *, panel_by: str, line_by: str, x: str,
                y: str, xlabel: str, ylabel: str, reasons: tuple[str, str] | None = None) -> Drawn:
    """`y` against `x` (a log2 axis), a line per `line_by` value, a panel per `panel_by` value, with bars for
    the 95% intervals where `y` is a median that has them."""
    data = ok[ok["model"] == model]
    reason = _missing(data, y, reasons)
    if reason is not None:
        return reason
    data = data[data[y].notna()]
    colours = _colours(data[line_by], ladder)
    fig, panels = _grid(data, model, panel_by, ladder)
    for ax, cells in panels:
        for value in _ordered(cells[line_by], ladder):
            line = cells[cells[line_by] == value].sort_values(x)
            ax.errorbar(line[x], line[y], yerr=_errors(line, y), marker="o", capsize=3, color=colours[value],
                        label=_name(line_by, value))
        ax.set_xlabel(xlabel)
        _log2_axis(ax, data[x])
    _ylabel(panels, ylabel)
    _value_scale(panels, "y", data[y])
    _legend(fig, panels, [_name(line_by, value) for value in colours])
    return fig


def latency_figure(ok: pd.DataFrame, model: str, ladder: list[str]) -> Drawn:
    """E2E P50 latency against input length, a line per batch size, a panel per backend (E2E has no CI)."""
    return line_figure(ok, model, ladder, panel_by="backend", line_by="batch_size", x="input_len",
                       y="e2e_p50_ms", xlabel="input length (tokens)", ylabel="E2E latency P50 (ms)")


def batch_figure(column: str, ylabel: str, reasons: tuple[str, str] | None = None) -> Callable[..., Drawn]:
    """A figure of `column` against batch size, a line per backend, a panel per input length."""
    def draw(ok: pd.DataFrame, model: str, ladder: list[str]) -> Drawn:
        return line_figure(ok, model, ladder, panel_by="input_len", line_by="backend", x="batch_size",
                           y=column, xlabel="batch size", ylabel=ylabel, reasons=reasons)
    return draw


throughput_figure = batch_figure(THROUGHPUT, "output tokens/s (median, 95% interval)")
mbu_figure = batch_figure("mbu_pct", "decode MBU (% of measured)", MBU_REASONS)
energy_figure = batch_figure("joules_per_output_token", "joules per output token", ENERGY_REASONS)


def pareto_figure(ok: pd.DataFrame, model: str, ladder: list[str]) -> Drawn:
    """Output tok/s per user against tok/s in total, a line per backend through its batch sizes (labelled),
    a panel per input length: what each rung's batching costs one user for what it gives the batch."""
    data = ok[ok["model"] == model]
    reason = _missing(data, THROUGHPUT, None)
    if reason is not None:
        return reason
    data = data[data[THROUGHPUT].notna()]
    colours = _colours(data["backend"], ladder)
    fig, panels = _grid(data, model, "input_len", ladder, share_x=True)
    for ax, cells in panels:
        for backend in ladder_order(cells["backend"], ladder):
            line = cells[cells["backend"] == backend].sort_values("batch_size")
            batch, total = line["batch_size"].to_numpy(), line[THROUGHPUT].to_numpy(float)
            errors = _errors(line, THROUGHPUT)
            ax.errorbar(total, total / batch, xerr=errors, yerr=None if errors is None else errors / batch,
                        marker="o", capsize=3, color=colours[backend], label=backend)
            for size, x, y in zip(batch, total, total / batch):
                ax.annotate(f"b{size}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize="x-small")
        ax.set_xlabel("output tokens/s in total")
    _ylabel(panels, "output tokens/s per user")
    _value_scale(panels, "x", data[THROUGHPUT])
    _value_scale(panels, "y", data[THROUGHPUT] / data["batch_size"])
    _legend(fig, panels, list(colours))
    return fig


def speedup_norm(speedup: pd.Series) -> LogNorm:
    """A log scale symmetric about 1× (1/2× and 2× equally far from neutral), one for all of a figure."""
    reach = max(SPEEDUP_REACH, float(np.exp(np.abs(np.log(speedup)).max())))
    return LogNorm(vmin=1 / reach, vmax=reach)


def _label_cell(ax: plt.Axes, cell: pd.Series, y: int, x: int, cmap: Colormap, norm: LogNorm) -> None:
    """The speedup in its cell: greyed and marked ≈1 where its interval spans 1×, italic where it has none."""
    has_interval = bool(np.isfinite([cell["speedup_ci_low"], cell["speedup_ci_high"]]).all())
    similar = has_interval and not cell["distinguishable"]
    if similar:
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor="0.85", edgecolor="0.6", hatch="//"))
    dark = not similar and sum(cmap(norm(cell["speedup"]))[:3]) < 1.5
    ax.text(x, y, "≈1" if similar else f"{cell['speedup']:.2f}×", ha="center",
            va="center", fontsize="small", color="white" if dark else "black",
            style="normal" if has_interval else "italic")


def speedup_figure(speedup: pd.DataFrame, model: str, baseline: str | None, ladder: list[str]) -> Drawn:
    """Output tok/s over the baseline per batch × input length, a panel per backend, one diverging scale."""
    if baseline is None:
        return NO_BASELINE
    data = speedup[(speedup["model"] == model) & (speedup["backend"] != baseline)]
    data = data.reindex(columns=SPEEDUP_COLUMNS)  # a frame without intervals draws no ≈1 marks
    data = data[data["speedup"].notna()]
    if data.empty:
        return f"no cell of another backend pairs with a `{baseline}` cell (the speedup section says why)"
    norm, cmap = speedup_norm(data["speedup"]), plt.get_cmap("RdBu")
    batches, lengths = sorted(data["batch_size"].unique()), sorted(data["input_len"].unique())
    fig, panels = _grid(data, model, "backend", ladder)
    for ax, cells in panels:
        grid = np.full((len(batches), len(lengths)), np.nan)
        for _, cell in cells.iterrows():
            y, x = batches.index(cell["batch_size"]), lengths.index(cell["input_len"])
            grid[y, x] = cell["speedup"]
            _label_cell(ax, cell, y, x, cmap, norm)
        for y, x in np.argwhere(np.isnan(grid)):
            ax.text(x, y, "—", ha="center", va="center", color="0.5")
        image = ax.imshow(grid, cmap=cmap, norm=norm, aspect="auto")
        ax.set_xticks(range(len(lengths)), [str(length) for length in lengths])
        ax.set_yticks(range(len(batches)), [str(batch) for batch in batches])
        ax.set_xlabel("input length")
    reach = int(np.floor(np.log2(norm.vmax)))
    colorbar = fig.colorbar(image, ax=[ax for ax, _ in panels], shrink=0.85,
                            label=f"output tok/s over {baseline} (log scale)",
                            ticks=2.0 ** np.arange(-reach, reach + 1),
                            format=FuncFormatter(lambda value, _: f"{value:g}×"))
    colorbar.minorticks_off()
    _ylabel(panels, "batch size")
    fig.supxlabel(HEATMAP_NOTE, fontsize="small")
    return fig


def _save(fig: plt.Figure, path: Path) -> None:
    fig.savefig(path, **PNG_OPTIONS)
    plt.close(fig)


def write_figures(frame: pd.DataFrame, speedup: pd.DataFrame, baseline: str | None, ladder: list[str],
                  figures_dir: Path) -> tuple[list[Path], dict[str, str]]:
    """Every PNG of the report, per model, in a stable order, and each figure not drawn with its reason."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    for stale in figures_dir.glob("*.png"):
        stale.unlink()
    ok = measured(frame)
    builders: dict[str, Callable[[str], Drawn]] = {
        "latency_vs_input": lambda model: latency_figure(ok, model, ladder),
        "throughput_vs_batch": lambda model: throughput_figure(ok, model, ladder),
        "pareto": lambda model: pareto_figure(ok, model, ladder),
        "speedup_heatmap": lambda model: speedup_figure(speedup, model, baseline, ladder),
        "mbu_vs_batch": lambda model: mbu_figure(ok, model, ladder),
        "energy_vs_batch": lambda model: energy_figure(ok, model, ladder),
    }
    written, skipped = [], {}
    for model in sorted(frame["model"].unique()):
        for name, build in builders.items():
            drawn = build(model) if model in set(ok["model"]) else NOT_MEASURED
            if isinstance(drawn, str):
                skipped[f"{name}_{model}"] = drawn
                continue
            path = figures_dir / f"{name}_{model}.png"
            _save(drawn, path)
            written.append(path)
    return written, skipped


def plots_section(figures: list[Path], skipped: dict[str, str], out_dir: Path) -> list[str]:
    """The report's plots, then every figure not drawn with its reason, so none is left out silently."""
    lines = ["## Plots", ""] + [f"![{p.stem}]({p.relative_to(out_dir).as_posix()})" for p in figures] + [""]
    if skipped:
        lines += ["Not drawn:", ""] + [f"- `{name}`: {reason}" for name, reason in skipped.items()] + [""]
    return lines
