"""The report's PNG plots, per model: deterministic (Agg backend, fixed DPI, no timestamp in the file)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from inference_study.report.table import measured, speedups

PNG_OPTIONS = {"dpi": 110, "metadata": {"Software": None}}


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


def plot_speedup_heatmap(speedup: pd.DataFrame, model: str, baseline: str | None, path: Path) -> bool:
    """Throughput speedup over the baseline per batch × input length, one panel per backend."""
    data = speedup[(speedup["model"] == model) & (speedup["backend"] != baseline)]
    if baseline is None or data.empty:
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
        ax.set(title=f"{model} · {backend} vs {baseline}", xlabel="input length", ylabel="batch size")
        fig.colorbar(image, ax=ax, shrink=0.8)
    _save(fig, path)
    return True


def write_figures(frame: pd.DataFrame, baseline: str | None, figures_dir: Path) -> list[Path]:
    """All PNGs of the report, per model; returns their paths in a stable order."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    for stale in figures_dir.glob("*.png"):
        stale.unlink()
    ok, speedup = measured(frame), speedups(frame, baseline)
    plots = {
        "latency_vs_input": lambda model, path: plot_latency_vs_input(ok, model, path),
        "throughput_vs_batch": lambda model, path: plot_against_batch(ok, model, "output_tokens_per_s",
                                                                      "output tokens/s", path),
        "speedup_heatmap": lambda model, path: plot_speedup_heatmap(speedup, model, baseline, path),
        "mbu_vs_batch": lambda model, path: plot_against_batch(ok, model, "mbu_pct", "decode MBU (% of measured)",
                                                               path),
    }
    written = []
    for model in sorted(ok["model"].unique()):
        for name, plot in plots.items():
            path = figures_dir / f"{name}_{model}.png"
            if plot(model, path) is not False:
                written.append(path)
    return written
