"""Typed view of `params.yaml`.

`params.yaml` (composed from `conf/`) is the only configuration a stage reads. Every stage passes it
through `StudyConfig` first, so a bad value stops the run before any work, with a message that names
the key, the value and what is allowed. The sections of plug-ins (each scenario's settings, a backend
family's own section) come from the registry: this module names no backend and no scenario.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)
from ruamel.yaml import YAML, YAMLError

from inference_study import registry
from inference_study.comparisons import Comparisons
from inference_study.stopping import FIXED_COUNT_REFUSED, StoppingRule
from inference_study.strict import NAME_PATTERN, ConfigError, PositiveInt, Strict, format_errors, unique

Dtype = Literal["float32", "float16", "bfloat16"]
PARAMS_FILE = Path("params.yaml")
OutputLen = Annotated[int, Field(ge=2, description="TPOT needs at least two output tokens")]


class ModelShape(Strict):
    """Architecture sizes of a random-weight model; typed so a typo cannot silently fall back to a default."""

    vocab_size: PositiveInt
    hidden_size: PositiveInt
    intermediate_size: PositiveInt
    num_hidden_layers: PositiveInt
    num_attention_heads: PositiveInt
    num_key_value_heads: PositiveInt
    head_dim: PositiveInt | None = None
    rms_norm_eps: float | None = Field(default=None, gt=0)
    rope_theta: float | None = Field(default=None, gt=0)
    tie_word_embeddings: bool = False

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelShape:
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        if self.head_dim is None and self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads (or set head_dim)")
        return self


class ModelSpec(Strict):
    """One model of the catalogue: where its weights come from and its shape."""

    source: Literal["random", "hf", "local"]
    architecture: Literal["llama", "qwen2"]
    dtype: Dtype
    max_seq_len: int = Field(gt=0, description="longest input + output the study may ask of this model")
    seed: int = 0
    hf_repo_id: str | None = None
    revision: str | None = None
    local_path: str | None = None
    trust_remote_code: bool = False
    shape: ModelShape | None = Field(default=None, description="architecture sizes for source=random")
    tensor_parallel: PositiveInt = Field(
        default=1, description="GPUs of one node the model is sharded over (tensor parallelism); 1: one GPU")

    @model_validator(mode="after")
    def _source_needs_its_fields(self) -> ModelSpec:
        required = {"hf": ("hf_repo_id", "revision"), "local": ("local_path",), "random": ("shape",)}
        for field in required[self.source]:
            if not getattr(self, field):
                raise ValueError(f"source={self.source!r} needs {field!r} to be set")
        if self.shape is not None:
            heads = {"num_attention_heads": self.shape.num_attention_heads,
                     "num_key_value_heads": self.shape.num_key_value_heads}
            undivided = [f"shape.{key}={count}" for key, count in heads.items() if count % self.tensor_parallel]
            if undivided:
                raise ValueError(f"tensor_parallel={self.tensor_parallel} does not divide {', '.join(undivided)}: "
                                 "each rank holds whole attention and KV heads")
        return self

    @model_serializer(mode="wrap")
    def _one_gpu_unsaid(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        """`tensor_parallel: 1` is left out, as params.yaml leaves it out: a one-GPU model keeps the config
        hash (and the DVC params) it had before tensor parallelism existed."""
        dumped = handler(self)
        if dumped.get("tensor_parallel") == 1:
            del dumped["tensor_parallel"]
        return dumped


class BenchSettings(Strict):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    warmup_iterations: int = Field(ge=0)
    stopping: StoppingRule | None = Field(default=None, description="when timed iterations stop (stopping.py)")
    iterations: int | None = Field(default=None, ge=1, description="old results' fixed count (read only)")
    processes: PositiveInt = Field(
        default=1, description="fresh processes a cell's measurement runs in; intervals are then over processes")
    seed: int = 0
    gpu_sample_interval_ms: int = Field(
        default=500, gt=0, description="period of draining NVML's sample buffers (gpu.py), not a polling rate"
    )
    max_cv: float = Field(default=0.05, gt=0, allow_inf_nan=False,
                          description="repeats varying more than this warn the verdict")

    @model_validator(mode="after")
    def _one_protocol(self) -> BenchSettings:
        if self.stopping is None and self.iterations is None:
            raise ValueError("stopping: required (min/max requests, min/max seconds, target_half_width)")
        if self.stopping is not None and self.iterations is not None:
            raise ValueError("stopping and iterations: give one (iterations is the old results' fixed count)")
        return self

    def identity(self) -> dict[str, Any]:
        """What enters a config hash: fields at the values results of schema 2 implied (no stopping rule, one
        process) are left out, so those results keep the identity they were written with."""
        return self.model_dump(exclude_none=True, exclude={"processes"} if self.processes == 1 else None)


class SweepSettings(Strict):
    """The grid; every list is a DVC matrix axis, so values must be unique (one stage per cell)."""

    models: Annotated[list[str], Field(min_length=1), AfterValidator(unique)]
    backends: Annotated[list[str], Field(min_length=1), AfterValidator(unique)]
    batch_sizes: Annotated[list[PositiveInt], Field(min_length=1), AfterValidator(unique)]
    input_lens: Annotated[list[PositiveInt], Field(min_length=1), AfterValidator(unique)]
    output_lens: Annotated[list[OutputLen], Field(min_length=1), AfterValidator(unique)]
    scenarios: Annotated[list[str], AfterValidator(unique)] = Field(
        default_factory=list, description="scenarios run on every scenario model; empty: none"
    )
    scenario_models: Annotated[list[str], AfterValidator(unique)] = Field(
        default_factory=list, description="the models each listed scenario runs on"
    )


class Cell(Strict):
    """One measured point of the sweep."""

    model: str
    backend: str
    batch_size: int = Field(gt=0)
    input_len: int = Field(gt=0)
    output_len: int = Field(ge=2)

    @property
    def key(self) -> str:
        return f"{self.model}/{self.backend}/b{self.batch_size}_i{self.input_len}_o{self.output_len}"

    def result_path(self, results_dir: Path) -> Path:
        return results_dir / "cells" / f"{self.key}.json"


def scenario_result_path(results_dir: Path, scenario: str, model: str) -> Path:
    return results_dir / "cells" / model / "scenarios" / f"{scenario}.json"


class Target(Strict):
    """A performance bar the report checks against one measured cell: a benchmark, not a test.

    With `relative_to_batch` the value is the cell's metric over the same metric at that batch size
    (same model, backend and lengths), e.g. how batch 32 scales over batch 1.
    """

    name: str
    cell: Cell
    metric: Literal["mbu_pct", "output_tokens_per_s", "tpot_p50_ms", "ttft_p50_ms"]
    at_least: float
    relative_to_batch: PositiveInt | None = None
    evidence: str = Field(default="", description="where the bar is not met: the measurement that shows why")


class CompareWith(Strict):
    """Another GPU's committed run that the report sets beside this one, as two environments."""

    label: str = Field(pattern=NAME_PATTERN, description="what the report calls that run, e.g. h100")
    inputs: str = Field(min_length=1, description="its committed inputs folder, e.g. reports/measured/h100/inputs")


