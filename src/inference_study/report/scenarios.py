"""A report section per scenario run: the original benchmark's expected outcome, whether this run met it,
and the scenario's own tables (its registered report function).

The scenario results read are the units the plan lists (never a directory glob), like the cells.
"""

from __future__ import annotations

import json
from pathlib import Path

from inference_study import registry
from inference_study.config import StudyConfig, scenario_result_path
from inference_study.plan import scenario_units
from inference_study.report.inputs import copy_raw
from inference_study.results import ScenarioResult, read_scenario_result

Loaded = list[tuple[str, str, ScenarioResult | None]]


def load_scenarios(study: StudyConfig, results_dir: Path) -> Loaded:
    """(scenario, model, result or None when it has not run) for every planned scenario run."""
    loaded = []
    for unit in scenario_units(study):
        path = unit.result_path(results_dir)
        loaded.append((unit.scenario, unit.model_name, read_scenario_result(path) if path.exists() else None))
    return loaded


def keep_scenario_inputs(loaded: Loaded, results_dir: Path, inputs_dir: Path) -> None:
    for scenario, model, result in loaded:
        if result is not None:
            copy_raw(scenario_result_path(results_dir, scenario, model), scenario_result_path(inputs_dir, scenario, model))


def scenario_sections(study: StudyConfig, loaded: Loaded) -> list[str]:
    """One section per configured scenario; nothing when no scenario is configured."""
    lines: list[str] = []
    for scenario in dict.fromkeys(name for name, _, _ in loaded):
        entries = [(model, result) for name, model, result in loaded if name == scenario]
        measured = [result for _, result in entries if result is not None and result.status == "ok"]
        settings = getattr(study.scenarios, scenario).model_dump()
        spec = registry.scenarios()[scenario]
        lines += [f"## Scenario: {spec.title}", "", f"Settings: `{json.dumps(settings)}`", ""]
        if measured:
            lines += [f"Expected (original benchmark): {measured[0].record.expectation.expected}", ""]
        for model, result in entries:
            if result is None:
                lines.append(f"- `{model}`: not run (no result file)")
            elif result.status != "ok":
                lines.append(f"- `{model}`: {result.status}: {result.error}")
            else:
                outcome = result.record.expectation
                lines.append(
                    f"- `{model}` on {result.device}: **{'met' if outcome.met else 'not met'}**; "
                    f"{outcome.observed}"
                )
        lines.append("")
        if measured:
            lines += registry.load(spec.report)(measured)
    return lines
