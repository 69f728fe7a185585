"""The plan: `params.yaml` turned into fully resolved units of work, each with its identity and result path.

A bench unit is one cell (model x backend x batch x input x output) with its typed backend settings; a
scenario unit is one scenario on one model with its settings and the settings of any backend variant.
The harness and the scenario runners take a unit and nothing else, so no stage reaches back into the
study and none writes into it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import SerializeAsAny, ValidationError

from inference_study import registry
from inference_study.backend import BackendSettings
from inference_study.config import BenchSettings, Cell, ModelSpec, StudyConfig, scenario_result_path
from inference_study.scenario import ScenarioSettings
from inference_study.strict import ConfigError, Strict, format_errors


def _hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


class BenchUnit(Strict):
    """One cell, resolved: everything its measurement depends on."""

    cell: Cell
    model: ModelSpec
    settings: SerializeAsAny[BackendSettings]
    bench: BenchSettings

    @property
    def config_hash(self) -> str:
        """Hash of everything that defines the measurement, so results from other settings are told apart."""
        return _hash({"cell": self.cell.model_dump(), "model": self.model.model_dump(),
                      "backend": self.settings.model_dump(), "bench": self.bench.identity()})

    def result_path(self, results_dir: Path) -> Path:
        return self.cell.result_path(results_dir)


class ScenarioUnit(Strict):
    """One scenario on one model, resolved: its settings, and those of each backend variant it runs."""

    scenario: str
    model_name: str
    model: ModelSpec
    settings: SerializeAsAny[ScenarioSettings]
    variant_settings: dict[str, SerializeAsAny[BackendSettings]]
    bench: BenchSettings

    @property
    def config_hash(self) -> str:
        """The scenario's settings, model and bench; which variants run is left out (see ScenarioSettings)."""
        return _hash({"scenario": self.scenario, "settings": self.settings.model_dump(),
                      "model": self.model.model_dump(),
                      "bench": {k: v for k, v in self.bench.identity().items() if k != "processes"}})

    @property
    def key(self) -> str:
        return f"{self.model_name}/scenarios/{self.scenario}"

    def result_path(self, results_dir: Path) -> Path:
        return scenario_result_path(results_dir, self.scenario, self.model_name)


def backend_settings(study: StudyConfig, backend: str, model: str) -> BackendSettings:
    """The typed settings `backend` runs `model` with, from the family that owns it."""
    family = registry.family_of(backend)
    if family is None:
        raise ConfigError(f"unknown backend {backend!r}; allowed: {sorted(registry.sweepable_backends())}")
    return family.settings(study, backend, model)


def _unit(study: StudyConfig, cell: Cell) -> BenchUnit:
    return BenchUnit(cell=cell, model=study.models[cell.model], settings=backend_settings(study, cell.backend, cell.model),
                     bench=study.bench)


def bench_units(study: StudyConfig) -> list[BenchUnit]:
    """Every cell of the study in a stable order: the sweep's rungs, then what each family adds.

    The report reads this list, never a directory glob."""
    s = study.sweep
    pairs = [(m, b) for m in s.models for b in s.backends]
    pairs += [pair for family in registry.families() for pair in family.extra_cells(study)]
    return [_unit(study, Cell(model=m, backend=b, batch_size=bs, input_len=i, output_len=o))
            for m, b in pairs for bs in s.batch_sizes for i in s.input_lens for o in s.output_lens]


def bench_unit(study: StudyConfig, coordinates: dict[str, Any]) -> BenchUnit:
    """The unit that cell coordinates given on the command line (`+cell.*`) name, checked against the study."""
    try:
        cell = Cell.model_validate(coordinates)
    except ValidationError as error:
        raise ConfigError("invalid cell: " + "; ".join(format_errors(error, prefix="cell").splitlines())) from None
    if cell.model not in study.models:
        raise ConfigError(f"cell.model: unknown model {cell.model!r}; allowed: {sorted(study.models)}")
    if registry.family_of(cell.backend) is None:
        raise ConfigError(f"cell.backend: unknown backend {cell.backend!r}; "
                          f"allowed: {sorted(registry.sweepable_backends())}")
    limit = study.models[cell.model].max_seq_len
    if cell.input_len + cell.output_len > limit:
        raise ConfigError(f"cell.input_len: {cell.input_len} + output {cell.output_len} exceeds "
                          f"models.{cell.model}.max_seq_len={limit}")
    unit = _unit(study, cell)
    problems = unit.settings.sweep_errors([cell.batch_size], [cell.input_len], [cell.output_len],
                                          key=f"backends.{cell.backend}")
    if problems:
        raise ConfigError("; ".join(problems))
    return unit


def scenario_units(study: StudyConfig) -> list[ScenarioUnit]:
    """Every scenario run: each of `sweep.scenarios` on each of `sweep.scenario_models`."""
    return [_scenario_unit(study, scenario, model)
            for scenario in study.sweep.scenarios for model in study.sweep.scenario_models]


def _scenario_unit(study: StudyConfig, scenario: str, model: str) -> ScenarioUnit:
    settings: ScenarioSettings = getattr(study.scenarios, scenario)
    variants = {name: backend_settings(study, name, model) for name in settings.backends if name != "hf"}
    return ScenarioUnit(scenario=scenario, model_name=model, model=study.models[model], settings=settings,
                        variant_settings=variants, bench=study.bench)


def scenario_unit(study: StudyConfig, coordinates: dict[str, Any]) -> ScenarioUnit:
    """The unit `+cell.scenario` and `+cell.model` name, when the study runs it."""
    scenario, model = (_require(coordinates, key) for key in ("scenario", "model"))
    if scenario not in study.sweep.scenarios or model not in study.sweep.scenario_models:
        raise ConfigError(f"cell.scenario: {scenario!r} on {model!r} is not configured to run; configured: "
                          f"{study.sweep.scenarios} on {study.sweep.scenario_models}")
    return _scenario_unit(study, scenario, model)


def _require(coordinates: dict[str, Any], key: str) -> Any:
    if key not in coordinates:
        raise ConfigError(f"cell.{key}: missing; pass it as an override, e.g. +cell.{key}=...")
    return coordinates[key]


def variant_features(study: StudyConfig) -> dict[registry.BackendFamily, list[str]]:
    """For each backend family, the features the enabled scenario variants need of it (for its preflight)."""
    needed: dict[registry.BackendFamily, list[str]] = {family: [] for family in registry.families()}
    for name in study.sweep.scenarios:
        spec = registry.scenarios()[name]
        for variant in getattr(study.scenarios, name).backends:
            family = registry.family_of(variant)
            if family is not None and spec.variants.get(variant):
                needed[family].append(spec.variants[variant])
    return needed
