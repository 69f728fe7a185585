"""`inference-study cells` states from result files: done, oom, failed, missing, invalid (stale comes from DVC)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.repository import cells
import yaml

from helpers.factories import make_result
from helpers.repository import REPO_ROOT
from inference_study.cell_status import cell_statuses
from inference_study.compose import compose_yaml
from inference_study.config import StudyConfig, validate_params
from inference_study.plan import bench_units
from inference_study.results import write_result

REPO = REPO_ROOT


@pytest.fixture
def study() -> StudyConfig:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        return validate_params(yaml.safe_load(compose_yaml([])))


def test_each_result_file_gives_its_state(study: StudyConfig, tmp_path: Path) -> None:
    done, oom, failed, corrupt, missing, stale = cells(study)[:6]
    hashes = {unit.cell: unit.config_hash for unit in bench_units(study)}  # measured under these settings
    for cell, status in ((done, "ok"), (oom, "oom"), (failed, "failed"), (stale, "ok")):
        write_result(cell.result_path(tmp_path), make_result(cell, status=status, config_hash=hashes[cell]))
    corrupt.result_path(tmp_path).parent.mkdir(parents=True, exist_ok=True)
    corrupt.result_path(tmp_path).write_text('{"schema_version": 2, "status": "ok"')
    changes = {stale.result_path(tmp_path).resolve(): "bench@x: changed params: bench"}

    states = {s.cell: (s.state, s.detail) for s in cell_statuses(study, tmp_path, changes)}

    assert states[done][0] == "done" and states[done][1].startswith("verdict ")
    assert states[oom][0] == "oom"
    assert states[failed][0] == "failed"
    assert states[corrupt][0] == "invalid" and str(corrupt.result_path(tmp_path)) in states[corrupt][1]
    assert states[missing][0] == "missing"
    assert states[stale] == ("stale", "bench@x: changed params: bench")
    assert len(states) == len(cells(study))
