"""Settings of the scenario: a device KV pool of about one request, prompts A,B,A,B, with and without a host cache: block reuse and TTFT (import-light: no torch)."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from inference_study.scenario import ScenarioSettings
from inference_study.strict import PositiveInt


class KvOffloadSettings(ScenarioSettings):
    """A KV pool that holds about one request, block reuse on, prompts A,B,A,B, with and without a host
    cache (the KV host-offload benchmarks)."""

    prompt_len: int = Field(default=96, ge=2)
    output_len: int = Field(default=32, ge=1)
    tokens_per_block: int = Field(default=16, ge=4, description="transformers' paged minimum is 4")
    gpu_pool_tokens: int = Field(
        default=128, description="device KV pool; one request (prompt + output) must fit, a second should not"
    )
    host_cache_tokens: PositiveInt = Field(default=4096, description="host tier of the offload arm")

    @field_validator("tokens_per_block")
    @classmethod
    def _prompt_fills_a_block(cls, value: int, info: ValidationInfo) -> int:
        """Reuse counts full blocks before the prompt's last token: a prompt without one reuses nothing."""
        if info.data.get("prompt_len", value + 1) - 1 < value:
            raise ValueError(f"{value}-token blocks leave no full block before the last prompt token")
        return value

    @field_validator("gpu_pool_tokens")
    @classmethod
    def _holds_a_block_and_a_request(cls, value: int, info: ValidationInfo) -> int:
        block = info.data.get("tokens_per_block", 1)
        request = info.data.get("prompt_len", 0) + info.data.get("output_len", 0)
        if value < max(block, request):
            raise ValueError(
                f"a KV pool of {value} tokens holds less than one block ({block} tokens) or one request "
                f"(prompt_len + output_len = {request} tokens)"
            )
        return value

    def longest_sequence(self) -> int:
        return self.prompt_len + self.output_len
