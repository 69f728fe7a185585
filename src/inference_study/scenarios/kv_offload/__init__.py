"""A device KV pool of about one request, prompts A,B,A,B, with and without a host cache: block reuse and TTFT."""

from __future__ import annotations

from inference_study.registry import ScenarioSpec
from inference_study.scenarios.kv_offload.record import KvOffloadRecord
from inference_study.scenarios.kv_offload.settings import KvOffloadSettings

SCENARIO = ScenarioSpec(
    name="kv_offload",
    title="KV offload to a host cache, prompts A,B,A,B",
    settings=KvOffloadSettings,
    record=KvOffloadRecord,
    runner="inference_study.scenarios.kv_offload.runner:run",
    report="inference_study.scenarios.kv_offload.report:tables",
    variants={"hf": None, "trtllm_pytorch": "kv_host_cache"},  # the TensorRT-LLM variant and the feature its preflight checks
)
