"""Name → settings class and backend class, without importing torch until a backend is built."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from inference_study.backends.hf_settings import (
    HfCompiledLoopSettings,
    HfEagerSettings,
    HfStaticCompiledSettings,
)

if TYPE_CHECKING:
    from inference_study.backends.base import Backend, BackendSettings

BACKEND_SETTINGS: dict[str, type[BackendSettings]] = {
    "hf_eager": HfEagerSettings,
    "hf_static_compiled": HfStaticCompiledSettings,
    "hf_compiled_loop": HfCompiledLoopSettings,
}

_BACKEND_CLASSES = {
    "hf_eager": "inference_study.backends.hf:HfEager",
    "hf_static_compiled": "inference_study.backends.hf:HfStaticCompiled",
    "hf_compiled_loop": "inference_study.backends.hf_loop:HfCompiledLoop",
}


def backend_class(name: str) -> type[Backend]:
    """Import and return the backend class registered under `name`."""
    module_name, class_name = _BACKEND_CLASSES[name].split(":")
    return getattr(import_module(module_name), class_name)
