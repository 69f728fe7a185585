"""Build realistic, valid results without running a model (for schema, roofline and report tests).

A result is assembled the way the harness assembles one: per-iteration headline repeats, a stopping record
judged against a target half-width, and a verdict from `validity.judge`; so a result of 2 timed iterations
(too few for an interval) is honestly not converged and warns, and one of 8 identical iterations passes.
"""

from __future__ import annotations

import zlib

import numpy as np

from inference_study.backend import Generation
from inference_study.config import Cell
from inference_study.environment import Environment, collect_environment
from inference_study.gpu import GpuUsage
from inference_study.metrics import headline, iteration_headline, latency, throughput
from inference_study.results import (
    BackendInfo,
    CellResult,
    ModelGeometry,
    ModelInfo,
    Phases,
    Tokens,
    Workload,
)
from inference_study.stopping import Stopping, half_widths, within_target
from inference_study.validity import judge
from inference_study.workload import synthetic_input_ids, token_hash

TINY_GEOMETRY = ModelGeometry(layers=2, hidden_size=64, attention_heads=4, kv_heads=2, head_dim=16,
                              vocab_size=1024, tie_word_embeddings=False, dtype_bytes=4)
GPU_FIELDS = [name for name in GpuUsage.model_fields if name != "samples"]
TARGET_HALF_WIDTH = 0.05
MAX_CV = 0.25  # conf/bench/cpu.yaml's limit


def generations(cell: Cell, step_s: float, iterations: int = 2, jitter: float = 0.0) -> list[Generation]:
    """Timed iterations where every token takes the iteration's step after a first token at 2 × that step.

    With `jitter`, each iteration's step is `step_s` × (1 + jitter × u), u uniform in [-1, 1] from a generator
    seeded by the cell, so repeats differ (as on a real machine) yet every run of a test sees the same ones.
    """
    spread = np.random.default_rng(zlib.crc32(cell.key.encode())).uniform(-1, 1, iterations) * jitter
    out = []
    for iteration, factor in enumerate(1 + spread):
        start = 10.0 * (iteration + 1)
        times = [start + step_s * factor * (k + 2) for k in range(cell.output_len)]
        ids = [[11 + k for k in range(cell.output_len)]] * cell.batch_size
        out.append(Generation(output_ids=ids, start=start, token_times=[times] * cell.batch_size))
    return out


def make_result(cell: Cell, step_s: float = 0.01, status: str = "ok",
                environment: Environment | None = None, config_hash: str = "6ed7028150fe0007",
                iterations: int = 2, jitter: float = 0.0) -> CellResult:
    """A CPU result of `cell` from `iterations` timed iterations; `status` other than ok gives the shape the
    harness records for it."""
    environment = environment or collect_environment()
    measured = status == "ok"
    timed = generations(cell, step_s, iterations, jitter) if measured else []
    error = None if measured else "GPU out of memory: CUDA out of memory. Tried to allocate 2.00 GiB"
    reasons = {f"gpu.{name}": "device is cpu: no GPU to measure" for name in GPU_FIELDS}
    reasons |= {name: f"no compile report: {cell.backend} compiles nothing itself, or no warmup call finished"
                for name in ("phases.compile_s", "compile_cache")}
    cell_latency = latency(timed) if measured else None
    cell_headline = headline([[iteration_headline(g) for g in timed]]) if measured else None
    stopping = None
    if measured:
        reasons |= cell_latency.missing_percentiles()
        widths = half_widths(dict(cell_headline))
        converged = within_target(widths, TARGET_HALF_WIDTH)
        stopping = Stopping(reason="converged" if converged else "max_seconds", iterations=len(timed),
                            requests=len(timed) * cell.batch_size, seconds=0.23, converged=converged,
                            target_half_width=TARGET_HALF_WIDTH, half_widths=widths)
    else:
        reasons |= {f"phases.{k}": f"cell {status}" for k in ("warmup_s", "measure_s")} | {"stopping": f"cell {status}"}
    gpu = GpuUsage()
    return CellResult(
        status=status,
        error=error,
        cell=cell,
        config_hash=config_hash,
        device="cpu",
        warmup_iterations=1,
        stopping=stopping,
        model=ModelInfo(name=cell.model, source="random", architecture="llama", dtype="float32",
                        random_weights=True, parameters=205120, weight_bytes=820480, geometry=TINY_GEOMETRY),
        backend=BackendInfo(name=cell.backend, description="a backend", settings={"attn_implementation": "sdpa"},
                            memory_seen_by_torch_allocator=True),
        workload=Workload(seed=0, input_token_hash=token_hash(
            synthetic_input_ids(cell.batch_size, cell.input_len, 1024, 0))),
        environment=environment,
        environment_fingerprint=environment.fingerprint,
        tokens=Tokens(requested_per_request=cell.output_len, produced_min=cell.output_len,
                      produced_max=cell.output_len) if measured else None,
        latency=cell_latency,
        throughput=throughput(timed, cell.input_len) if measured else None,
        headline=cell_headline,
        output_ids=timed[-1].output_ids if measured else None,
        verdict=judge(status=status, error=error, warmup_iterations=1, headline=cell_headline, stopping=stopping,
                      gpu=gpu, memory_seen_by_torch_allocator=True, on_gpu=False, max_cv=MAX_CV),
        gpu=gpu,
        phases=Phases(load_s=0.03, warmup_s=0.18, measure_s=0.23) if measured else Phases(load_s=0.03),
        null_reasons=reasons,
    )
