"""Settings of the scenario: prompt-lookup (n-gram) speculative decoding against plain greedy, over draft length x n-gram size x workload (import-light: no torch)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from inference_study.scenario import ScenarioSettings
from inference_study.strict import PositiveInt, UniquePositive, unique

NgramWorkload = Literal["high_overlap", "low_overlap"]

class NgramSettings(ScenarioSettings):
    """Prompt-lookup speculative decoding (the n-gram speculation write-up): draft length × n-gram size × workload."""

    prompt_len: int = Field(default=128, ge=16, description="the workload builder seeds with 16 tokens")
    output_len: int = Field(default=64, ge=2)
    draft_lens: UniquePositive = Field(default_factory=lambda: [2, 4, 8])
    ngram_sizes: UniquePositive = Field(default_factory=lambda: [1, 2, 3])
    workloads: Annotated[list[NgramWorkload], Field(min_length=1), AfterValidator(unique)] = Field(
        default_factory=lambda: ["high_overlap", "low_overlap"])
    overlap_ngram: PositiveInt = Field(default=2, description="n of the reported workload n-gram overlap")

    def longest_sequence(self) -> int:
        return self.prompt_len + self.output_len
