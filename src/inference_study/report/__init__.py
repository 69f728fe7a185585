"""The report stage: the cells named by params.yaml → tidy CSV, metrics JSON, PNG plots, Markdown.

Output is deterministic: Agg backend, fixed DPI, no timestamps, fixed precision. What the report compares
is declared by the study preset (`study.comparisons`); the modules here only compute and render it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from inference_study.config import StudyConfig
from inference_study.report import sections
from inference_study.report.comparisons import comparison_sections
from inference_study.report.figures import write_figures
from inference_study.report.inputs import INPUTS, ROOFLINE_NAME, keep_inputs, load_roofline
from inference_study.report.scenarios import keep_scenario_inputs, load_scenarios, scenario_sections
from inference_study.report.table import Loaded, load_cells, results_table, summary
from inference_study.report.targets import targets_section
from inference_study.results import write_json_atomic
from inference_study.roofline import Roofline

FLOAT_FORMAT = "%.6g"

__all__ = ["INPUTS", "ROOFLINE_NAME", "build_report", "render_markdown"]


def render_markdown(study: StudyConfig, frame: pd.DataFrame, loaded: Loaded, roofline: Roofline | None,
                    figures: list[Path], out_dir: Path, scenarios: list[str]) -> str:
    """The human-readable report; every number in it comes from the result files."""
    baseline = study.study.comparisons.baseline
    lines = sections.header(study, frame) + sections.results(frame) + sections.null_reasons(loaded)
    lines += sections.repeatability(frame) + sections.verdicts(frame) + sections.equivalence(frame, baseline)
    lines += sections.problems(frame, baseline) + sections.other_settings(study, loaded)
    lines += sections.speedup(study, frame, baseline)
    lines += comparison_sections(study, frame) + scenarios + targets_section(study, frame)
    lines += sections.setup(frame) + sections.plots(figures, out_dir) + sections.roofline(roofline)
    return "\n".join(lines + sections.environment(loaded) + sections.configuration(study, loaded))


def build_report(study: StudyConfig, results_dir: Path, out_dir: Path, roofline_path: Path) -> dict[str, float]:
    """Write results.csv, summary.json, figures/*.png, report.md and the inputs into `out_dir`."""
    baseline = study.study.comparisons.baseline
    loaded = load_cells(study, results_dir)
    loaded_scenarios = load_scenarios(study, results_dir)
    roofline = load_roofline(roofline_path)
    frame = results_table(loaded, roofline, baseline)
    out_dir.mkdir(parents=True, exist_ok=True)
    if results_dir.resolve() != (out_dir / INPUTS).resolve():
        keep_inputs(study, loaded, lambda inputs: keep_scenario_inputs(loaded_scenarios, inputs), roofline_path,
                    out_dir)
    frame.to_csv(out_dir / "results.csv", index=False, float_format=FLOAT_FORMAT)
    headline = summary(frame, baseline)
    write_json_atomic(out_dir / "summary.json", headline)
    figures = write_figures(frame, baseline, out_dir / "figures")
    (out_dir / "report.md").write_text(render_markdown(study, frame, loaded, roofline, figures, out_dir,
                                                        scenario_sections(study, loaded_scenarios)))
    return headline
