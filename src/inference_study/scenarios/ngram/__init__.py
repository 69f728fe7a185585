"""Prompt-lookup (n-gram) speculative decoding against plain greedy, over draft length x n-gram size x workload."""

from __future__ import annotations

from inference_study.registry import ScenarioSpec
from inference_study.scenarios.ngram.record import NgramRecord
from inference_study.scenarios.ngram.settings import NgramSettings

SCENARIO = ScenarioSpec(
    name="ngram",
    title="n-gram speculative decoding (prompt lookup)",
    settings=NgramSettings,
    record=NgramRecord,
    runner="inference_study.scenarios.ngram.runner:run",
    report="inference_study.scenarios.ngram.report:tables",
    variants={"hf": None, "trtllm_pytorch": "ngram"},  # the TensorRT-LLM variant and the feature its preflight checks
)
