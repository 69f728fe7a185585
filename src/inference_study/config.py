"""Typed view of `params.yaml`.

`params.yaml` (composed from `conf/`) is the only configuration a stage reads. Every stage passes it
through `StudyConfig` first, so a bad value stops the run before any work, with a message that names
the key, the value and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from inference_study.backends.base import BackendSettings
from inference_study.backends.registry import BACKEND_SETTINGS, TRTLLM_PYTORCH, engine_backend, engine_profile
from inference_study.scenarios.settings import ScenariosSection
from inference_study.trtllm.settings import TrtllmEngineSettings, TrtllmSection

Dtype = Literal["float32", "float16", "bfloat16"]
PARAMS_FILE = Path("params.yaml")
PositiveInt = Annotated[int, Field(gt=0)]
OutputLen = Annotated[int, Field(ge=2, description="TPOT needs at least two output tokens")]


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key, the value and what is allowed."""


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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

    @model_validator(mode="after")
    def _source_needs_its_fields(self) -> ModelSpec:
        required = {"hf": ("hf_repo_id", "revision"), "local": ("local_path",), "random": ("shape",)}
        for field in required[self.source]:
            if not getattr(self, field):
                raise ValueError(f"source={self.source!r} needs {field!r} to be set")
        return self


class BenchSettings(Strict):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    warmup_iterations: int = Field(ge=0)
    iterations: int = Field(ge=1)
    seed: int = 0
    gpu_sample_interval_ms: int = Field(
        default=500, gt=0, description="period of draining NVML's sample buffers (gpu.py), not a polling rate"
    )
    max_cv: float = Field(default=0.05, gt=0, description="repeats varying more than this warn the verdict")




def _unique(values: list[Any]) -> list[Any]:
    duplicates = sorted({v for v in values if values.count(v) > 1}, key=str)
    if duplicates:
        raise ValueError(f"values must be unique; repeated: {duplicates}")
    return values


class SweepSettings(Strict):
    """The grid; every list is a DVC matrix axis, so values must be unique (one stage per cell)."""

    models: Annotated[list[str], Field(min_length=1), AfterValidator(_unique)]
    backends: Annotated[list[str], Field(min_length=1), AfterValidator(_unique)]
    batch_sizes: Annotated[list[PositiveInt], Field(min_length=1), AfterValidator(_unique)]
    input_lens: Annotated[list[PositiveInt], Field(min_length=1), AfterValidator(_unique)]
    output_lens: Annotated[list[OutputLen], Field(min_length=1), AfterValidator(_unique)]


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


