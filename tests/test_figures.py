"""The report's figures, drawn from small hand-built frames and inspected before saving: ladder order, shared
and logarithmic axes, interval bars, the speedup heatmap's one scale centred at 1×, the Pareto points, and
the reason given for every figure not drawn.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer

from inference_study.report import figures

LADDER = ["hf_eager", "hf_static", "hf_compiled_loop"]
TPS, LOW, HIGH = figures.THROUGHPUT, "output_tokens_per_s_ci_low", "output_tokens_per_s_ci_high"


def cells(backends: list[str] = LADDER, batches: tuple[int, ...] = (1, 4, 16),
          lengths: tuple[int, ...] = (32, 128), growth: float = 1.0, model: str = "m") -> pd.DataFrame:
    """Measured cells whose throughput grows as batch**growth, a 20% interval on each but the first (none)."""
    rows = []
    for rank, backend in enumerate(backends):
        for batch in batches:
            for length in lengths:
                tps = 100.0 * (1 + rank) * batch**growth * (32 / length) ** 0.2
                rows.append({"model": model, "backend": backend, "batch_size": batch, "input_len": length,
                             "output_len": 16, "status": "ok", "verdict": "pass", TPS: tps, LOW: 0.9 * tps,
                             HIGH: 1.1 * tps, "e2e_p50_ms": 16_000.0 * batch / tps, "mbu_pct": 2.0 + rank,
                             "joules_per_output_token": 0.5 / (1 + rank)})
    frame = pd.DataFrame(rows)
    frame.loc[0, [LOW, HIGH]] = np.nan
    return frame


def line_of(frame: pd.DataFrame, backend: str, length: int) -> pd.DataFrame:
    """One backend's cells at one input length in batch order: one line of a panel."""
    return frame[(frame["backend"] == backend) & (frame["input_len"] == length)].sort_values("batch_size")


def speedups(frame: pd.DataFrame, baseline: str = "hf_eager") -> pd.DataFrame:
    """Each cell's tok/s over the baseline's, with a ±5% interval; the second row's interval spans 1×, the
    third has none."""
    keys = ["model", "batch_size", "input_len", "output_len"]
    base = frame[frame["backend"] == baseline].set_index(keys)[TPS].rename("base")
    out = frame.join(base, on=keys)
    out = out[out["backend"] != baseline].reset_index(drop=True)
    out["speedup"] = out[TPS] / out["base"]
    out.loc[1, "speedup"] = 1.02
    out["speedup_ci_low"], out["speedup_ci_high"] = 0.95 * out["speedup"], 1.05 * out["speedup"]
    out.loc[2, ["speedup_ci_low", "speedup_ci_high"]] = np.nan
    out["distinguishable"] = (out["speedup_ci_low"] > 1) | (out["speedup_ci_high"] < 1)
    return out[[*keys, "backend", "speedup", "speedup_ci_low", "speedup_ci_high", "distinguishable"]]


def panel_axes(fig: plt.Figure) -> list[plt.Axes]:
    """The figure's data panels (not its colour bar), left to right."""
    return [ax for ax in fig.axes if ax.get_title()]


def bars(ax: plt.Axes) -> dict[str, ErrorbarContainer]:
    return {container.get_label(): container for container in ax.containers}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_ladder_orders_panels_and_legend_with_unknown_backends_last_alphabetically() -> None:
    frame = cells(["zeta", "hf_compiled_loop", "alpha", "hf_eager"])
    expected = ["hf_eager", "hf_compiled_loop", "alpha", "zeta"]
    assert figures.ladder_order(frame["backend"], LADDER) == expected
    latency = figures.latency_figure(frame, "m", LADDER)
    assert [ax.get_title() for ax in panel_axes(latency)] == [f"m · {backend}" for backend in expected]
    throughput = figures.throughput_figure(frame, "m", LADDER)
    (legend,) = throughput.legends
    assert [text.get_text() for text in legend.get_texts()] == expected


