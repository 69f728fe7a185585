"""Build realistic, valid results without running a model (for schema, roofline and report tests)."""

from __future__ import annotations

from inference_study.backend import Generation
from inference_study.config import Cell
from inference_study.environment import Environment, collect_environment
from inference_study.gpu import GpuUsage
from inference_study.metrics import headline, latency, throughput
from inference_study.results import (
    BackendInfo, CellResult, ModelGeometry, ModelInfo, Phases, Tokens, Workload,
)
from inference_study.validity import Verdict
from inference_study.workload import synthetic_input_ids, token_hash

TINY_GEOMETRY = ModelGeometry(layers=2, hidden_size=64, attention_heads=4, kv_heads=2, head_dim=16,
                              vocab_size=1024, tie_word_embeddings=False, dtype_bytes=4)
GPU_FIELDS = [name for name in GpuUsage.model_fields if name != "samples"]


def generations(cell: Cell, step_s: float, iterations: int = 2) -> list[Generation]:
    """Timed iterations where every token takes `step_s` after a first token at 2 × step_s."""
    out = []
    for iteration in range(iterations):
        start = 10.0 * (iteration + 1)
        times = [start + step_s * (k + 2) for k in range(cell.output_len)]
        ids = [[11 + k for k in range(cell.output_len)]] * cell.batch_size
        out.append(Generation(output_ids=ids, start=start, token_times=[times] * cell.batch_size))
    return out


def make_result(cell: Cell, step_s: float = 0.01, status: str = "ok",
                environment: Environment | None = None, config_hash: str = "6ed7028150fe0007") -> CellResult:
    """A CPU result of `cell`; `status` other than ok gives the shape the harness records for it."""
    environment = environment or collect_environment()
    measured = status == "ok"
    timed = generations(cell, step_s) if measured else []
    reasons = {f"gpu.{name}": "device is cpu: no GPU to measure" for name in GPU_FIELDS}
    if not measured:
        reasons |= {f"phases.{k}": f"cell {status}" for k in ("warmup_s", "measure_s")}
    return CellResult(
        status=status,
        error=None if measured else "GPU out of memory: CUDA out of memory. Tried to allocate 2.00 GiB",
        cell=cell,
        config_hash=config_hash,
        device="cpu",
        warmup_iterations=1,
        iterations=len(timed) or 2,
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
        latency=latency(timed) if measured else None,
        throughput=throughput(timed, cell.input_len) if measured else None,
        headline=headline(timed) if measured else None,
        output_ids=timed[-1].output_ids if measured else None,
        verdict=Verdict(status="warn", reasons=["too few samples: P99 from 4 requests (needs >= 100)"])
        if measured else Verdict(status="fail", reasons=[f"no measurement ({status})"]),
        gpu=GpuUsage(),
        phases=Phases(load_s=0.03, warmup_s=0.18, measure_s=0.23) if measured else Phases(load_s=0.03),
        null_reasons=reasons,
    )
