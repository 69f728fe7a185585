"""The TensorRT-LLM DVC stages: convert a model, build one engine profile, measure one TensorRT-LLM backend.

They run only when `trtllm.models` / `trtllm.pytorch_models` name models; every stage first checks
(in `stage.run_stage`) that the installed TensorRT-LLM runs the enabled flows.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from inference_study.backends.trtllm import TRTLLM_PYTORCH, engine_backend, engine_profile
from inference_study.backends.trtllm import engine_dir as family_engine_dir
from inference_study.config import StudyConfig
from inference_study.environment import collect_environment
from inference_study.models import resolve_model
from inference_study.pipeline import model_dir
from inference_study.plan import bench_units
from inference_study.results import write_result
from inference_study.run import run_unit
from inference_study.strict import ConfigError
from inference_study.trtllm.calls import CONVERT_ARCH_DIRS, CONVERT_SCRIPT, build_argv, convert_argv
from inference_study.trtllm.settings import DEFAULT_EXAMPLES_DIR
from inference_study.trtllm.version import Band, band_for, import_tensorrt_llm

TRTLLM_DIR = "trtllm"


def checkpoint_dir(output_root: Path, model: str) -> Path:
    return output_root / TRTLLM_DIR / "checkpoints" / model


def engine_dir(output_root: Path, model: str, profile: str) -> Path:
    return Path(family_engine_dir(model, profile, str(output_root)))


def _engine_band() -> tuple[Band, str]:
    version = import_tensorrt_llm().__version__
    return band_for(version, "engine"), version


def _listed(cell: dict[str, Any], key: str, allowed: list[str]) -> str:
    value = cell.get(key)
    if value not in allowed:
        raise ConfigError(f"cell.{key}: {value!r} is not enabled for TensorRT-LLM here; allowed: {allowed}")
    return value


def convert_script(examples_dir: Path, band: Band, architecture: str, version: str) -> Path:
    """The version's convert_checkpoint.py for `architecture` (its folder moved around 0.18)."""
    candidates = [examples_dir / folder.format(arch=CONVERT_ARCH_DIRS[architecture]) / CONVERT_SCRIPT
                  for folder in band.convert_dirs]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"trtllm.convert.examples_dir: no {CONVERT_SCRIPT} for {architecture} under {examples_dir} (looked for "
        f"{', '.join(map(str, candidates))}); point it at the examples/ folder of TensorRT-LLM {version} "
        f"(NVIDIA's release container has it at {DEFAULT_EXAMPLES_DIR})"
    )


def _run(argv: list[str]) -> None:
    print("+", " ".join(argv), flush=True)
    subprocess.run(argv, check=True)


def convert_stage(study: StudyConfig, cell: dict[str, Any], output_root: Path) -> None:
    """HF directory → TensorRT-LLM checkpoint with the version's convert_checkpoint.py, in the model's dtype, split
    into its tensor_parallel ranks (trtllm-build takes the split from the checkpoint)."""
    model = _listed(cell, "model", study.trtllm.models)
    band, version = _engine_band()
    spec = study.models[model]
    hf_dir, _ = resolve_model(model_dir(model))
    script = convert_script(Path(study.trtllm.convert.examples_dir), band, spec.architecture, version)
    out = checkpoint_dir(output_root, model)
    shutil.rmtree(out, ignore_errors=True)
    _run(convert_argv(script, hf_dir, out, spec.dtype, spec.tensor_parallel))


def build_stage(study: StudyConfig, cell: dict[str, Any], output_root: Path) -> None:
    """One engine profile of one model with trtllm-build."""
    model = _listed(cell, "model", study.trtllm.models)
    profile = _listed(cell, "profile", study.trtllm.engines)
    _engine_band()
    out = engine_dir(output_root, model, profile)
    shutil.rmtree(out, ignore_errors=True)
    _run(build_argv(checkpoint_dir(output_root, model), out, study.trtllm.profiles[profile]))


def bench_stage(study: StudyConfig, cell: dict[str, Any], output_root: Path) -> None:
    """Every swept cell of one model x TensorRT-LLM backend, each its own unit through the one run path,
    one JSON each (the engine, built by trtllm_build, is named by each unit's settings)."""
    backend = cell.get("backend")
    profile = engine_profile(backend) if isinstance(backend, str) else None
    models = study.trtllm.models if profile is not None else study.trtllm.pytorch_models
    allowed = [engine_backend(p) for p in study.trtllm.engines] + [TRTLLM_PYTORCH]
    _listed(cell, "backend", allowed)
    model = _listed(cell, "model", models)
    environment = collect_environment()
    for unit in (u for u in bench_units(study) if (u.cell.model, u.cell.backend) == (model, backend)):
        result = run_unit(unit, model_dir(model), environment)
        write_result(unit.result_path(output_root), result)
        print(f"{unit.cell.key}: {result.status}" + (f" ({result.error})" if result.error else ""), flush=True)
