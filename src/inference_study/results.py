"""One JSON per unit: versioned, validated on write and on read, written atomically, self-describing.

Every result kind shares one header (status, error, config hash, device, model, environment, null
reasons) and one provenance rule; a scenario's own record type comes from the registry, so this module
names no backend and no scenario.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SerializeAsAny, ValidationError, field_validator, model_validator

from inference_study import registry
from inference_study.backend import CompileCacheUse
from inference_study.config import Cell
from inference_study.environment import Environment
from inference_study.gpu import GpuUsage, slowdown_warning
from inference_study.metrics import MIN_SAMPLES, Headline, Latency, Throughput
from inference_study.scenario import ScenarioRecord
from inference_study.stopping import Stopping
from inference_study.strict import Record
from inference_study.uncertainty import MIN_REPEATS_FOR_INTERVAL, Interval
from inference_study.validity import NO_WARMUP, Verdict, judge

SCHEMA_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)
Status = Literal["ok", "oom", "failed"]


class ResultError(ValueError):
    """A result file is missing, corrupt, truncated or of another schema; the message names the file."""


class ModelGeometry(Record):
    """What decode-step byte counts and prefill FLOP counts need, read from the model's config.json."""

    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool
    dtype_bytes: int

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V of one token across all layers."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes


class ModelInfo(Record):
    name: str
    source: Literal["random", "hf", "local"]
    architecture: str
    dtype: str
    random_weights: bool
    parameters: int
    weight_bytes: int
    geometry: ModelGeometry
    tensor_parallel: int = Field(default=1, ge=1, description="GPUs the weights were sharded over (1 before "
                                 "tensor parallelism was recorded)")


class BackendInfo(Record):
    name: str
    description: str
    settings: dict[str, Any]
    memory_seen_by_torch_allocator: bool


class Workload(Record):
    kind: Literal["synthetic_fixed_length"] = "synthetic_fixed_length"
    seed: int
    input_token_hash: str


class Tokens(Record):
    requested_per_request: int
    produced_min: int
    produced_max: int


class Phases(Record):
    """Wall time split between setup and measurement, in seconds."""

    load_s: float | None = None
    warmup_s: float | None = None
    compile_s: float | None = Field(default=None, description="torch.compile's part of warmup_s")
    measure_s: float | None = None


class ResultHeader(Record):
    """What every result says about itself, whatever it measured: outcome, identity and where it ran."""

    status: Status
    error: str | None = None
    config_hash: str
    device: str
    model: ModelInfo | None
    environment: Environment
    environment_fingerprint: str
    null_reasons: dict[str, str]

    @model_validator(mode="after")
    def _header_consistent(self) -> ResultHeader:
        if self.status != "ok" and not self.error:
            raise ValueError(f"status {self.status!r} needs an error message")
        if self.environment_fingerprint != self.environment.fingerprint:
            raise ValueError("environment_fingerprint does not match the environment it describes")
        return self

    def measured_backends(self) -> set[str]:
        """The backends whose numbers this result holds (for the provenance rule)."""
        return set()


class CellResult(ResultHeader):
    schema_version: Literal[4] = SCHEMA_VERSION
    cell: Cell
    warmup_iterations: int
    stopping: Stopping | None = None
    processes: int = Field(default=1, ge=1, description="fresh processes the measurement ran in")
    backend: BackendInfo
    workload: Workload
    tokens: Tokens | None = None
    output_ids: list[list[int]] | None = None  # greedy tokens of the last timed iteration, for equivalence
    latency: Latency | None = None
    throughput: Throughput | None = None
    headline: Headline | None = None
    verdict: Verdict
    gpu: GpuUsage
    phases: Phases
    compile_cache: CompileCacheUse | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CellResult:
        if self.status == "ok" and None in (self.latency, self.throughput, self.tokens, self.stopping):
            raise ValueError("status 'ok' needs latency, throughput, tokens and stopping")
        if self.status != "ok" and self.verdict.status != "fail":
            raise ValueError(f"a cell with status {self.status!r} cannot have verdict {self.verdict.status!r}")
        for name in self.null_fields():
            if name not in self.null_reasons:
                raise ValueError(f"{name} is null without a reason in null_reasons")
        return self

    def measured_backends(self) -> set[str]:
        return {self.backend.name}

    def null_fields(self) -> list[str]:
        """Measured fields that are null: each must carry a reason (never a silent 0)."""
        names = [f"gpu.{k}" for k, v in self.gpu.model_dump().items() if v is None]
        if self.status == "ok":
            names += [f"phases.{k}" for k, v in self.phases.model_dump().items() if v is None]
            names += [name for name in ("headline", "output_ids", "compile_cache") if getattr(self, name) is None]
            names += list(self.latency.missing_percentiles()) if self.latency is not None else []
        return names


SCENARIO_SCHEMA_VERSION = 1


