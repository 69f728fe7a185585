"""What every DVC stage script shares: params → typed config, and clean errors instead of tracebacks."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from inference_study.config import StudyConfig, validate_params
from inference_study.models import ModelSourceError
from inference_study.pipeline import RESULTS_DIR
from inference_study.plan import variant_features
from inference_study.progress import configure_library_bars
from inference_study.results import ResultError
from inference_study.strict import ConfigError

EXPECTED_ERRORS = (ConfigError, ModelSourceError, ResultError)


def study_from(cfg: DictConfig) -> tuple[StudyConfig, dict[str, Any]]:
    """Split the Hydra config into the validated study and the per-cell coordinates (`+cell.*`)."""
    raw = OmegaConf.to_container(cfg, resolve=True)
    cell = raw.pop("cell", None) or {}
    return validate_params(raw), cell


StageAction = Callable[[StudyConfig, dict[str, Any], Path], object]


def run_stage(cfg: DictConfig, action: StageAction, output_root: Path) -> None:
    """Validate before any work, run `action`, and turn expected errors into one clear line on stderr.

    Library progress bars follow the study's rule (quiet in CI and off a terminal) from the start.
    Every stage also runs each backend family's preflight (TensorRT-LLM: is it installed, at a version
    that runs what the study enables?): whichever stage DVC starts first stops the run before any work.
    """
    configure_library_bars()
    try:
        study, cell = study_from(cfg)
        for family, features in variant_features(study).items():
            family.preflight(study, features)
        action(study, cell, output_root)
    except EXPECTED_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def hydra_stage(action: StageAction) -> Callable[[], None]:
    """A Hydra entry point for a stage: `params.yaml` in the working directory is the primary config.

    Under DVC the command adds `+cell.*` overrides and outputs go to `results/`. Ad hoc,
    `--config-dir conf --config-name config -m ...` composes conf/ directly, Hydra's multirun sweeps
    it, and each job writes into its own directory under `multirun/`, never into DVC outputs.
    """
    import hydra  # heavy: Hydra loads only to compose or run a stage
    from hydra.core.hydra_config import HydraConfig  # heavy: Hydra loads only to compose or run a stage
    from hydra.types import RunMode  # heavy: Hydra loads only to compose or run a stage

    @hydra.main(version_base=None, config_path=str(Path.cwd()), config_name="params")
    def main(cfg: DictConfig) -> None:
        runtime = HydraConfig.get()
        multirun = runtime.mode == RunMode.MULTIRUN
        run_stage(cfg, action, Path(runtime.runtime.output_dir) if multirun else RESULTS_DIR)

    return main
