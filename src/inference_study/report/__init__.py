"""The report stage: the cells named by params.yaml → tidy CSV, metrics JSON, PNG plots, Markdown.

Output is deterministic: Agg backend, fixed DPI, no timestamps, fixed precision. What the report compares
is declared by the study preset (`study.comparisons`); the modules here only compute and render it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from inference_study.config import StudyConfig
from inference_study.report import headline, sections
from inference_study.report.comparisons import comparison_sections
from inference_study.report.cross_environment import cross_environment_section
from inference_study.report.figures import plots_section, write_figures
from inference_study.report.inputs import INPUTS, ROOFLINE_NAME, keep_inputs, load_roofline
from inference_study.report.scenarios import keep_scenario_inputs, load_scenarios, scenario_sections
from inference_study.report.table import (
    Loaded,
    baseline_pairs,
    load_cells,
    results_table,
    speedup_table,
    summary,
)
from inference_study.report.targets import targets_section
from inference_study.results import write_json_atomic
from inference_study.roofline import Roofline

FLOAT_FORMAT = "%.6g"

__all__ = ["INPUTS", "ROOFLINE_NAME", "build_report", "render_markdown"]


def render_markdown(study: StudyConfig, frame: pd.DataFrame, loaded: Loaded, pairs: pd.DataFrame,
                    roofline: Roofline | None, figures: tuple[list[Path], dict[str, str]],
                    headline_figures: dict[str, Path], out_dir: Path, scenarios: list[str],
                    across_gpus: list[str]) -> str:
    """The human-readable report; every number in it comes from the result files. It leads with what each
    optimization buys and how many cells can be trusted, then the full tables."""
    baseline, ladder = study.study.comparisons.baseline, study.sweep.backends
    lines = sections.header(study, frame) + headline.section(study, pairs, ladder, headline_figures, out_dir)
    lines += headline.validity_summary(frame, loaded, pairs, baseline)
    lines += sections.results(frame) + sections.null_reasons(loaded)
    lines += sections.repeatability(frame) + sections.verdicts(frame) + sections.equivalence(frame, baseline)
    lines += sections.problems(frame, pairs, baseline) + sections.other_settings(study, loaded)
    lines += sections.speedup(study, pairs, baseline, ladder)
    lines += comparison_sections(study, frame, loaded) + across_gpus + scenarios + targets_section(study, frame)
    lines += sections.setup(frame) + plots_section(*figures, out_dir) + sections.roofline(roofline)
    return "\n".join(lines + sections.environment(loaded) + sections.configuration(study, loaded))


def build_report(study: StudyConfig, results_dir: Path, out_dir: Path, roofline_path: Path) -> dict[str, float]:
    """Write results.csv, summary.json, figures/*.png, report.md and the inputs into `out_dir`."""
    baseline, ladder = study.study.comparisons.baseline, study.sweep.backends
    loaded = load_cells(study, results_dir)
    loaded_scenarios = load_scenarios(study, results_dir)
    roofline = load_roofline(roofline_path)
    frame = results_table(loaded, roofline, baseline)
    pairs = baseline_pairs(loaded, baseline)
    out_dir.mkdir(parents=True, exist_ok=True)
    if results_dir.resolve() != (out_dir / INPUTS).resolve():
        keep_inputs(study, loaded, lambda inputs: keep_scenario_inputs(loaded_scenarios, results_dir, inputs),
                    roofline_path, results_dir, out_dir)
    frame.to_csv(out_dir / "results.csv", index=False, float_format=FLOAT_FORMAT)
    metrics = summary(frame, pairs, baseline)
    write_json_atomic(out_dir / "summary.json", metrics)
    figures = write_figures(frame, speedup_table(pairs), baseline, ladder, out_dir / "figures")
    headline_figures = headline.write_figures(pairs, baseline, ladder, out_dir / "figures")  # after: that one clears
    across_gpus = cross_environment_section(study, loaded, roofline, out_dir / "figures", out_dir)
    (out_dir / "report.md").write_text(render_markdown(study, frame, loaded, pairs, roofline, figures,
                                                        headline_figures, out_dir,
                                                        scenario_sections(study, loaded_scenarios), across_gpus))
    return metrics
