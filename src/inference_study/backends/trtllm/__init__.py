"""TensorRT-LLM: built engines (`trtllm_engine_<profile>`, one per engine profile) and the LLM API's PyTorch
backend (`trtllm_pytorch`), both driven by the `trtllm` params section, never by `sweep.backends`.

Their numbers count only from an installed TensorRT-LLM (`provenance`), never from the test stand-in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from inference_study import registry
from inference_study.registry import BackendFamily, load
from inference_study.trtllm.settings import TrtllmEngineSettings, TrtllmSection
from inference_study.trtllm.version import FEATURES, installed_version, preflight

if TYPE_CHECKING:
    from inference_study.backend import Backend, BackendSettings
    from inference_study.config import StudyConfig

TRTLLM_PYTORCH = "trtllm_pytorch"
ENGINE_PREFIX = "trtllm_engine_"
IMPLEMENTATION = "inference_study.backends.trtllm.backend"  # the LLM API driver, loaded when a cell runs
ENGINES_DIR = "trtllm/engines"  # under the results root: the trtllm_build stage's outputs, per model and profile


def engine_backend(profile: str) -> str:
    """The backend name under which one engine profile's cells are recorded."""
    return ENGINE_PREFIX + profile


def engine_profile(name: str) -> str | None:
    """The engine profile a backend name measures, or None when it is not an engine backend."""
    return name.removeprefix(ENGINE_PREFIX) if name.startswith(ENGINE_PREFIX) else None


def engine_dir(model: str, profile: str, results_root: str = "results") -> str:
    """Where trtllm_build writes one engine and where its cells' units read it: one layout for both."""
    return f"{results_root}/{ENGINES_DIR}/{model}/{profile}"


class TrtllmFamily(BackendFamily):
    name = "tensorrt_llm"
    provenance = "tensorrt_llm"
    section = ("trtllm", TrtllmSection)

    def owns(self, name: str) -> bool:
        return name == TRTLLM_PYTORCH or engine_profile(name) is not None

    def settings(self, study: StudyConfig, name: str, model: str) -> BackendSettings:
        """The unit's settings, with the model's tensor-parallel ranks (the LLM API starts them itself)."""
        ranks = study.models[model].tensor_parallel
        if name == TRTLLM_PYTORCH:
            return study.trtllm.pytorch.model_copy(update={"tensor_parallel_size": ranks})
        profile = engine_profile(name)
        return TrtllmEngineSettings(profile=profile, build=study.trtllm.profiles[profile],
                                    kv_cache=study.trtllm.kv_cache, engine_dir=engine_dir(model, profile),
                                    tensor_parallel_size=ranks)

    def backend_class(self, name: str) -> type[Backend]:
        return load(f"{IMPLEMENTATION}:{'TrtllmPytorch' if name == TRTLLM_PYTORCH else 'TrtllmEngine'}")

    def extra_cells(self, study: StudyConfig) -> list[tuple[str, str]]:
        """Every engine profile of `trtllm.models`, then `trtllm.pytorch_models` on the LLM API."""
        section = study.trtllm
        return ([(m, engine_backend(p)) for m in section.models for p in section.engines]
                + [(m, TRTLLM_PYTORCH) for m in section.pytorch_models])

    def errors(self, study: StudyConfig) -> list[str]:
        problems = []
        for key in ("models", "pytorch_models"):
            outside = [name for name in getattr(study.trtllm, key) if name not in study.sweep.models]
            if outside:
                problems.append(f"trtllm.{key}: {outside} not in sweep.models (TensorRT-LLM cells are compared "
                                f"with the PyTorch rungs of the same model); allowed: {study.sweep.models}")
        sweep = study.sweep
        return (problems + study.trtllm.sweep_errors(sweep.batch_sizes, sweep.input_lens, sweep.output_lens)
                + unmeasured_variants(study) + tensor_parallel_errors(study))

    def preflight(self, study: StudyConfig, features: list[str]) -> None:
        preflight(study.trtllm.enabled_flows, installed_version(), study.study.name, features)


def unmeasured_variants(study: StudyConfig) -> list[str]:
    """An enabled scenario's `trtllm_pytorch` variant that no runner measures yet (its feature is `measured=False`):
    refused before any work, since the study would otherwise measure only `hf` and say nothing."""
    problems = []
    for name in study.sweep.scenarios:
        feature = registry.scenarios()[name].variants.get(TRTLLM_PYTORCH)
        if TRTLLM_PYTORCH in getattr(study.scenarios, name).backends and feature and not FEATURES[feature].measured:
            problems.append(f"scenarios.{name}.backends: {TRTLLM_PYTORCH} is built, but the {name} runner measures "
                            "only hf so far (docs/tensorrt-llm.md); allowed: [hf]")
    return problems


def tensor_parallel_errors(study: StudyConfig) -> list[str]:
    """Ranks set where the model's `tensor_parallel` now says them, and sharded models on a contiguous-KV engine
    (the session runtime runs rank 0's engine alone)."""
    section = study.trtllm
    problems = [f"{key}: {value}; the model's tensor_parallel sets it now (models.<name>.tensor_parallel); allowed: 1"
                for key, value in (("trtllm.convert.tp_size", section.convert.tp_size),
                                   ("trtllm.pytorch.tensor_parallel_size", section.pytorch.tensor_parallel_size))
                if value != 1]
    contiguous = [name for name in section.engines if not section.profiles[name].paged_kv_cache]
    for model in section.models:
        if study.models[model].tensor_parallel > 1 and contiguous:
            problems.append(f"models.{model}.tensor_parallel: {study.models[model].tensor_parallel}, but engine "
                            f"profiles {contiguous} have contiguous KV, which runs on the one-GPU session runtime; "
                            "allowed: 1, or paged profiles only")
    return problems


FAMILY = TrtllmFamily()
