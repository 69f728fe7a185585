"""Every preset composes into params a study accepts, and plans units: a broken preset fails here, not on a GPU."""

from __future__ import annotations

import pytest

from helpers.repository import REPO_ROOT, composed

from inference_study.config import validate_params
from inference_study.plan import bench_units, scenario_units

STUDIES = sorted(path.stem for path in (REPO_ROOT / "conf" / "study").glob("*.yaml"))
GROUPS = {group.name: sorted(path.stem for path in group.glob("*.yaml"))
          for group in sorted((REPO_ROOT / "conf").iterdir()) if group.is_dir() and group.name not in ("study", "model")}


@pytest.mark.parametrize("study", STUDIES)
def test_every_study_preset_composes_and_plans_units(study: str) -> None:
    config = validate_params(composed(f"study={study}"))
    units = bench_units(config) + scenario_units(config)
    assert config.study.name == study and units
    assert len({unit.result_path(REPO_ROOT) for unit in units}) == len(units)  # one result path per unit


# A scenario preset for GPU models runs on a study that prepares those models.
PAIRED = {("scenario", "h100"): ["study=h100"], ("scenario", "h200"): ["study=h200"]}


@pytest.mark.parametrize(("group", "option"), [(g, o) for g, options in GROUPS.items() for o in options])
def test_every_group_option_composes(group: str, option: str) -> None:
    assert validate_params(composed(*PAIRED.get((group, option), []), f"{group}={option}")).sweep.models


def test_the_presets_are_found() -> None:
    assert {"h100", "h200", "scenarios_cpu"} <= set(STUDIES) and "scenario" in GROUPS
