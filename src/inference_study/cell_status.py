"""Where each cell of the current params stands: done, stale, missing, oom, failed or invalid.

"Stale" is DVC's own verdict (`dvc status`: a dependency, parameter or output of the cell's stage
changed since it ran), so the answer matches what the next `dvc repro` will re-run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference_study.config import Cell, StudyConfig
from inference_study.plan import bench_units
from inference_study.results import ResultError, read_result


@dataclass(frozen=True)
class CellStatus:
    cell: Cell
    state: str
    detail: str

    def as_row(self) -> dict[str, Any]:
        return self.cell.model_dump() | {"state": self.state, "detail": self.detail}


def dvc_changes_by_output(root: Path) -> dict[Path, str]:
    """For each output of a stage that `dvc status` reports changed, a short description of why."""
    from dvc.repo import Repo  # heavy: DVC's repository API, only for this check

    with Repo(str(root)) as repo:
        changed = repo.status()
        outputs = {stage.addressing: [Path(out.fs_path).resolve() for out in stage.outs]
                   for stage in repo.index.stages}
    return {out: _describe(name, changes) for name, changes in changed.items() for out in outputs.get(name, [])}


def _describe(stage: str, changes: list[Any]) -> str:
    """`dvc status` entries (strings or {kind: {path: change}} dicts) as one line."""
    parts = []
    for change in changes:
        if isinstance(change, dict):
            parts += [f"{kind}: {', '.join(sorted(paths)) if isinstance(paths, dict) else paths}"
                      for kind, paths in change.items()]
        else:
            parts.append(str(change))
    return f"{stage}: " + "; ".join(parts)


def cell_statuses(study: StudyConfig, results_dir: Path, dvc_changes: dict[Path, str]) -> list[CellStatus]:
    """Every cell the report would show, with its state; a file that fails validation is `invalid`."""
    return [_status(unit.cell, unit.result_path(results_dir), dvc_changes) for unit in bench_units(study)]


def _status(cell: Cell, path: Path, dvc_changes: dict[Path, str]) -> CellStatus:
    if not path.is_file():
        return CellStatus(cell, "missing", f"no {path}")
    try:
        result = read_result(path)
    except ResultError as error:
        return CellStatus(cell, "invalid", str(error))
    stale = next((dvc_changes[out] for out in (path.resolve(), *path.resolve().parents) if out in dvc_changes), None)
    if stale:
        return CellStatus(cell, "stale", stale)
    if result.status != "ok":
        return CellStatus(cell, result.status, result.error or "")
    return CellStatus(cell, "done", f"verdict {result.verdict.status}")
