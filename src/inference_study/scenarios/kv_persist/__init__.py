"""A prefix KV cache saved by one process and loaded by a new one: TTFT cold against warm."""

from __future__ import annotations

from inference_study.registry import ScenarioSpec
from inference_study.scenarios.kv_persist.record import KvPersistRecord
from inference_study.scenarios.kv_persist.settings import KvPersistSettings

SCENARIO = ScenarioSpec(
    name="kv_persist",
    title="Persistent prefix KV cache across instances",
    settings=KvPersistSettings,
    record=KvPersistRecord,
    runner="inference_study.scenarios.kv_persist.runner:run",
    report="inference_study.scenarios.kv_persist.report:tables",
    variants={"hf": None, "trtllm_pytorch": "kv_connector"},  # the TensorRT-LLM variant and the feature its preflight checks
)