def test_a_backend_keeps_its_colour_in_every_panel() -> None:
    """The input-128 panel has a backend the other lacks; the shared backends must not change colour."""
    frame = cells(["hf_eager", "hf_compiled_loop"])
    frame = frame[(frame["backend"] == "hf_eager") | (frame["input_len"] == 128)]
    fig = figures.throughput_figure(frame, "m", LADDER)
    panels = [{label: bar.lines[0].get_color() for label, bar in bars(ax).items()} for ax in panel_axes(fig)]
    assert set(panels[0]) == {"hf_eager"} and set(panels[1]) == {"hf_eager", "hf_compiled_loop"}
    assert panels[0]["hf_eager"] == panels[1]["hf_eager"] != panels[1]["hf_compiled_loop"]


@pytest.mark.parametrize(("growth", "scale"), [(1.0, "log"), (0.2, "linear")])
def test_log_scale_only_where_a_plotted_column_spans_over_ten_times(growth: float, scale: str) -> None:
    """Total tok/s spans over 10× with growth 1 and under with 0.2; tok/s per user the other way round."""
    frame = cells(growth=growth)
    per_user = frame[TPS] / frame["batch_size"]
    assert (frame[TPS].max() / frame[TPS].min() > 10) == (scale == "log")
    assert (per_user.max() / per_user.min() > 10) == (scale == "linear")
    throughput = panel_axes(figures.throughput_figure(frame, "m", LADDER))
    pareto = panel_axes(figures.pareto_figure(frame, "m", LADDER))
    assert len(throughput) == len(pareto) == 2
    assert {ax.get_yscale() for ax in throughput} == {ax.get_xscale() for ax in pareto} == {scale}
    assert {ax.get_yscale() for ax in pareto} == {"log", "linear"} - {scale}


def test_panels_share_one_y_axis() -> None:
    for draw in (figures.throughput_figure, figures.latency_figure, figures.pareto_figure):
        first, *others = panel_axes(draw(cells(), "m", LADDER))
        assert others and all(first.get_shared_y_axes().joined(first, ax) for ax in others)
        assert {ax.get_ylim() for ax in others} == {first.get_ylim()}


def test_intervals_are_error_bars_and_a_cell_without_one_is_a_bare_point() -> None:
    frame = cells()
    fig = figures.throughput_figure(frame, "m", LADDER)
    drawn = 0
    for ax, length in zip(panel_axes(fig), (32, 128)):
        for backend, bar in bars(ax).items():
            line = line_of(frame, backend, length)
            assert bar.has_yerr
            assert bar.lines[0].get_xydata().tolist() == line[["batch_size", TPS]].to_numpy().tolist()
            ends = line[["batch_size", LOW, HIGH]].to_numpy()
            segments = bar.lines[2][0].get_segments()
            assert len(segments) == len(ends)
            for segment, (batch, low, high) in zip(segments, ends):
                if np.isnan(low):
                    assert len(segment) == 0, "no interval: the point stands without a bar"
                else:
                    np.testing.assert_allclose(segment, [[batch, low], [batch, high]])
                    drawn += 1
    assert drawn == frame[LOW].notna().sum() == len(frame) - 1


def test_pareto_points_are_the_frames_numbers() -> None:
    frame = cells()
    fig = figures.pareto_figure(frame, "m", LADDER)
    checked = 0
    for ax, length in zip(panel_axes(fig), (32, 128)):
        assert ax.get_title() == f"m · input {length}"
        labels = {(text.xy, text.get_text()) for text in ax.texts}
        for backend, bar in bars(ax).items():
            line = line_of(frame, backend, length)
            points = np.column_stack([line[TPS], line[TPS] / line["batch_size"]])
            np.testing.assert_allclose(bar.lines[0].get_xydata(), points)
            assert bar.has_xerr and bar.has_yerr
            assert labels >= {((x, y), f"b{batch}") for (x, y), batch in zip(points, line["batch_size"])}
            checked += len(line)
    assert checked == len(frame)


