"""Where each cell of the current params stands: done, stale, missing, oom, failed or invalid.

"Stale" is DVC's own verdict (`dvc status`: a dependency, parameter or output of the cell's stage
changed since it ran), so the answer matches what the next `dvc repro` will re-run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference_study.config import Cell, StudyConfig
from inference_study.plan import BenchUnit, bench_units
from inference_study.results import ResultError, read_result


@dataclass(frozen=True)
class CellStatus:
    cell: Cell
    state: str
    detail: str

    def as_row(self) -> dict[str, Any]:
        return self.cell.model_dump() | {"state": self.state, "detail": self.detail}


REPRO_RUNNING = ("a `dvc repro` holds the repository's lock: states come from the result files alone, "
                 "and whether a done cell is stale is not checked until it finishes")


@dataclass(frozen=True)
class DvcState:
    """What `dvc status` says of the DAG: why each changed stage is stale, and every stage's outputs."""

    changes: dict[str, str]
    outputs: dict[str, list[Path]]


def dvc_state(root: Path) -> DvcState | None:
    """Each changed stage with a one-line reason, and each stage's resolved outputs; None while a running
    `dvc repro` holds the lock (DVC's status cannot be read then)."""
    from dvc.lock import LockError  # heavy: DVC's repository API, only for this check
    from dvc.repo import Repo  # heavy: DVC's repository API, only for this check

    try:
        with Repo(str(root)) as repo:
            changed = repo.status()
            outputs = {stage.addressing: [Path(out.fs_path).resolve() for out in stage.outs]
                       for stage in repo.index.stages}
    except LockError:
        return None
    return DvcState({name: _describe(name, changes) for name, changes in changed.items()}, outputs)


def dvc_changes_by_output(root: Path) -> dict[Path, str] | None:
    """For each output of a stage that `dvc status` reports changed, a short description of why; None while
    a running `dvc repro` holds the lock."""
    state = dvc_state(root)
    if state is None:
        return None
    return {out: why for name, why in state.changes.items() for out in state.outputs.get(name, [])}


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
    return [_status(unit, unit.result_path(results_dir), dvc_changes) for unit in bench_units(study)]


def _status(unit: BenchUnit, path: Path, dvc_changes: dict[Path, str]) -> CellStatus:
    """A result read outside DVC (`--results DIR`) is also checked against the unit: its cell and config hash."""
    cell = unit.cell
    if not path.is_file():
        return CellStatus(cell, "missing", f"no {path}")
    try:
        result = read_result(path)
    except ResultError as error:
        return CellStatus(cell, "invalid", str(error))
    if result.cell != cell:
        return CellStatus(cell, "invalid", f"{path}: holds cell {result.cell.key}, not {cell.key}")
    stale = next((dvc_changes[out] for out in (path.resolve(), *path.resolve().parents) if out in dvc_changes), None)
    if stale:
        return CellStatus(cell, "stale", stale)
    if result.config_hash != unit.config_hash:
        return CellStatus(cell, "stale", f"{path}: measured under other settings (config hash "
                                         f"{result.config_hash}; these params give {unit.config_hash})")
    if result.status != "ok":
        return CellStatus(cell, result.status, result.error or "")
    return CellStatus(cell, "done", f"verdict {result.verdict.status}")