class StudySection(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    targets: list[Target] = Field(default_factory=list, description="performance bars shown in the report")
    setup_share_at_most_pct: float | None = Field(
        default=None, gt=0, le=100, description="bar on setup (load, compile, warmup) as a share of cell wall time"
    )
    setup_share_evidence: str = Field(default="", description="where the setup bar is not met: why")
    comparisons: Comparisons = Field(default_factory=Comparisons, description="what the report sets side by side")
    compare_with: CompareWith | None = Field(default=None, description="another GPU's run shown beside this one")


class CoreStudyConfig(Strict):
    """The sections every study has; the plug-ins' sections are added below from the registry."""

    study: StudySection
    models: dict[str, ModelSpec]
    backends: dict[str, dict[str, Any]]
    bench: BenchSettings
    sweep: SweepSettings

    @field_validator("models")
    @classmethod
    def _safe_names(cls, models: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        """A model's name becomes a path, a DVC stage name and a Hydra override: one safe pattern for all."""
        bad = [name for name in models if not re.fullmatch(NAME_PATTERN, name)]
        if bad:
            raise ValueError(f"model names {bad} do not match {NAME_PATTERN} (lower-case letters, digits, _ and -)")
        return models

    @model_validator(mode="after")
    def _cross_checks(self) -> CoreStudyConfig:
        rungs = registry.sweepable_backends()
        for key in ("models", "scenario_models"):
            for name in getattr(self.sweep, key):
                if name not in self.models:
                    raise ValueError(f"sweep.{key}: unknown model {name!r}; allowed: {sorted(self.models)}")
        for name in self.sweep.backends:
            if name not in rungs:
                raise ValueError(f"sweep.backends: unknown backend {name!r}; allowed: {sorted(rungs)}")
        outside = [name for name in self.sweep.scenario_models if name not in self.sweep.models]
        if outside:
            raise ValueError(f"sweep.scenario_models: {outside} not in sweep.models, whose model stages prepare "
                             f"every model a stage runs; allowed: {self.sweep.models}")
        for name in self.sweep.scenarios:
            if name not in registry.scenarios():
                raise ValueError(f"sweep.scenarios: unknown scenario {name!r}; allowed: {sorted(registry.scenarios())}")
        for index, target in enumerate(self.study.targets):
            if target.cell.model not in self.models or registry.family_of(target.cell.backend) is None:
                raise ValueError(f"study.targets.{index}.cell: unknown model {target.cell.model!r} or backend "
                                 f"{target.cell.backend!r}; allowed: {sorted(self.models)} and {sorted(rungs)}")
        for name, settings in self.backends.items():
            if name not in rungs:
                raise ValueError(f"backends.{name}: unknown backend; allowed: {sorted(rungs)}")
            try:
                rungs[name].validate(settings, key=f"backends.{name}")
            except ValidationError as error:
                raise ValueError(format_errors(error, prefix=f"backends.{name}")) from None
        problems = [problem for family in registry.families() for problem in family.errors(self)]
        problems += self._scenario_errors() + self._tensor_parallel_errors()
        for name in self.sweep.backends:
            problems += rungs[name].validate(self.backends.get(name, {}), key=f"backends.{name}").sweep_errors(
                self.sweep.batch_sizes, self.sweep.input_lens, self.sweep.output_lens, key=f"backends.{name}"
            )
        if problems:
            raise ValueError("\n".join(problems))
        longest = max(self.sweep.input_lens) + max(self.sweep.output_lens)
        for name in self.sweep.models:
            limit = self.models[name].max_seq_len
            if longest > limit:
                raise ValueError(
                    f"sweep.input_lens/output_lens: input {max(self.sweep.input_lens)} + output "
                    f"{max(self.sweep.output_lens)} = {longest} exceeds models.{name}.max_seq_len={limit}"
                )
        return self

    def sharded_models(self) -> dict[str, int]:
        """The swept models with tensor parallelism, and their ranks."""
        return {name: self.models[name].tensor_parallel for name in self.sweep.models
                if self.models[name].tensor_parallel > 1}

    def _tensor_parallel_errors(self) -> list[str]:
        """Sharded models on what cannot shard them: a one-GPU rung, a scenario, or fresh processes per cell."""
        sharded = self.sharded_models()
        one_gpu_rungs = [name for name in self.sweep.backends if registry.sweepable_backends()[name].ranks is None]
        one_gpu_scenarios = [name for name in self.sweep.scenarios if registry.scenarios()[name].ranks is None
                             or getattr(self.scenarios, name).backends != ["hf"]]
        problems = []
        for model, ranks in sharded.items():
            if one_gpu_rungs:
                problems.append(f"models.{model}.tensor_parallel: {ranks}, but sweep.backends {one_gpu_rungs} run on "
                                "one GPU; allowed: 1, or sweep only rungs that shard (e.g. hf_eager, hf_static)")
            if model in self.sweep.scenario_models and one_gpu_scenarios:
                problems.append(f"models.{model}.tensor_parallel: {ranks}, but sweep.scenarios {one_gpu_scenarios} run "
                                f"on one GPU (or through a library that starts its own ranks); allowed: 1, or leave "
                                f"{model} out of sweep.scenario_models, or sweep only multiround with backends [hf]")
        if sharded and self.bench.processes > 1:
            problems.append(f"bench.processes: {self.bench.processes} fresh processes a cell, but tensor-parallel "
                            f"models ({', '.join(sharded)}) run as torchrun ranks; allowed: 1")
        return problems

    def _scenario_errors(self) -> list[str]:
        """Variants a scenario does not have, and requests longer than a scenario model allows."""
        problems = []
        for name, spec in registry.scenarios().items():
            settings = getattr(self.scenarios, name)
            unknown = [variant for variant in settings.backends if variant not in spec.variants]
            if unknown:
                problems.append(f"scenarios.{name}.backends: {unknown} are not variants of this scenario; "
                                f"allowed: {list(spec.variants)}")
            for model in self.sweep.scenario_models if name in self.sweep.scenarios else []:
                if settings.longest_sequence() > self.models[model].max_seq_len:
                    problems.append(f"scenarios.{name}: longest request {settings.longest_sequence()} tokens "
                                    f"exceeds models.{model}.max_seq_len={self.models[model].max_seq_len}")
        return problems


def _plugin_sections() -> dict[str, Any]:
    """`scenarios` (one field per registered scenario) and each backend family's own section, typed."""
    scenario_fields = {name: (spec.settings, Field(default_factory=spec.settings))
                       for name, spec in registry.scenarios().items()}
    section = create_model("ScenariosSection", __base__=Strict, **scenario_fields)
    section.__doc__ = "Every scenario's settings; `sweep.scenarios` says which run."
    fields = {"scenarios": (section, Field(default_factory=section))}
    return fields | {key: (model, Field(default_factory=model)) for key, model in registry.sections().items()}


StudyConfig = create_model("StudyConfig", __base__=CoreStudyConfig, **_plugin_sections())


def upgrade_scenario_models(raw: dict[str, Any]) -> dict[str, Any]:
    """Params written when each scenario listed its own `models` (committed report inputs): the same runs
    as `sweep.scenarios` x `sweep.scenario_models`, which holds whenever the listed models are the same."""
    sections = raw.get("scenarios")
    if not isinstance(sections, dict) or not any(isinstance(s, dict) and "models" in s for s in sections.values()):
        return raw
    sections = {name: dict(s) for name, s in sections.items()}
    listed = {name: s.pop("models") for name, s in sections.items() if "models" in s}
    enabled = {name: models for name, models in listed.items() if models}
    model_lists = {tuple(models) for models in enabled.values()}
    if len(model_lists) > 1:
        raise ConfigError(f"scenarios: each scenario lists its own models ({enabled}); give one list as "
                          "sweep.scenario_models and the scenarios as sweep.scenarios")
    sweep = {**raw.get("sweep", {}), "scenarios": list(enabled),
             "scenario_models": list(model_lists.pop()) if model_lists else []}
    return {**raw, "scenarios": sections, "sweep": sweep}


def validate_params(raw: dict[str, Any], source: str = "params.yaml", *, legacy_ok: bool = False) -> StudyConfig:
    """Validate a composed params mapping; raise ConfigError naming every bad key, on one line.

    `legacy_ok` reads the params of old results (committed report inputs) with their fixed iteration counts.
    """
    problems = [] if legacy_ok else [f"{key}: {FIXED_COUNT_REFUSED}" for key in _fixed_counts(raw)]
    try:
        study = StudyConfig.model_validate(upgrade_scenario_models(raw))
    except ValidationError as error:
        problems += format_errors(error).splitlines()
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    return study


def _fixed_counts(raw: dict[str, Any]) -> list[str]:
    """The keys of `raw` that set the old protocol's fixed count of timed iterations."""
    sections = {"bench": raw.get("bench")} | {f"scenarios.{name}": s for name, s in (raw.get("scenarios") or {}).items()}
    return [f"{where}.iterations" for where, section in sections.items()
            if isinstance(section, dict) and section.get("iterations") is not None]


def parse_params(text: str, source: str) -> dict[str, Any]:
    """The mapping `text` holds, read as DVC reads params.yaml (ruamel.yaml's safe loader, YAML 1.2): `010`
    is ten and `yes` a string to both, where a YAML 1.1 reader would see eight and true."""
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{source}: not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: holds a {type(data).__name__}, not a mapping of sections")
    return data


def load_params(path: Path = PARAMS_FILE, *, legacy_ok: bool = False) -> StudyConfig:
    """Read and validate `params.yaml` (or, with `legacy_ok`, the params of old results)."""
    if not path.exists():
        raise ConfigError(f"{path} not found: run `inference-study compose` to write it from conf/")
    return validate_params(parse_params(path.read_text(), str(path)), source=str(path), legacy_ok=legacy_ok)
