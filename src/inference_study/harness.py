"""Measure one bench unit: load, warm up, time iterations until the stopping rule says stop, and assemble
a validated result.

The device is synchronized before and after each timed iteration (inside `Backend.generate`, around each
call) and never inside one. A GPU out-of-memory error becomes the cell's recorded outcome. With
`bench.processes` > 1 the whole measurement (load, warmup, timed loop) runs once in each of that many
fresh processes, and the intervals are over processes (uncertainty.py).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from inference_study import registry
from inference_study.backend import Backend, CompileCacheUse, Generation
from inference_study.config import ModelSpec
from inference_study.environment import Environment
from inference_study.gpu import (
    GpuUsage,
    NvmlSampler,
    combined,
    nvml_handle,
    usage_from,
    with_energy_per_token,
)
from inference_study.metrics import headline, iteration_headline, latency, throughput
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
from inference_study.stopping import Stopping, StoppingRule, half_widths, run_until_converged, within_target
from inference_study.strict import ConfigError
from inference_study.uncertainty import Interval
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
               "power_mean_w", "sm_clock_min_mhz", "sm_clock_max_mhz", "memory_clock_min_mhz",
               "memory_clock_max_mhz", "slowdown_reasons", "energy_j", "joules_per_output_token",
               "output_tokens_per_joule")
ENERGY_FIELDS = ("energy_j", "joules_per_output_token", "output_tokens_per_joule")
TORCH_CUDA_FIELDS = ("torch_allocated_peak_bytes", "torch_reserved_peak_bytes")


class _GpuWatch:
    """NVML sampling plus torch allocator peaks around the timed region, or reasons why not."""

    def __init__(self, device: str, interval_s: float):
        self.device = device
        self.reasons: dict[str, str] = {}
        self.sampler = None
        self.entered = False
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
        self.entered = True
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
        """The readings of the timed region; none, with the reason, for a cell that stopped before it."""
        if self.device.startswith("cuda") and not self.entered:
            self._explain("the cell stopped before its timed region", *NVML_FIELDS, *TORCH_CUDA_FIELDS)
            return GpuUsage()
        peaks = None
        if self.device.startswith("cuda"):
            import torch  # heavy: torch loads only where something runs on a device

            peaks = (torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved())
        usage = usage_from(self.sampler, peaks)
        if self.sampler and usage.power_mean_w is None:
            self._explain("NVML reports no power reading on this device", "power_mean_w")
        if self.sampler and usage.energy_j is None:
            self._explain("NVML's energy counter gave no reading over the timed region (unsupported here, or it "
                          "did not advance)", *ENERGY_FIELDS)
        return usage


def _produced(generations: list[Generation], requested: int) -> Tokens | None:
    """Token counts actually produced per request: the harness never trusts the requested length."""
    counts = [len(ids) for g in generations for ids in g.output_ids]
    if not counts:
        return None
    return Tokens(requested_per_request=requested, produced_min=min(counts), produced_max=max(counts))


@dataclass
class Measured:
    """What one process's measurement of a cell gave: its timed iterations, how the loop stopped, and its
    phases and GPU readings; `status` "oom" when the device ran out of memory anywhere."""

    generations: list[Generation] = field(default_factory=list)
    per_iteration: list[dict[str, float]] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    stopping: Stopping | None = None
    status: str = "ok"
    error: str | None = None
    gpu: GpuUsage | None = None
    gpu_reasons: dict[str, str] = field(default_factory=dict)
    compile_cache: CompileCacheUse | None = None


def _measure(unit: BenchUnit, model_dir: Path, device: str, input_ids: list[list[int]]) -> Measured:
    """Load, warm up and time the backend until the stopping rule says stop; an OOM anywhere is the outcome,
    and the backend is always released."""
    cell, bench = unit.cell, unit.bench
    backend: Backend = registry.backend_class(cell.backend)(unit.settings, model_dir, unit.model.dtype, device)
    watch = _GpuWatch(device, bench.gpu_sample_interval_ms / 1000)
    measured = Measured()

    def iterate() -> int:
        generation = backend.generate(input_ids, cell.output_len)
        measured.generations.append(generation)
        measured.per_iteration.append(iteration_headline(generation))
        return len(generation.token_times)

    def intervals() -> dict[str, Interval]:
        return dict(headline([measured.per_iteration]))

    try:
        with _timer(measured.phases, "load_s"):
            backend.load()
        with _timer(measured.phases, "warmup_s"):
            for _ in progress(range(bench.warmup_iterations), f"warmup {cell.key}"):
                backend.warmup(input_ids, cell.output_len)
        with _timer(measured.phases, "measure_s"), watch:
            measured.stopping = run_until_converged(iterate, intervals, bench.stopping)
    except Exception as error:
        if not backend.is_out_of_memory(error):
            raise
        measured.generations, measured.per_iteration = [], []
        measured.status, measured.error = "oom", f"GPU out of memory: {str(error).splitlines()[0]}"
    finally:
        compiled = backend.compile_report()  # before release, so a cell that ran out of memory still reports it
        backend.release()
    if compiled is not None:
        measured.phases["compile_s"], measured.compile_cache = compiled.compile_s, compiled.cache
    measured.gpu, measured.gpu_reasons = watch.usage(), dict(watch.reasons)
    return measured


def _measure_in_fresh_processes(unit: BenchUnit, model_dir: Path, device: str,
                                input_ids: list[list[int]]) -> list[Measured]:
    """The measurement once in each of `bench.processes` fresh (spawned) processes, one after another."""
    if unit.bench.processes == 1:
        return [_measure(unit, model_dir, device, input_ids)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, maxtasksperchild=1) as pool:
        return [pool.apply(_measure, (unit, model_dir, device, input_ids)) for _ in range(unit.bench.processes)]


def _pooled(runs: list[Measured], rule: StoppingRule) -> Measured:
    """One process's measurement as it is; several pooled, with the stopping record judged on the pooled
    (hierarchical) intervals and the GPU readings combined (gpu.combined)."""
    if len(runs) == 1:
        return runs[0]
    failed = next((run for run in runs if run.status != "ok"), None)
    pooled = Measured(generations=[g for run in runs for g in run.generations],
                      per_iteration=[v for run in runs for v in run.per_iteration],
                      phases={name: sum(run.phases.get(name, 0.0) for run in runs) for name in runs[0].phases},
                      gpu=combined([run.gpu for run in runs]),
                      gpu_reasons={k: v for run in runs for k, v in run.gpu_reasons.items()},
                      compile_cache=CompileCacheUse.combined([r.compile_cache for r in runs])
                      if all(r.compile_cache for r in runs) else None)
    if failed is not None:
        pooled.status, pooled.error = failed.status, failed.error
        return pooled
    widths = half_widths(dict(headline([run.per_iteration for run in runs])))
    reasons = [run.stopping.reason for run in runs]
    agreed = within_target(widths, rule.target_half_width)
    pooled.stopping = Stopping(
        reason=next((r for r in reasons if r != "converged"), "converged" if agreed else "processes_disagree"),
        iterations=sum(run.stopping.iterations for run in runs), requests=sum(run.stopping.requests for run in runs),
        seconds=sum(run.stopping.seconds or 0.0 for run in runs), converged=agreed and set(reasons) == {"converged"},
        target_half_width=rule.target_half_width, half_widths=widths)
    return pooled


def model_info(name: str, spec: ModelSpec, model_dir: Path, random_weights: bool) -> ModelInfo:
    """What a result records about the model it measured, read from the prepared directory."""
    parameters, weight_bytes = safetensors_size(model_dir)
    return ModelInfo(name=name, source=spec.source, architecture=spec.architecture, dtype=spec.dtype,
                     random_weights=random_weights, parameters=parameters, weight_bytes=weight_bytes,
                     geometry=ModelGeometry(**model_geometry(model_dir, DTYPE_BYTES[spec.dtype])),
                     tensor_parallel=spec.tensor_parallel)


def run_cell(unit: BenchUnit, model_stage_dir: Path, environment: Environment) -> CellResult:
    """Measure `unit`; a GPU OOM or a wrong token count is recorded in the result, not raised."""
    cell, bench, settings = unit.cell, unit.bench, unit.settings
    if bench.stopping is None:
        raise ConfigError("bench.stopping: required to measure (a fixed bench.iterations only reads old results)")
    device = resolve_device(bench.device)
    model_dir, provenance = resolve_model(model_stage_dir)
    model = model_info(cell.model, unit.model, model_dir, provenance["random_weights"])
    input_ids = synthetic_input_ids(cell.batch_size, cell.input_len, model.geometry.vocab_size, bench.seed)
    backend_class = registry.backend_class(cell.backend)
    runs = _measure_in_fresh_processes(unit, model_dir, device, input_ids)
    run = _pooled(runs, bench.stopping)
    generations, status, error = run.generations, run.status, run.error
    tokens = _produced(generations, cell.output_len)
    if tokens and (tokens.produced_min, tokens.produced_max) != (cell.output_len, cell.output_len):
        status = "failed"
        error = f"produced {tokens.produced_min}..{tokens.produced_max} tokens per request, requested {cell.output_len}"
    measured = status == "ok"
    cell_latency = latency(generations) if measured else None
    cell_headline = headline([r.per_iteration for r in runs]) if measured else None
    gpu_usage = with_energy_per_token(run.gpu, sum(len(t) for g in generations for t in g.token_times))
    shard_reasons = {}
    if unit.model.tensor_parallel > 1:  # NVML is read on rank 0's GPU: its energy is one shard's of N
        gpu_usage = gpu_usage.model_copy(update=dict.fromkeys(ENERGY_FIELDS))
        shard_reasons = {f"gpu.{name}": f"tensor parallel over {unit.model.tensor_parallel} GPUs: rank 0 reads its "
                         "own GPU only, so energy per token would leave the others out" for name in ENERGY_FIELDS}
    stopping = run.stopping if measured else None
    verdict = judge(
        status=status, error=error, warmup_iterations=bench.warmup_iterations, headline=cell_headline,
        stopping=stopping, gpu=gpu_usage, memory_seen_by_torch_allocator=backend_class.memory_seen_by_torch_allocator,
        on_gpu=device.startswith("cuda"), max_cv=bench.max_cv,
    )
    null_reasons = dict(run.gpu_reasons) | shard_reasons
    unread = f"cell {status}: no completed timed region to read" if not measured else "NVML gave no reading for it"
    null_reasons.update({f"gpu.{name}": unread for name, value in gpu_usage if value is None
                         and f"gpu.{name}" not in null_reasons})
    if cell_latency is not None:
        null_reasons.update(cell_latency.missing_percentiles())
    if run.compile_cache is None:
        null_reasons |= {name: f"no compile report: {cell.backend} compiles nothing itself, or no warmup call "
                               "finished" for name in ("phases.compile_s", "compile_cache")}
    if not measured:
        null_reasons.update({f"phases.{k}": f"cell {status}" for k in ("load_s", "warmup_s", "measure_s")
                             if k not in run.phases})
        null_reasons["stopping"] = f"cell {status}"
    return CellResult(
        status=status,
        error=error,
        cell=cell,
        config_hash=unit.config_hash,
        device=device,
        warmup_iterations=bench.warmup_iterations,
        stopping=stopping,
        processes=bench.processes,
        model=model,
        backend=BackendInfo(
            name=cell.backend,
            description=registry.description(cell.backend),
            settings=settings.model_dump(),
            memory_seen_by_torch_allocator=backend_class.memory_seen_by_torch_allocator,
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
        phases=Phases(**run.phases),
        compile_cache=run.compile_cache,
        null_reasons=null_reasons,
    )
