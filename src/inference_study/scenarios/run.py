"""Run one scenario on one model into a validated `ScenarioResult` (the scenario stage's work)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from inference_study.config import StudyConfig
from inference_study.environment import Environment
from inference_study.harness import DTYPE_BYTES, resolve_device
from inference_study.models import model_geometry, resolve_model, safetensors_size
from inference_study.results import ModelGeometry, ModelInfo, ScenarioResult
from inference_study.scenarios.records import KvOffloadRecord, KvPersistRecord, MultiroundRecord, NgramRecord


def _ngram(study: StudyConfig, model_dir: Path, dtype: str, device: str, vocab_size: int) -> NgramRecord:
    from inference_study.scenarios.common import load_eager
    from inference_study.scenarios.ngram import run_ngram

    backend = load_eager(model_dir, dtype, device)
    try:
        return run_ngram(backend, study.scenarios.ngram, vocab_size, study.bench.seed)
    finally:
        backend.release()


def _kv_persist(
    study: StudyConfig, model_dir: Path, dtype: str, device: str, vocab_size: int
) -> KvPersistRecord:
    from inference_study.scenarios.kv_persist import run_kv_persist

    return run_kv_persist(study.scenarios.kv_persist, model_dir, dtype, device, vocab_size, study.bench.seed)


def _kv_offload(
    study: StudyConfig, model_dir: Path, dtype: str, device: str, vocab_size: int
) -> KvOffloadRecord:
    """The hf arms, and the TensorRT-LLM arms when `trtllm_pytorch` is listed (as for multiround)."""
    from inference_study.scenarios.kv_offload import run_kv_offload
    from inference_study.scenarios.kv_offload_trtllm import trtllm_arms

    settings = study.scenarios.kv_offload
    trtllm = None
    if "trtllm_pytorch" in settings.backends:
        trtllm = trtllm_arms(settings, study.trtllm.pytorch, model_dir, dtype, device)
    return run_kv_offload(settings, model_dir, dtype, device, vocab_size, study.bench.seed, trtllm)


def _multiround(
    study: StudyConfig, model_dir: Path, dtype: str, device: str, vocab_size: int
) -> MultiroundRecord:
    """The hf arms, and the TensorRT-LLM arms when `trtllm_pytorch` is listed (the preflight has checked
    that TensorRT-LLM is installed; nothing is measured for it otherwise)."""
    from inference_study.scenarios.multiround import run_multiround
    from inference_study.scenarios.multiround_trtllm import trtllm_arms

    settings = study.scenarios.multiround
    trtllm = None
    if "trtllm_pytorch" in settings.backends:
        trtllm = trtllm_arms(settings, study.trtllm.pytorch, model_dir, dtype, device)
    return run_multiround(settings, model_dir, dtype, device, vocab_size, study.bench.seed, trtllm)


RUNNERS: dict[
    str,
    Callable[
        [StudyConfig, Path, str, str, int], NgramRecord | KvPersistRecord | KvOffloadRecord | MultiroundRecord
    ],
] = {
    "ngram": _ngram,
    "kv_persist": _kv_persist,
    "kv_offload": _kv_offload,
    "multiround": _multiround,
}


def model_info(name: str, study: StudyConfig, model_dir: Path, random_weights: bool) -> ModelInfo:
    spec = study.models[name]
    parameters, weight_bytes = safetensors_size(model_dir)
    return ModelInfo(
        name=name,
        source=spec.source,
        architecture=spec.architecture,
        dtype=spec.dtype,
        random_weights=random_weights,
        parameters=parameters,
        weight_bytes=weight_bytes,
        geometry=ModelGeometry(**model_geometry(model_dir, DTYPE_BYTES[spec.dtype])),
    )


def run_scenario(
    study: StudyConfig, scenario: str, model: str, model_stage_dir: Path, environment: Environment
) -> ScenarioResult:
    """Measure `scenario` on `model`; a GPU out-of-memory error is the recorded outcome, not raised."""
    import torch

    device = resolve_device(study.bench.device)
    model_dir, provenance = resolve_model(model_stage_dir)
    info = model_info(model, study, model_dir, provenance["random_weights"])
    status, error, record = "ok", None, None
    try:
        record = RUNNERS[scenario](
            study, model_dir, study.models[model].dtype, device, info.geometry.vocab_size
        )
    except torch.OutOfMemoryError as oom:
        status, error = "oom", f"GPU out of memory: {str(oom).splitlines()[0]}"
    return ScenarioResult(
        scenario=scenario,
        status=status,
        error=error,
        config_hash=study.scenario_config_hash(scenario, model),
        device=device,
        model=info,
        environment=environment,
        environment_fingerprint=environment.fingerprint,
        record=record,
        null_reasons={} if record else {"record": f"scenario {status}"},
    )