def test_heatmap_uses_one_scale_centred_at_one_and_marks_cells_whose_interval_spans_one() -> None:
    frame = cells()
    table = speedups(frame)
    fig = figures.speedup_figure(table, "m", "hf_eager", LADDER)
    axes = panel_axes(fig)
    assert [ax.get_title() for ax in axes] == ["m · hf_static", "m · hf_compiled_loop"]
    images = [image for ax in axes for image in ax.images]
    assert len(images) == len(axes) and len({id(image.norm) for image in images}) == 1
    norm = images[0].norm
    assert norm(1.0) == pytest.approx(0.5) and norm(2.0) + norm(0.5) == pytest.approx(1.0)
    assert norm.vmin <= table["speedup"].min() and table["speedup"].max() <= norm.vmax
    assert len(fig.axes) == len(axes) + 1, "one colour bar for all panels"
    similar = [text for ax in axes for text in ax.texts if text.get_text().startswith("≈1")]
    assert [text.get_text() for text in similar] == ["≈1"], "no number where the interval spans 1"
    marked = table[table["speedup_ci_low"].notna() & ~table["distinguishable"]]
    assert len(marked) == 1 and marked.iloc[0]["speedup"] == 1.02
    italic = [text.get_text() for ax in axes for text in ax.texts if text.get_style() == "italic"]
    assert italic == [f"{table.loc[2, 'speedup']:.2f}×"], "the cell without an interval"


def test_every_figure_not_drawn_comes_back_with_its_reason(tmp_path: Path) -> None:
    frame = pd.concat([cells(), cells(model="unmeasured").assign(status="oom")])
    frame = frame.drop(columns="mbu_pct").assign(joules_per_output_token=np.nan)
    written, skipped = figures.write_figures(frame, speedups(cells()), None, LADDER, tmp_path / "figures")
    drawn = ["latency_vs_input_m", "throughput_vs_batch_m", "pareto_m"]
    assert [path.stem for path in written] == drawn and all(path.stat().st_size > 0 for path in written)
    assert sorted(path.stem for path in (tmp_path / "figures").glob("*.png")) == sorted(drawn)
    assert skipped["speedup_heatmap_m"] == figures.NO_BASELINE
    assert skipped["mbu_vs_batch_m"] == figures.MBU_REASONS[0]
    assert skipped["energy_vs_batch_m"] == figures.ENERGY_REASONS[1]
    unmeasured = {name for name, reason in skipped.items() if reason == figures.NOT_MEASURED}
    assert len(unmeasured) == 6 and all(name.endswith("_unmeasured") for name in unmeasured)
    lines = figures.plots_section(written, skipped, tmp_path)
    assert "![pareto_m](figures/pareto_m.png)" in lines
    assert f"- `mbu_vs_batch_m`: {figures.MBU_REASONS[0]}" in lines


def test_null_mbu_and_absent_energy_say_why(tmp_path: Path) -> None:
    frame = cells().assign(mbu_pct=np.nan).drop(columns="joules_per_output_token")
    _, skipped = figures.write_figures(frame, speedups(cells()), "hf_eager", LADDER, tmp_path)
    assert skipped == {"mbu_vs_batch_m": figures.MBU_REASONS[1],
                       "energy_vs_batch_m": figures.ENERGY_REASONS[0]}
    no_pair = figures.speedup_figure(speedups(cells()).iloc[0:0], "m", "hf_eager", LADDER)
    assert isinstance(no_pair, str) and "`hf_eager`" in no_pair


def test_figures_are_byte_identical_across_runs(tmp_path: Path) -> None:
    first, _ = figures.write_figures(cells(), speedups(cells()), "hf_eager", LADDER, tmp_path / "a")
    second, _ = figures.write_figures(cells(), speedups(cells()), "hf_eager", LADDER, tmp_path / "b")
    assert len(first) == 6
    assert [path.read_bytes() for path in first] == [path.read_bytes() for path in second]
