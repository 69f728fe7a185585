"""Settings of the scenario: u users x R rounds of chat, round-robin, with and without KV reuse and a host tier: TTFT per round, hit rate (import-light: no torch)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from inference_study.scenario import ScenarioSettings
from inference_study.strict import PositiveInt, UniquePositive

MultiroundArm = Literal["no_reuse", "reuse_gpu_only", "reuse_host_offload"]

MULTIROUND_ARMS: tuple[MultiroundArm, ...] = ("no_reuse", "reuse_gpu_only", "reuse_host_offload")

class MultiroundSettings(ScenarioSettings):
    """U users, each with a long context, over R rounds round-robin; each round adds new tokens and
    generates output; with and without KV reuse, with and without a host tier (as in the multi-round chat benchmark).

    `warmup_iterations` untimed requests (user 0's first prompt, no reuse) precede the timed sweep; at each user
    count the three arms then run round-robin, each pass on fresh caches, until the stopping rule is met.
    """

    users: UniquePositive = Field(default=[1, 2, 4, 8], description="user counts U swept; each >= 1")
    rounds: PositiveInt = Field(default=4, description="rounds R; every user sends one request per round")
    context_len: PositiveInt = Field(default=2048, description="each user's initial context")
    new_tokens_per_round: PositiveInt = Field(default=64, description="tokens a user adds before each request")
    output_len: int = Field(default=64, ge=1, description="tokens generated per request")
    tokens_per_block: int = Field(default=32, ge=4, description="reuse granularity: only full blocks are reused")
    gpu_kv_tokens: PositiveInt = Field(
        default=8192,
        description="device KV budget shared by the running request and the cached user histories; "
        "the cliff is where U x history exceeds it",
    )
    host_cache_tokens: PositiveInt = Field(default=65536, description="host tier of the offload arm")

    @field_validator("gpu_kv_tokens")
    @classmethod
    def _holds_a_block_and_a_request(cls, value: int, info: ValidationInfo) -> int:
        block = info.data.get("tokens_per_block", 1)
        needed = cls._longest(info.data)
        if value < max(block, needed):
            raise ValueError(
                f"a device KV budget of {value} tokens holds less than one block ({block} tokens) or the "
                f"longest request (context_len + rounds x (new_tokens_per_round + output_len) = {needed} tokens)"
            )
        return value

    @staticmethod
    def _longest(data: dict[str, Any]) -> int:
        rounds, new, output = (data.get(k, 0) for k in ("rounds", "new_tokens_per_round", "output_len"))
        return data.get("context_len", 0) + rounds * (new + output)

    def longest_sequence(self) -> int:
        """The last round's prompt (context + every round's new and generated tokens before it) plus output."""
        return self._longest(self.model_dump())

    def request_lengths(self, round_: int) -> tuple[int, int]:
        """(prompt tokens, tokens of history it starts from) of every user's request in round `round_` (0-based)."""
        history = self.context_len + round_ * (self.new_tokens_per_round + self.output_len)
        return history + self.new_tokens_per_round, history
