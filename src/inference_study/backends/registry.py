"""Name → settings class and backend class, without importing torch until a backend is built.

`BACKEND_SETTINGS` holds the PyTorch rungs that `sweep.backends` may name. TensorRT-LLM backends are
named by the `trtllm` section instead (`trtllm_engine_<profile>` per engine profile, and
`trtllm_pytorch`): they run in their own DVC stages, which need the engine or the package.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from inference_study.backends.hf_settings import (
    HfCompiledLoopSettings,
    HfEagerSettings,
    HfPagedSettings,
    HfStaticCompiledSettings,
)

if TYPE_CHECKING:
    from inference_study.backends.base import Backend, BackendSettings

BACKEND_SETTINGS: dict[str, type[BackendSettings]] = {
    "hf_eager": HfEagerSettings,
    "hf_static_compiled": HfStaticCompiledSettings,
    "hf_compiled_loop": HfCompiledLoopSettings,
    "hf_paged": HfPagedSettings,
}

TRTLLM_PYTORCH = "trtllm_pytorch"
TRTLLM_ENGINE_PREFIX = "trtllm_engine_"
_BACKEND_CLASSES = {
    "hf_eager": "inference_study.backends.hf:HfEager",
    "hf_static_compiled": "inference_study.backends.hf:HfStaticCompiled",
    "hf_compiled_loop": "inference_study.backends.hf_loop:HfCompiledLoop",
    "hf_paged": "inference_study.backends.hf_paged:HfPaged",
    TRTLLM_PYTORCH: "inference_study.backends.trtllm:TrtllmPytorch",
    TRTLLM_ENGINE_PREFIX: "inference_study.backends.trtllm:TrtllmEngine",  # one class, every engine profile
}


def engine_backend(profile: str) -> str:
    """The backend name under which one engine profile's cells are recorded."""
    return TRTLLM_ENGINE_PREFIX + profile


def engine_profile(name: str) -> str | None:
    """The engine profile a backend name measures, or None when it is not an engine backend."""
    return name.removeprefix(TRTLLM_ENGINE_PREFIX) if name.startswith(TRTLLM_ENGINE_PREFIX) else None


def is_trtllm(name: str) -> bool:
    """True for the TensorRT-LLM backends, whose results must come from an installed TensorRT-LLM."""
    return name == TRTLLM_PYTORCH or engine_profile(name) is not None


def backend_class(name: str) -> type[Backend]:
    """Import and return the backend class registered under `name`."""
    key = TRTLLM_ENGINE_PREFIX if engine_profile(name) is not None else name
    module_name, class_name = _BACKEND_CLASSES[key].split(":")
    return getattr(import_module(module_name), class_name)