class StudySection(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = ""
    targets: list[Target] = Field(default_factory=list, description="performance bars shown in the report")
    setup_share_at_most_pct: float | None = Field(
        default=None, gt=0, le=100, description="bar on setup (load, compile, warmup) as a share of cell wall time"
    )


class StudyConfig(Strict):
    study: StudySection
    models: dict[str, ModelSpec]
    backends: dict[str, dict[str, Any]]
    bench: BenchSettings
    sweep: SweepSettings
    trtllm: TrtllmSection = Field(default_factory=TrtllmSection)
    scenarios: ScenariosSection = Field(default_factory=ScenariosSection)

    @model_validator(mode="after")
    def _cross_checks(self) -> StudyConfig:
        for name in self.sweep.models:
            if name not in self.models:
                raise ValueError(f"sweep.models: unknown model {name!r}; allowed: {sorted(self.models)}")
        for name in self.sweep.backends:
            if name not in BACKEND_SETTINGS:
                raise ValueError(f"sweep.backends: unknown backend {name!r}; allowed: {sorted(BACKEND_SETTINGS)}")
        for index, target in enumerate(self.study.targets):
            if target.cell.model not in self.models or target.cell.backend not in BACKEND_SETTINGS:
                raise ValueError(f"study.targets.{index}.cell: unknown model {target.cell.model!r} or backend "
                                 f"{target.cell.backend!r}; allowed: {sorted(self.models)} and {sorted(BACKEND_SETTINGS)}")
        for key in ("models", "pytorch_models"):
            outside = [name for name in getattr(self.trtllm, key) if name not in self.sweep.models]
            if outside:
                raise ValueError(f"trtllm.{key}: {outside} not in sweep.models (TensorRT-LLM cells are compared "
                                 f"with the PyTorch rungs of the same model); allowed: {self.sweep.models}")
        problems = self.trtllm.sweep_errors(self.sweep.batch_sizes, self.sweep.input_lens, self.sweep.output_lens)
        if problems:
            raise ValueError("\n".join(problems))
        for name, settings in self.backends.items():
            if name not in BACKEND_SETTINGS:
                raise ValueError(f"backends.{name}: unknown backend; allowed: {sorted(BACKEND_SETTINGS)}")
            try:
                BACKEND_SETTINGS[name].model_validate(settings)
            except ValidationError as error:
                raise ValueError(_format_errors(error, prefix=f"backends.{name}")) from None
        problems = self.scenarios.model_errors({name: spec.max_seq_len for name, spec in self.models.items()})
        for name in self.sweep.backends:
            problems += self.backend_settings(name).sweep_errors(
                self.sweep.batch_sizes, self.sweep.input_lens, self.sweep.output_lens
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

    def backend_settings(self, name: str) -> BackendSettings:
        """The typed settings of one backend (its defaults when params.yaml gives none).

        TensorRT-LLM settings come from the `trtllm` section; an engine backend's `engine_dir` is set by
        the trtllm_bench stage (`trtllm.stages.engine_view`), which measures one model's engine.
        """
        if name == TRTLLM_PYTORCH:
            return self.trtllm.pytorch
        profile = engine_profile(name)
        if profile is not None:
            return TrtllmEngineSettings(profile=profile, build=self.trtllm.profiles[profile],
                                        kv_cache=self.trtllm.kv_cache, **self.backends.get(name, {}))
        return BACKEND_SETTINGS[name].model_validate(self.backends.get(name, {}))

    def cells(self) -> list[Cell]:
        """Every cell of the sweep, in a stable order; the report reads this list, never a glob."""
        s = self.sweep
        return [
            Cell(model=m, backend=b, batch_size=bs, input_len=i, output_len=o)
            for m in s.models
            for b in s.backends
            for bs in s.batch_sizes
            for i in s.input_lens
            for o in s.output_lens
        ]

    def trtllm_cells(self) -> list[Cell]:
        """The TensorRT-LLM cells: every engine profile of `trtllm.models`, and `trtllm.pytorch_models`."""
        backends = [(m, engine_backend(p)) for m in self.trtllm.models for p in self.trtllm.engines]
        backends += [(m, TRTLLM_PYTORCH) for m in self.trtllm.pytorch_models]
        s = self.sweep
        return [
            Cell(model=m, backend=b, batch_size=bs, input_len=i, output_len=o)
            for m, b in backends
            for bs in s.batch_sizes
            for i in s.input_lens
            for o in s.output_lens
        ]

    def all_cells(self) -> list[Cell]:
        """The PyTorch cells, then the TensorRT-LLM cells: everything the report shows."""
        return self.cells() + self.trtllm_cells()

    def validate_cell(self, raw: dict[str, Any]) -> Cell:
        """Check cell coordinates given on the command line against this study's models and backends."""
        try:
            cell = Cell.model_validate(raw)
        except ValidationError as error:
            raise ConfigError("invalid cell:\n" + _format_errors(error, prefix="cell")) from None
        if cell.model not in self.models:
            raise ConfigError(f"cell.model: unknown model {cell.model!r}; allowed: {sorted(self.models)}")
        if cell.backend not in BACKEND_SETTINGS:
            raise ConfigError(f"cell.backend: unknown backend {cell.backend!r}; allowed: {sorted(BACKEND_SETTINGS)}")
        limit = self.models[cell.model].max_seq_len
        if cell.input_len + cell.output_len > limit:
            raise ConfigError(
                f"cell.input_len: {cell.input_len} + output {cell.output_len} exceeds "
                f"models.{cell.model}.max_seq_len={limit}"
            )
        problems = self.backend_settings(cell.backend).sweep_errors([cell.batch_size], [cell.input_len],
                                                                    [cell.output_len])
        if problems:
            raise ConfigError("\n".join(problems))
        return cell

    def cell_config_hash(self, cell: Cell) -> str:
        """Hash of everything that defines a cell's measurement, so results from other settings are told apart."""
        payload = {
            "cell": cell.model_dump(),
            "model": self.models[cell.model].model_dump(),
            "backend": self.backend_settings(cell.backend).model_dump(),
            "bench": self.bench.model_dump(),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


    def scenario_config_hash(self, scenario: str, model: str) -> str:
        """Hash of what defines one scenario's measurement on one model (its settings, model and bench); the
        scenario's list of models is left out: running it on one more model changes nothing measured here."""
        payload = {
            "scenario": scenario,
            "settings": getattr(self.scenarios, scenario).model_dump(exclude={"models"}),
            "model": self.models[model].model_dump(),
            "bench": self.bench.model_dump(),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _format_errors(error: ValidationError, prefix: str = "") -> str:
    lines = []
    for item in error.errors():
        loc = ".".join(str(part) for part in (prefix, *item["loc"]) if part != "")
        message = item["msg"].removeprefix("Value error, ")
        shown = item.get("input")
        value = "" if isinstance(shown, dict) or shown is None else f" (got {shown!r})"
        lines.append(f"{loc}: {message}{value}" if loc else f"{message}{value}")
    return "\n".join(lines)


def validate_params(raw: dict[str, Any]) -> StudyConfig:
    """Validate a composed params mapping; raise ConfigError naming every bad key."""
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError("invalid configuration:\n" + _format_errors(error)) from None


def load_params(path: Path = PARAMS_FILE) -> StudyConfig:
    """Read and validate `params.yaml`."""
    if not path.exists():
        raise ConfigError(f"{path} not found: run `inference-study compose` to write it from conf/")
    return validate_params(yaml.safe_load(path.read_text()) or {})
