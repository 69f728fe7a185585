"""The study's plug-in points: backend families and scenarios register here, and the core names none of them.

Every folder under `backends/` and `scenarios/` is a plug-in. Its `__init__.py` is import-light (settings
and records, no torch) and defines `FAMILY` (a `BackendFamily`) or `SCENARIO` (a `ScenarioSpec`); heavy
code is named by a "module:attribute" string and imported only when it runs. The registry finds plug-ins
by walking those two packages, so adding one touches no core module.
"""

from __future__ import annotations

import pkgutil
from dataclasses import dataclass, field
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from inference_study.environment import STAND_IN_MARK

if TYPE_CHECKING:
    from pydantic import BaseModel

    from inference_study.backend import Backend, BackendSettings
    from inference_study.config import StudyConfig
    from inference_study.scenario import ScenarioRecord, ScenarioSettings

# Imported at run time by `plugins()` (dag.py adds these edges to the import graph that grimp sees).
DYNAMIC_IMPORTS = ("inference_study.backends", "inference_study.scenarios")
PLUGIN_PACKAGES = {"FAMILY": "inference_study.backends", "SCENARIO": "inference_study.scenarios"}


def load(reference: str) -> Any:
    """The object a "module:attribute" reference names, importing its module now."""
    module, attribute = reference.split(":")
    return getattr(import_module(module), attribute)


@dataclass(frozen=True)
class BackendSpec:
    """One backend a sweep can name: its typed settings and the class that runs it.

    A variant (`variant_of`) runs another backend's code with some of its settings `fixed`: a setting taken
    apart becomes a rung of its own, with its own cells, and no new code path. `ranks` says how a model
    sharded over several GPUs runs: "torchrun" (the study starts one rank per GPU, tensor_parallel.py),
    "itself" (the library starts its own), or None (one GPU only: such a model is refused).
    """

    name: str
    settings: type[BackendSettings]
    implementation: str  # "module:Class"; the module may import torch or tensorrt_llm
    variant_of: str | None = None
    fixed: dict[str, Any] = field(default_factory=dict)
    ranks: Literal["torchrun", "itself"] | None = None

    def validate(self, section: dict[str, Any], key: str) -> BackendSettings:
        """The typed settings of `section` (params.yaml's `key`); a variant's fixed settings are applied, and a
        section that sets one otherwise is refused (ValueError naming the key), as a bad value is."""
        contrary = {name: section[name] for name, value in self.fixed.items()
                    if name in section and section[name] != value}
        if contrary:
            name = next(iter(contrary))
            raise ValueError(f"{key}.{name}: {contrary[name]!r} contradicts the variant {self.name} of "
                             f"{self.variant_of}, which fixes {name}; allowed: {self.fixed[name]!r} or absent")
        return self.settings.model_validate({**section, **self.fixed})

    def description(self) -> str:
        """What the backend is: its class's words, or for a variant the settings it changes."""
        if self.variant_of is None:
            return load(self.implementation).description
        fixed = ", ".join(f"{name}={value!r}" for name, value in self.fixed.items())
        return f"changes from {self.variant_of}: {fixed} (the same code, these settings fixed)"


class BackendFamily:
    """Backends that share a library: the rungs `sweep.backends` names, and anything the family adds.

    The defaults fit a family whose backends are all listed in `sweep.backends` with settings under
    `backends.<name>`; a family with its own params section (TensorRT-LLM's `trtllm`) overrides the hooks.
    """

    name: ClassVar[str]
    backends: ClassVar[tuple[BackendSpec, ...]] = ()
    # The Environment field that must name a real install for this family's numbers to count (None: any).
    provenance: ClassVar[str | None] = None
    # A top-level params section the family owns, and its typed model.
    section: ClassVar[tuple[str, type[BaseModel]] | None] = None

    def spec(self, name: str) -> BackendSpec | None:
        return next((spec for spec in self.backends if spec.name == name), None)

    def owns(self, name: str) -> bool:
        return self.spec(name) is not None

    def settings(self, study: StudyConfig, name: str, model: str) -> BackendSettings:
        """The typed settings `name` runs `model` with (its defaults when params.yaml gives none)."""
        return self.spec(name).validate(study.backends.get(name, {}), key=f"backends.{name}")

    def backend_class(self, name: str) -> type[Backend]:
        return load(self.spec(name).implementation)

    def extra_cells(self, study: StudyConfig) -> list[tuple[str, str]]:
        """(model, backend) pairs the family measures beyond `sweep.models` x `sweep.backends`."""
        return []

    def errors(self, study: StudyConfig) -> list[str]:
        """Why the study cannot run this family's cells, each naming its key (none by default)."""
        return []

    def preflight(self, study: StudyConfig, features: list[str]) -> None:
        """Stop before any work when this machine cannot run what the study enables of the family."""


