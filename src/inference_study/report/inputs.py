"""What a report is built from, kept beside it (`inputs/`), and the roofline it reads."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import yaml

from inference_study.config import StudyConfig
from inference_study.report.table import Loaded
from inference_study.results import ResultError
from inference_study.roofline import ROOFLINE_NAME, Roofline

INPUTS = "inputs"

__all__ = ["INPUTS", "ROOFLINE_NAME", "copy_raw", "keep_inputs", "load_roofline"]


def load_roofline(path: Path) -> Roofline | None:
    """The measured ceilings, or None when the roofline stage has not run (MBU columns stay empty)."""
    if not path.exists():
        return None
    try:
        return Roofline.model_validate_json(path.read_text())
    except ValueError as error:
        raise ResultError(f"{path}: not a valid roofline file: {error}") from None


def copy_raw(source: Path, target: Path) -> None:
    """A result file copied byte for byte: inputs keep what was measured, in the schema it was written in (a
    result read through an upgrade is never written back over its original)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def keep_inputs(study: StudyConfig, loaded: Loaded, keep_scenarios: Callable[[Path], None], roofline_path: Path,
                results_dir: Path, out_dir: Path) -> None:
    """Copy what the report is built from (params, cell results, what `keep_scenarios` writes, roofline) into
    `out_dir/inputs/`.

    A committed report then carries its own raw data: `inference-study report --inputs DIR` rebuilds
    it on any machine, without a GPU and without DVC.
    """
    inputs = out_dir / INPUTS
    (inputs / "params.yaml").parent.mkdir(parents=True, exist_ok=True)
    (inputs / "params.yaml").write_text(yaml.safe_dump(study.model_dump(mode="json"), sort_keys=False))
    cells_dir = inputs / "cells"
    if cells_dir.exists():
        shutil.rmtree(cells_dir)
    for cell, result in loaded:
        if result is not None:
            copy_raw(cell.result_path(results_dir), cell.result_path(inputs))
    keep_scenarios(inputs)
    (inputs / ROOFLINE_NAME).unlink(missing_ok=True)
    if roofline_path.exists():
        shutil.copyfile(roofline_path, inputs / ROOFLINE_NAME)
