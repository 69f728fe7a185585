"""Measure one bench unit: load, warm up, time N iterations, and assemble a validated result.

The device is synchronized before and after the timed iterations (inside `Backend.generate`, around
each call) and never inside them. A GPU out-of-memory error becomes the cell's recorded outcome.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from inference_study import registry
from inference_study.backend import Backend, Generation
from inference_study.config import BenchSettings, Cell, ModelSpec
from inference_study.environment import Environment
from inference_study.gpu import NvmlSampler, nvml_handle, usage_from
from inference_study.metrics import headline, latency, throughput
from inference_study.models import model_geometry, resolve_model, safetensors_size
from inference_study.plan import BenchUnit
from inference_study.progress import progress
from inference_study.results import (
    BackendInfo,
    CellResult,
    ModelGeometry,
    ModelInfo,
    Phases,
    Tokens,
    Workload,
)
from inference_study.strict import ConfigError
from inference_study.validity import judge
from inference_study.workload import synthetic_input_ids, token_hash

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def resolve_device(requested: str) -> str:
    import torch  # heavy: keeps the core importable without loading torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"bench.device: 'cuda' but torch {torch.__version__} sees no CUDA device; allowed here: auto, cpu")
    return requested


@contextmanager
def _timer(phases: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = time.perf_counter() - start


NVML_FIELDS = ("nvml_device_memory_used_peak_bytes", "utilization_mean_pct", "utilization_max_pct",
               "power_mean_w", "sm_clock_min_mhz", "sm_clock_max_mhz", "slowdown_reasons")
TORCH_CUDA_FIELDS = ("torch_allocated_peak_bytes", "torch_reserved_peak_bytes")


class _GpuWatch:
    """NVML sampling plus torch allocator peaks around the timed region, or reasons why not."""

    def __init__(self, device: str, interval_s: float):
        self.device = device
        self.reasons: dict[str, str] = {}
        self.sampler = None
        if device.startswith("cuda"):
            handle, why = nvml_handle()
            if handle is not None:
                self.sampler = NvmlSampler(handle, interval_s)
            else:
                self._explain(why, *NVML_FIELDS)
        else:
            self._explain(f"device is {device}: no GPU to measure", *NVML_FIELDS, *TORCH_CUDA_FIELDS)

    def _explain(self, why: str, *fields: str) -> None:
        self.reasons.update({f"gpu.{name}": why for name in fields})

    def __enter__(self) -> _GpuWatch:
        if self.device.startswith("cuda"):
            import torch  # heavy: torch loads only where something runs on a device

            torch.cuda.reset_peak_memory_stats()
        if self.sampler:
            self.sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sampler:
            self.sampler.stop()

    def usage(self):
        peaks = None
        if self.device.startswith("cuda"):
            import torch  # heavy: torch loads only where something runs on a device

            peaks = (torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved())
        usage = usage_from(self.sampler, peaks)
        if self.sampler and usage.power_mean_w is None:
            self._explain("NVML reports no power reading on this device", "power_mean_w")
        return usage


def _produced(generations: list[Generation], requested: int) -> Tokens | None:
    """Token counts actually produced per request: the harness never trusts the requested length."""
    counts = [len(ids) for g in generations for ids in g.output_ids]
    if not counts:
        return None
    return Tokens(requested_per_request=requested, produced_min=min(counts), produced_max=max(counts))


def _measure(
    backend: Backend, input_ids: list[list[int]], cell: Cell, bench: BenchSettings, watch: _GpuWatch
) -> tuple[list[Generation], dict[str, float], str, str | None]:
    """Load, warm up and time the backend; an OOM anywhere is the outcome, and the backend is always released."""
    phases: dict[str, float] = {}
    generations: list[Generation] = []
    try:
        with _timer(phases, "load_s"):
            backend.load()
        with _timer(phases, "warmup_s"):
            for _ in progress(range(bench.warmup_iterations), f"warmup {cell.key}"):
                backend.warmup(input_ids, cell.output_len)
        with _timer(phases, "measure_s"), watch:
            for _ in progress(range(bench.iterations), f"measure {cell.key}"):
                generations.append(backend.generate(input_ids, cell.output_len))
    except Exception as error:
        if not backend.is_out_of_memory(error):
            raise
        return [], phases, "oom", f"GPU out of memory: {str(error).splitlines()[0]}"
    finally:
        backend.release()
    return generations, phases, "ok", None


def model_info(name: str, spec: ModelSpec, model_dir: Path, random_weights: bool) -> ModelInfo:
    """What a result records about the model it measured, read from the prepared directory."""
    parameters, weight_bytes = safetensors_size(model_dir)
    return ModelInfo(name=name, source=spec.source, architecture=spec.architecture, dtype=spec.dtype,
                     random_weights=random_weights, parameters=parameters, weight_bytes=weight_bytes,
                     geometry=ModelGeometry(**model_geometry(model_dir, DTYPE_BYTES[spec.dtype])))


def run_cell(unit: BenchUnit, model_stage_dir: Path, environment: Environment) -> CellResult:
    """Measure `unit`; a GPU OOM or a wrong token count is recorded in the result, not raised."""
    cell, bench, settings = unit.cell, unit.bench, unit.settings
    device = resolve_device(bench.device)
    model_dir, provenance = resolve_model(model_stage_dir)
    model = model_info(cell.model, unit.model, model_dir, provenance["random_weights"])
    input_ids = synthetic_input_ids(cell.batch_size, cell.input_len, model.geometry.vocab_size, bench.seed)
    backend: Backend = registry.backend_class(cell.backend)(settings, model_dir, unit.model.dtype, device)
    watch = _GpuWatch(device, bench.gpu_sample_interval_ms / 1000)
    generations, phases, status, error = _measure(backend, input_ids, cell, bench, watch)
    tokens = _produced(generations, cell.output_len)
    if tokens and (tokens.produced_min, tokens.produced_max) != (cell.output_len, cell.output_len):
        status = "failed"
        error = f"produced {tokens.produced_min}..{tokens.produced_max} tokens per request, requested {cell.output_len}"
    measured = status == "ok"
    cell_latency = latency(generations) if measured else None
    cell_headline = headline(generations) if measured else None
    gpu_usage = watch.usage()
    verdict = judge(
        status=status, error=error, warmup_iterations=bench.warmup_iterations, latency=cell_latency,
        headline=cell_headline, gpu=gpu_usage, memory_seen_by_torch_allocator=backend.memory_seen_by_torch_allocator,
        on_gpu=device.startswith("cuda"), max_cv=bench.max_cv,
    )
    null_reasons = dict(watch.reasons)
    if not measured:
        null_reasons.update({f"phases.{k}": f"cell {status}" for k in ("load_s", "warmup_s", "measure_s")
                             if k not in phases})
    return CellResult(
        status=status,
        error=error,
        cell=cell,
        config_hash=unit.config_hash,
        device=device,
        warmup_iterations=bench.warmup_iterations,
        iterations=bench.iterations,
        model=model,
        backend=BackendInfo(
            name=cell.backend,
            description=backend.description,
            settings=settings.model_dump(),
            memory_seen_by_torch_allocator=backend.memory_seen_by_torch_allocator,
        ),
        workload=Workload(seed=bench.seed, input_token_hash=token_hash(input_ids)),
        environment=environment,
        environment_fingerprint=environment.fingerprint,
        tokens=tokens,
        latency=cell_latency,
        throughput=throughput(generations, cell.input_len) if measured else None,
        headline=cell_headline,
        verdict=verdict,
        output_ids=generations[-1].output_ids if measured else None,
        gpu=gpu_usage,
        phases=Phases(**phases),
        null_reasons=null_reasons,
    )
