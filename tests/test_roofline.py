"""MBU and MFU arithmetic against hand-computed values, and the roofline's CPU behaviour."""

from __future__ import annotations

import pytest
import torch

from helpers.factories import make_result

from inference_study.config import Cell
from inference_study.results import ModelGeometry
from inference_study.roofline import (
    Roofline,
    datasheet_for,
    decode_bytes_per_step,
    measure_roofline,
    prefill_flops,
    utilization,
)

# A toy geometry: 2 layers, 4 heads of 8 dims (2 KV heads), vocab 100, fp16.
GEOMETRY = ModelGeometry(layers=2, hidden_size=32, attention_heads=4, kv_heads=2, head_dim=8, vocab_size=100,
                         tie_word_embeddings=False, dtype_bytes=2)
PARAMETERS, WEIGHT_BYTES = 20_000, 40_000


def _result(batch: int = 2, input_len: int = 10, output_len: int = 4, ttft: float = 0.01, steps: float = 100.0):
    """A result with the toy geometry and exactly the given TTFT P50 and decode rate."""
    result = make_result(Cell(model="m", backend="hf_eager", batch_size=batch, input_len=input_len,
                              output_len=output_len))
    model = result.model.model_copy(update={"parameters": PARAMETERS, "weight_bytes": WEIGHT_BYTES,
                                            "geometry": GEOMETRY})
    ttft_stats = result.latency.ttft_s.model_copy(update={"p50": ttft})
    return result.model_copy(update={
        "model": model,
        "latency": result.latency.model_copy(update={"ttft_s": ttft_stats}),
        "throughput": result.throughput.model_copy(update={"decode_steps_per_s": steps}),
    })


def test_kv_bytes_per_token() -> None:
    # K and V × 2 layers × 2 KV heads × 8 dims × 2 bytes
    assert GEOMETRY.kv_bytes_per_token == 2 * 2 * 2 * 8 * 2 == 128


def test_decode_bytes_per_step_counts_weights_and_mean_context() -> None:
    # weights 40,000 + 128 bytes/token × batch 2 × mean context (10 + 4/2 = 12) = 40,000 + 3,072
    assert decode_bytes_per_step(_result()) == 43_072


def test_prefill_flops() -> None:
    # dense: 2 × (20,000 − 2 × 100 × 32) × (2 × 10 tokens) = 2 × 13,600 × 20 = 544,000
    # causal attention, QK^T and PV each half of 2 × I² × heads × dims: 2 × 2 layers × 2 batch × 10² × 4 × 8 = 25,600
    assert prefill_flops(_result()) == 544_000 + 25_600


def test_utilization_against_measured_and_datasheet() -> None:
    roofline = Roofline(gpu_name="g", measured_bandwidth_gb_s=1e-3, measured_matmul_tflops=1e-6,
                        matmul_dtype="float16", datasheet_bandwidth_gb_s=2e-3, datasheet_fp16_tflops=None,
                        null_reasons={"datasheet_fp16_tflops": "none"})
    values = utilization(_result(steps=10.0, ttft=0.1), roofline)
    # 43,072 bytes × 10 steps/s = 430,720 B/s against 1e6 B/s measured → 43.072 %; datasheet 2e6 → 21.536 %
    assert values["mbu_pct"] == pytest.approx(43.072)
    assert values["mbu_datasheet_pct"] == pytest.approx(21.536)
    # 569,600 FLOPs / 0.1 s = 5.696e6 FLOP/s against 1e6 → 569.6 %; no datasheet figure → None
    assert values["prefill_mfu_pct"] == pytest.approx(569.6)
    assert values["prefill_mfu_datasheet_pct"] is None


def test_utilization_of_a_tensor_parallel_model_is_over_all_its_gpus() -> None:
    """Each of N GPUs reads its shard of the step's bytes: the ceiling is N GPUs' bandwidth."""
    roofline = Roofline(gpu_name="g", measured_bandwidth_gb_s=1e-3, measured_matmul_tflops=1e-6,
                        matmul_dtype="float16", datasheet_bandwidth_gb_s=2e-3, datasheet_fp16_tflops=None,
                        null_reasons={"datasheet_fp16_tflops": "none"})
    one = _result(steps=10.0, ttft=0.1)
    two = one.model_copy(update={"model": one.model.model_copy(update={"tensor_parallel": 2})})
    single, sharded = utilization(one, roofline), utilization(two, roofline)
    for name in ("mbu_pct", "mbu_datasheet_pct", "prefill_mfu_pct"):
        assert sharded[name] == pytest.approx(single[name] / 2)


def test_datasheet_lookup_by_nvml_name() -> None:
    assert datasheet_for("NVIDIA H100 80GB HBM3")["bandwidth_gb_s"] == 3350.0
    assert datasheet_for("NVIDIA GeForce GTX 1080") == {}
    assert datasheet_for(None) == {}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU behaviour")
def test_roofline_on_cpu_is_null_with_reasons() -> None:
    roofline = measure_roofline(None)
    assert roofline.measured_bandwidth_gb_s is None and roofline.measured_matmul_tflops is None
    assert "no CUDA device" in roofline.null_reasons["measured_bandwidth_gb_s"]
    assert "no datasheet entry" in roofline.null_reasons["datasheet_bandwidth_gb_s"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_roofline_on_gpu_is_below_the_datasheet() -> None:
    roofline = measure_roofline(torch.cuda.get_device_name())
    assert 0 < roofline.measured_bandwidth_gb_s
    assert 0 < roofline.measured_matmul_tflops
    if roofline.datasheet_bandwidth_gb_s:
        assert roofline.measured_bandwidth_gb_s < 1.1 * roofline.datasheet_bandwidth_gb_s
