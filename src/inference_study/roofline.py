"""The GPU's achievable ceilings, measured once per environment, and what each cell reaches of them.

MBU (model bandwidth utilization) = (weight bytes + KV bytes read per decode step) × decode steps/s
÷ measured memory bandwidth. MFU (model FLOPs utilization) for prefill = prefill FLOPs ÷ TTFT ÷
measured matmul throughput. Datasheet figures are kept beside the measured ones for reference.
"""

from __future__ import annotations

from inference_study.results import CellResult
from inference_study.strict import Record

ROOFLINE_NAME = "roofline.json"  # what the roofline stage writes, and what a report's inputs/ keeps

# Dense (no sparsity) fp16/bf16 tensor-core peak and HBM bandwidth from NVIDIA's datasheets.
DATASHEET = {
    "H100 80GB HBM3": {"bandwidth_gb_s": 3350.0, "fp16_tflops": 989.0},  # H100 SXM5
    "H100 PCIe": {"bandwidth_gb_s": 2000.0, "fp16_tflops": 756.0},
    "H100 NVL": {"bandwidth_gb_s": 3900.0, "fp16_tflops": 835.0},
    "H200": {"bandwidth_gb_s": 4800.0, "fp16_tflops": 989.0},
    "A100-SXM4-80GB": {"bandwidth_gb_s": 2039.0, "fp16_tflops": 312.0},
    "A100 80GB PCIe": {"bandwidth_gb_s": 1935.0, "fp16_tflops": 312.0},
    "A100-SXM4-40GB": {"bandwidth_gb_s": 1555.0, "fp16_tflops": 312.0},
    "L40S": {"bandwidth_gb_s": 864.0, "fp16_tflops": 362.0},
}


class Roofline(Record):
    gpu_name: str | None
    measured_bandwidth_gb_s: float | None
    measured_matmul_tflops: float | None
    matmul_dtype: str
    datasheet_bandwidth_gb_s: float | None
    datasheet_fp16_tflops: float | None
    null_reasons: dict[str, str]


def datasheet_for(gpu_name: str | None) -> dict[str, float]:
    """The datasheet entry whose key is part of the GPU's NVML name, if any."""
    if gpu_name:
        for key, figures in DATASHEET.items():
            if key in gpu_name:
                return figures
    return {}


def _time_cuda(fn, repeats: int) -> float:
    """Median seconds per call, timed with CUDA events after a warmup."""
    import torch  # heavy: torch loads only where something runs on a device

    fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        fn()
        end.record()
        end.synchronize()
        samples.append(begin.elapsed_time(end) / 1000.0)
    return sorted(samples)[len(samples) // 2]


def measure_bandwidth_gb_s(size_bytes: int = 4 << 30, repeats: int = 20) -> float:
    """Device-to-device copy of a large buffer, counting bytes read plus bytes written."""
    import torch  # heavy: torch loads only where something runs on a device

    source = torch.empty(size_bytes, dtype=torch.uint8, device="cuda").random_()
    target = torch.empty_like(source)
    seconds = _time_cuda(lambda: target.copy_(source), repeats)
    return 2 * size_bytes / seconds / 1e9


def measure_matmul_tflops(dtype: str = "float16", n: int = 8192, repeats: int = 20) -> float:
    """A large square matrix product on random data (never zeros: they run faster than real data)."""
    import torch  # heavy: torch loads only where something runs on a device

    a = torch.randn(n, n, dtype=getattr(torch, dtype), device="cuda")
    b = torch.randn(n, n, dtype=getattr(torch, dtype), device="cuda")
    seconds = _time_cuda(lambda: torch.mm(a, b), repeats)
    return 2 * n**3 / seconds / 1e12


def measure_roofline(gpu_name: str | None, dtype: str = "float16") -> Roofline:
    """fp16 by default: on the GPUs listed here bf16 has the same tensor-core peak."""
    """Measure the ceilings on the current CUDA device; on a CPU the fields are null with a reason."""
    import torch  # heavy: torch loads only where something runs on a device

    sheet = datasheet_for(gpu_name)
    reasons: dict[str, str] = {}
    if not sheet:
        why = f"no datasheet entry for GPU {gpu_name!r}"
        reasons |= {"datasheet_bandwidth_gb_s": why, "datasheet_fp16_tflops": why}
    if not torch.cuda.is_available():
        why = "no CUDA device: the roofline is a GPU measurement"
        reasons |= {"measured_bandwidth_gb_s": why, "measured_matmul_tflops": why}
        bandwidth = tflops = None
    else:
        bandwidth, tflops = measure_bandwidth_gb_s(), measure_matmul_tflops(dtype)
    return Roofline(
        gpu_name=gpu_name,
        measured_bandwidth_gb_s=bandwidth,
        measured_matmul_tflops=tflops,
        matmul_dtype=dtype,
        datasheet_bandwidth_gb_s=sheet.get("bandwidth_gb_s"),
        datasheet_fp16_tflops=sheet.get("fp16_tflops"),
        null_reasons=reasons,
    )


def decode_bytes_per_step(result: CellResult) -> float:
    """Bytes one decode step must read: every weight once, plus the K/V of each sequence's context.

    The context grows from input_len to input_len + output_len − 1 over the decode steps; its mean,
    input_len + output_len / 2, stands for all of them. Weights are counted whole, as gpt-fast does.
    """
    cell, model = result.cell, result.model
    mean_context = cell.input_len + cell.output_len / 2
    return model.weight_bytes + model.geometry.kv_bytes_per_token * cell.batch_size * mean_context


def prefill_flops(result: CellResult) -> float:
    """Matmul FLOPs of the prefill: 2 × non-embedding parameters × tokens, plus causal attention."""
    cell, model = result.cell, result.model
    geometry = model.geometry
    embedding_tables = 1 if geometry.tie_word_embeddings else 2  # the LM head runs on one position only
    dense = model.parameters - embedding_tables * geometry.vocab_size * geometry.hidden_size
    tokens = cell.batch_size * cell.input_len
    attention = 2 * geometry.layers * cell.batch_size * cell.input_len**2 * geometry.attention_heads * geometry.head_dim
    return 2 * dense * tokens + attention


def utilization(result: CellResult, roofline: Roofline) -> dict[str, float | None]:
    """MBU of the decode phase and MFU of the prefill (TTFT P50), against measured and datasheet ceilings: one
    GPU's, times the GPUs a tensor-parallel model was sharded over (each reads its shard of the bytes)."""
    if result.status != "ok" or result.model is None:
        return {}
    gpus = result.model.tensor_parallel
    bytes_per_s = decode_bytes_per_step(result) * result.throughput.decode_steps_per_s / gpus
    flops_per_s = prefill_flops(result) / result.latency.ttft_s.p50 / gpus
    return {
        "mbu_pct": _percent(bytes_per_s, roofline.measured_bandwidth_gb_s, 1e9),
        "mbu_datasheet_pct": _percent(bytes_per_s, roofline.datasheet_bandwidth_gb_s, 1e9),
        "prefill_mfu_pct": _percent(flops_per_s, roofline.measured_matmul_tflops, 1e12),
        "prefill_mfu_datasheet_pct": _percent(flops_per_s, roofline.datasheet_fp16_tflops, 1e12),
    }


def _percent(rate: float, ceiling: float | None, unit: float) -> float | None:
    return None if ceiling is None else 100.0 * rate / (ceiling * unit)
