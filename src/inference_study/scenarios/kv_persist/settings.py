"""Settings of the scenario: a prefix KV cache saved by one process and loaded by a new one: TTFT cold against warm (import-light: no torch)."""

from __future__ import annotations

from pydantic import Field

from inference_study.scenario import ScenarioSettings
from inference_study.strict import UniquePositive


class KvPersistSettings(ScenarioSettings):
    """A prefix KV cache saved by one process and loaded by another (the persistent-KV write-up)."""

    prefix_lens: UniquePositive = Field(default_factory=lambda: [64, 256])
    suffix_len: int = Field(
        default=16,
        ge=1,
        description="prompt tokens after the prefix: never cached, so "
        "generate prefills them and never re-feeds the whole prompt",
    )
    output_len: int = Field(default=16, ge=2)

    def longest_sequence(self) -> int:
        return max(self.prefix_lens) + self.suffix_len + self.output_len