class ScenarioResult(ResultHeader):
    """One scenario on one model: the common header, plus the scenario's own record.

    The header is versioned here (`schema_version`); the record's fields by its own `record_version`.
    """

    schema_version: Literal[1] = SCENARIO_SCHEMA_VERSION
    kind: Literal["scenario"] = "scenario"
    scenario: str
    record: SerializeAsAny[ScenarioRecord] | None

    @field_validator("record", mode="before")
    @classmethod
    def _registered_record(cls, value: object) -> object:
        """A record is validated by the type its scenario registered, told apart by its `scenario` field."""
        if isinstance(value, dict):
            spec = registry.scenarios().get(value.get("scenario"))
            if spec is None:
                raise ValueError(f"record of unknown scenario {value.get('scenario')!r}; "
                                 f"allowed: {sorted(registry.scenarios())}")
            return spec.record.model_validate(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ScenarioResult:
        if self.scenario not in registry.scenarios():
            raise ValueError(f"unknown scenario {self.scenario!r}; allowed: {sorted(registry.scenarios())}")
        if (self.status == "ok") != (self.record is not None):
            raise ValueError("status 'ok' needs a record, and only status 'ok' has one")
        if self.record is not None and self.record.scenario != self.scenario:
            raise ValueError(f"record of scenario {self.record.scenario!r} in a {self.scenario!r} result")
        if self.record is None and "record" not in self.null_reasons:
            raise ValueError("record is null without a reason in null_reasons")
        return self

    def measured_backends(self) -> set[str]:
        return self.record.measured_backends() if self.record is not None else set()


def write_scenario_result(path: Path, result: ScenarioResult) -> None:
    """Validate, then write atomically."""
    write_text_atomic(path, _validated(ScenarioResult, path, result.model_dump()).model_dump_json(indent=2) + "\n")


def read_scenario_result(path: Path) -> ScenarioResult:
    """Read and validate one scenario result; anything else is a ResultError naming the file."""
    raw = _read_json(path)
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or raw.get("kind") != "scenario" or version != SCENARIO_SCHEMA_VERSION:
        raise ResultError(f"{path}: not a scenario result of schema {SCENARIO_SCHEMA_VERSION}")
    return _validated(ScenarioResult, path, raw)


def _validated(kind: type[ResultHeader], path: Path, raw: dict[str, Any]) -> Any:
    """The result `raw` holds, checked against its schema and the provenance rule, on write and on read."""
    try:
        result = kind.model_validate(raw)
    except ValidationError as error:
        raise ResultError(f"{path}: does not match the {kind.__name__} schema:\n{error}") from None
    problem = registry.provenance_error(result.measured_backends(), result.environment)
    if problem:
        raise ResultError(f"{path}: {problem}")
    return result


def write_result(path: Path, result: CellResult) -> None:
    """Validate, then write atomically."""
    write_text_atomic(path, _validated(CellResult, path, result.model_dump()).model_dump_json(indent=2) + "\n")


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


FILE_MODE = 0o666


def _umask() -> int:
    """The process's umask (reading it means setting it; it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename: a reader sees the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE & ~_umask())  # mkstemp makes 0600; a result is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_result(path: Path) -> CellResult:
    """Read and validate one result; anything else is a ResultError naming the file."""
    raw = _read_json(path)
    if not isinstance(raw, dict) or raw.get("schema_version") not in READABLE_VERSIONS:
        found = raw.get("schema_version") if isinstance(raw, dict) else type(raw).__name__
        raise ResultError(
            f"{path}: schema_version {found!r} is not one of {READABLE_VERSIONS}: not a result of this study"
        )
    for version, upgrade in ((1, upgrade_v1), (2, upgrade_v2), (3, upgrade_v3)):
        if raw["schema_version"] == version:
            raw = upgrade(raw)
    return _validated(CellResult, path, raw)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultError(f"{path}: result file is missing (has the cell run?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ResultError(f"{path}: not valid JSON (corrupt or truncated): {error}") from None


SCHEMA_1_GAP = "recorded with result schema 1, before this was measured"


def upgrade_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """Read a schema-1 result as schema 2: keep every measured value, judge its verdict from what it
    holds, and mark what schema 1 did not record (repeat intervals, clocks) as null with that reason."""
    upgraded = {**raw, "schema_version": 2, "headline": None}
    upgraded["backend"] = {**raw["backend"], "memory_seen_by_torch_allocator": True}  # schema 1: torch only
    gpu = GpuUsage.model_validate(raw["gpu"])
    new_gpu_fields = ("sm_clock_min_mhz", "sm_clock_max_mhz", "slowdown_reasons")
    reasons = dict(raw["null_reasons"])
    reasons.update({f"gpu.{name}": SCHEMA_1_GAP for name in new_gpu_fields if f"gpu.{name}" not in reasons})
    if raw["status"] == "ok":
        reasons |= {"headline": SCHEMA_1_GAP, "output_ids": SCHEMA_1_GAP}
    upgraded["null_reasons"] = reasons
    verdict = judge(
        status=raw["status"], error=raw.get("error"), warmup_iterations=raw["warmup_iterations"], headline=None,
        stopping=None, gpu=gpu, memory_seen_by_torch_allocator=True, on_gpu=raw["device"].startswith("cuda"),
        max_cv=1.0,
    )
    upgraded["verdict"] = {
        "status": "warn" if verdict.status == "pass" else verdict.status,
        "reasons": [*verdict.reasons, f"no repeat intervals or clock checks: {SCHEMA_1_GAP}"],
    }
    return upgraded


SCHEMA_2_GAP = "recorded with result schema 2, before this was measured"
SCHEMA_2_GPU_FIELDS = ("memory_clock_min_mhz", "memory_clock_max_mhz", "energy_j", "joules_per_output_token",
                       "output_tokens_per_joule")
# Schema 2 warned on tail percentiles short of samples; schema 3 leaves them null instead (metrics.py).
SCHEMA_2_SAMPLE_WARNING = "too few samples:"
SCHEMA_2_SLOWDOWN_WARNING = "GPU slowed down"


def _null_short_percentiles(stats: dict[str, Any], where: str, reasons: dict[str, str]) -> dict[str, Any]:
    short = {name: None for name, needed in MIN_SAMPLES.items() if stats["n"] < needed}
    reasons.update({f"{where}.{name}": f"{name.upper()} needs >= {MIN_SAMPLES[name]} samples; {stats['n']} were timed"
                    for name in short})
    return {**stats, **short}


def upgrade_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """Read a schema-2 result (a fixed count of timed iterations) as schema 3: its count becomes a stopping
    record of reason `fixed_iterations` (convergence not judged), tail percentiles short of samples become
    null with their reason, the GPU readings schema 2 did not take are null with that reason, and the
    verdict loses its warning about sample counts (which schema 3 no longer gives)."""
    upgraded = {key: value for key, value in raw.items() if key != "iterations"}
    upgraded |= {"schema_version": 3, "processes": 1}
    reasons = dict(raw["null_reasons"])
    reasons.update({f"gpu.{name}": SCHEMA_2_GAP for name in SCHEMA_2_GPU_FIELDS if f"gpu.{name}" not in reasons})
    if raw["status"] == "ok":
        # A percentile bootstrap of fewer than MIN_REPEATS_FOR_INTERVAL repeats spans little more than their range
        # (about 75% coverage for 3): no 95% interval, as schema 3 gives none either.
        headline = {name: {**value, **({"ci_low": None, "ci_high": None}
                                        if value["repeats"] < MIN_REPEATS_FOR_INTERVAL else {})}
                    for name, value in (raw["headline"] or {}).items()}
        upgraded["headline"] = headline or raw["headline"]
        widths = {name: Interval.model_validate(value).half_width for name, value in headline.items()}
        upgraded["stopping"] = {
            "reason": "fixed_iterations", "iterations": raw["iterations"],
            "requests": raw["iterations"] * raw["cell"]["batch_size"], "seconds": raw["phases"].get("measure_s"),
            "converged": None, "target_half_width": None, "half_widths": widths}
        upgraded["latency"] = {metric: _null_short_percentiles(stats, f"latency.{metric}", reasons)
                               for metric, stats in raw["latency"].items()}
    else:
        reasons.setdefault("stopping", f"cell {raw['status']}")
    upgraded["null_reasons"] = reasons
    upgraded["verdict"] = _rejudged(raw)
    return upgraded


def _rejudged(raw: dict[str, Any]) -> dict[str, Any]:
    """An older verdict under today's rules, from what the result holds: the sample-count warning goes; the
    slowdown warning is judged again from the recorded clocks (the oldest cells warned on a violation counter
    alone, schema 3 at a 5% fall, schema 4 at CLOCK_FALL_LIMIT); every other reason (not converged, CV over its
    preset's limit, no warmup, failures) stays as judged then."""
    status = raw["verdict"]["status"]
    if status == "fail":
        return {**raw["verdict"], "comparable": False}
    kept = [reason for reason in raw["verdict"]["reasons"]
            if not reason.startswith((SCHEMA_2_SAMPLE_WARNING, SCHEMA_2_SLOWDOWN_WARNING))]
    slowed = slowdown_warning(GpuUsage.model_validate(raw["gpu"]))
    reasons = ([slowed] if slowed else []) + kept
    biased = bool(slowed) or NO_WARMUP in reasons
    return {"status": "warn" if reasons else "pass", "reasons": reasons, "comparable": not biased}


SCHEMA_3_GAP = "recorded with result schema 3, before this was measured"


def upgrade_v3(raw: dict[str, Any]) -> dict[str, Any]:
    """Read a schema-3 result as schema 4: its compile time and compile-cache use were not recorded, and its
    slowdown warning is judged again at schema 4's limit."""
    reasons = dict(raw["null_reasons"])
    if raw["status"] == "ok":
        reasons.update({"phases.compile_s": SCHEMA_3_GAP, "compile_cache": SCHEMA_3_GAP})
    return {**raw, "schema_version": 4, "null_reasons": reasons, "verdict": _rejudged(raw)}
