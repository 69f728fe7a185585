"""conf/ (Hydra groups) → params.yaml, exactly as `dvc exp run` composes it.

`dvc repro` never composes (by design, DVC issue #10750), so this writes the snapshot, validates it
first, and `check` reports drift between the committed `params.yaml` and `conf/`.
"""

from __future__ import annotations

import difflib
from pathlib import Path


from inference_study.config import PARAMS_FILE, parse_params, validate_params
from inference_study.strict import ConfigError

CONF_DIR = Path("conf")
CONFIG_NAME = "config"


def compose_yaml(overrides: list[str] | None = None, conf_dir: Path = CONF_DIR) -> str:
    """The YAML text DVC's Hydra composition writes for these overrides (same calls, same dump).

    A malformed override, an unknown key or group option becomes a ConfigError naming it.
    """
    from hydra import compose, initialize_config_dir  # heavy: Hydra loads only to compose or run a stage
    from hydra.errors import HydraException  # heavy: Hydra loads only to compose or run a stage
    from omegaconf import OmegaConf  # heavy: loads with Hydra
    from omegaconf.errors import OmegaConfBaseException  # heavy: loads with Hydra

    try:
        with initialize_config_dir(str(conf_dir.resolve()), version_base=None):
            cfg = compose(config_name=CONFIG_NAME, overrides=list(overrides or []))
        OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException) as error:
        first_line = str(error).splitlines()[0]  # Hydra adds a caret line and a docs link
        raise ConfigError(
            f"cannot compose {conf_dir}/ with overrides {list(overrides or [])}: {first_line}"
        ) from None
    return OmegaConf.to_yaml(cfg)


def write_params(
    overrides: list[str] | None = None, conf_dir: Path = CONF_DIR, params_file: Path = PARAMS_FILE
) -> str:
    """Compose, validate (bad values fail here, before any stage runs), then write `params_file`."""
    text = compose_yaml(overrides, conf_dir)
    validate_params(parse_params(text, "composed params"), source="composed params")
    params_file.write_text(text, encoding="utf-8")
    return text


def drift(conf_dir: Path = CONF_DIR, params_file: Path = PARAMS_FILE) -> str:
    """A unified diff between `params_file` and `compose(conf/)` with no overrides; empty when in sync."""
    expected = compose_yaml([], conf_dir)
    actual = params_file.read_text(encoding="utf-8") if params_file.exists() else ""
    return "".join(
        difflib.unified_diff(
            actual.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            fromfile=str(params_file),
            tofile=f"compose({conf_dir}/)",
        )
    )
