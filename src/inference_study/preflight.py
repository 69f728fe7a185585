"""What can be checked before any stage works, checked by the env stage, which every other stage waits for.

DVC deletes a stage's outputs before it runs the stage. So the checks that need the machine (the device,
a writable results folder, local model paths, the hub for models still to download) run in the env stage,
whose output persists when it fails: a failed check stops `dvc repro` there and leaves every earlier
result, model directory and `results/env.json` as they were.
"""

from __future__ import annotations

import os
from pathlib import Path

from inference_study.config import StudyConfig
from inference_study.harness import resolve_device
from inference_study.models import ModelSourceError, hub_reachable
from inference_study.strict import ConfigError


def _writable(folder: Path) -> bool:
    """Whether results can be written under `folder` (or under its nearest existing parent, which creates it)."""
    existing = next(p for p in (folder, *folder.resolve().parents) if p.exists())
    return os.access(existing, os.W_OK | os.X_OK)


def check_before_work(study: StudyConfig, results_dir: Path, models_dir: Path) -> None:
    """Raise the first problem as one line naming its key; return when every unit can start."""
    resolve_device(study.bench.device)
    if not _writable(results_dir):
        raise ConfigError(f"{results_dir}/: not writable by this user, so no result could be kept; "
                          "fix its permissions before `dvc repro` (nothing was measured)")
    for name in dict.fromkeys(study.sweep.models + study.sweep.scenario_models):
        spec = study.models[name]
        if spec.source == "local" and not (Path(spec.local_path).expanduser() / "config.json").is_file():
            raise ConfigError(f"models.{name}.local_path: {spec.local_path!r} is not an HF model directory "
                              "(no config.json)")
        if spec.source == "hf" and not (models_dir / name).is_dir():
            problem = hub_reachable(spec)
            if problem:
                raise ModelSourceError(f"models.{name}: {problem}")