@dataclass(frozen=True)
class ScenarioSpec:
    """One scenario: its settings and record types, and the heavy code that runs and reports it."""

    name: str
    title: str
    settings: type[ScenarioSettings]
    record: type[ScenarioRecord]
    runner: str  # "module:function": (unit, model_dir, device, vocab_size) -> record
    report: str  # "module:function": (measured results) -> markdown lines
    # "hf" (the scenario's transformers arms), then each backend a variant measures, with the feature
    # name its family's preflight checks.
    variants: dict[str, str | None] = field(default_factory=lambda: {"hf": None})
    # "torchrun": its hf arms run on a model sharded over N GPUs as N ranks (as BackendSpec.ranks); None: one GPU
    ranks: Literal["torchrun"] | None = None


@cache
def plugins() -> dict[str, tuple[Any, ...]]:
    """Every plug-in, by kind ("FAMILY", "SCENARIO"), in a stable (alphabetical) order."""
    found: dict[str, list[Any]] = {kind: [] for kind in PLUGIN_PACKAGES}
    for kind, package_name in PLUGIN_PACKAGES.items():
        package = import_module(package_name)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            if info.ispkg:
                plugin = getattr(import_module(f"{package_name}.{info.name}"), kind, None)
                if plugin is not None:
                    found[kind].append(plugin)
    return {kind: tuple(items) for kind, items in found.items()}


def families() -> tuple[BackendFamily, ...]:
    return plugins()["FAMILY"]


def scenarios() -> dict[str, ScenarioSpec]:
    return {spec.name: spec for spec in plugins()["SCENARIO"]}


def sweepable_backends() -> dict[str, BackendSpec]:
    """The backends `sweep.backends` may name, by name."""
    return {spec.name: spec for family in families() for spec in family.backends}


def family_of(backend: str) -> BackendFamily | None:
    return next((family for family in families() if family.owns(backend)), None)


def _owner(name: str) -> BackendFamily:
    family = family_of(name)
    if family is None:
        raise KeyError(f"unknown backend {name!r}; registered: {sorted(sweepable_backends())}")
    return family


def backend_class(name: str) -> type[Backend]:
    """Import and return the class that runs backend `name`."""
    return _owner(name).backend_class(name)


def description(name: str) -> str:
    """The words a result records for backend `name` (importing its code unless it is a variant)."""
    family = _owner(name)
    spec = family.spec(name)  # None where a family names its backends itself (TensorRT-LLM's engine profiles)
    return spec.description() if spec else family.backend_class(name).description


def sections() -> dict[str, type[BaseModel]]:
    """The params sections families own, by key."""
    return dict(family.section for family in families() if family.section)


def provenance_error(backends: set[str], environment: Any) -> str | None:
    """Why results of `backends` from `environment` cannot count, or None: a family with a provenance rule
    (TensorRT-LLM) counts only numbers measured with its library really installed, never a stand-in."""
    for name in sorted(backends):
        family = family_of(name)
        if family is None or family.provenance is None:
            continue
        version = getattr(environment, family.provenance)
        if version is None or STAND_IN_MARK in version:
            return (f"{name} results recorded {family.provenance}={version!r}: only results measured with an "
                    f"installed {family.provenance} count, never from a stand-in or from none")
    return None
