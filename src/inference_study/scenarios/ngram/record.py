"""The result record of the scenario: prompt-lookup (n-gram) speculative decoding against plain greedy, over draft length x n-gram size x workload (import-light: no torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from inference_study.scenario import ScenarioRecord
from inference_study.scenarios.records import Divergence, Expectation, Record


class NgramWorkloadInfo(Record):
    """A workload of the n-gram scenario and how much its greedy output repeats earlier n-grams."""

    name: Literal["high_overlap", "low_overlap"]
    construction: str
    prompt_len: int
    output_len: int
    overlap_ngram: int
    prompt_overlap: float = Field(description="share of output n-grams that occur in the prompt")
    context_overlap: float = Field(
        description="share of output n-grams that occur in the prompt or earlier "
        "output: what prompt lookup can find"
    )
    greedy_tokens_per_s: float
    greedy_output_ids: list[int]

class NgramRow(Record):
    """One draft length × n-gram size on one workload, against that workload's plain greedy run."""

    workload: Literal["high_overlap", "low_overlap"]
    draft_len: int
    ngram_size: int
    tokens_per_s: float
    speedup: float
    proposed_tokens: int
    accepted_tokens: int
    acceptance_rate: float | None
    forward_passes: int
    tokens_per_forward: float
    identical_to_greedy: bool

class NgramRecord(ScenarioRecord):
    scenario: Literal["ngram"] = "ngram"
    record_version: Literal[1] = 1
    workloads: list[NgramWorkloadInfo]
    rows: list[NgramRow]
    divergences: list[Divergence] = Field(
        default=[], description="first divergence of each output that differs from its reference"
    )
    expectation: Expectation
