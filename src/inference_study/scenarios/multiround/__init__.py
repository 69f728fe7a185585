"""U users x R rounds of chat, round-robin, with and without KV reuse and a host tier: TTFT per round, hit rate."""

from __future__ import annotations

from inference_study.registry import ScenarioSpec
from inference_study.scenarios.multiround.record import MultiroundRecord
from inference_study.scenarios.multiround.settings import MultiroundSettings

SCENARIO = ScenarioSpec(
    name="multiround",
    title="Multi-round chat: U users x R rounds, KV reuse and host offload",
    settings=MultiroundSettings,
    record=MultiroundRecord,
    runner="inference_study.scenarios.multiround.runner:run",
    report="inference_study.scenarios.multiround.report:tables",
    variants={"hf": None, "trtllm_pytorch": "kv_host_cache"},  # the TensorRT-LLM variant and the feature its preflight checks
    ranks="torchrun",  # the original ran Llama-3.1-70B, which needs several GPUs
)
