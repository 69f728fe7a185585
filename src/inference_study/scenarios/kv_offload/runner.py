"""The kv_offload scenario's entry point: the transformers arms, and the TensorRT-LLM arms when the unit resolves
`trtllm_pytorch` settings (the preflight has checked that TensorRT-LLM is installed)."""

from __future__ import annotations

from pathlib import Path

from inference_study.plan import ScenarioUnit
from inference_study.scenarios.common import policy
from inference_study.scenarios.kv_offload.record import KvOffloadRecord
from inference_study.scenarios.kv_offload.run import run_kv_offload
from inference_study.scenarios.kv_offload.trtllm import trtllm_arms


def run(unit: ScenarioUnit, model_dir: Path, device: str, vocab_size: int) -> KvOffloadRecord:
    timing = policy(unit)
    pytorch = unit.variant_settings.get("trtllm_pytorch")
    trtllm = trtllm_arms(unit.settings, pytorch, model_dir, unit.model.dtype, device, timing) if pytorch else None
    return run_kv_offload(unit.settings, model_dir, unit.model.dtype, device, vocab_size, unit.bench.seed, timing,
                          trtllm)
