"""Typed settings of the study's scenarios (import-light: no torch here).

A scenario is an experiment with its own workload and measurements (seed 001's n-gram speculation and
persistent KV cache; issue 5's KV offload and multi-round chat plug in beside them). Each scenario has
one section under `scenarios` in params.yaml, and a `models` list that is the DVC matrix of its stage:
empty keeps the stage out of the graph, as the TensorRT-LLM stages do.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

PositiveInt = Annotated[int, Field(gt=0)]


def _unique(values: list[Any]) -> list[Any]:
    duplicates = sorted({v for v in values if values.count(v) > 1}, key=str)
    if duplicates:
        raise ValueError(f"values must be unique; repeated: {duplicates}")
    return values


UniquePositive = Annotated[list[PositiveInt], Field(min_length=1), AfterValidator(_unique)]
NgramWorkload = Literal["high_overlap", "low_overlap"]
ScenarioBackend = Literal["hf", "trtllm_pytorch"]


class ScenarioSettings(BaseModel):
    """What every scenario has: the models it runs on and how often each measurement repeats."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: Annotated[list[str], AfterValidator(_unique)] = []
    # Which variants run, not how one is measured: left out of model_dump, so the hf measurement's config
    # hash and its report settings stay the same when a TensorRT-LLM variant is switched on beside it.
    backends: Annotated[list[ScenarioBackend], Field(min_length=1), AfterValidator(_unique)] = Field(
        default=["hf"],
        exclude=True,
        description="hf: transformers (runs anywhere); trtllm_pytorch: TensorRT-LLM's LLM API, off by default",
    )
    warmup_iterations: int = Field(default=1, ge=0)
    iterations: int = Field(default=3, ge=1)

    def longest_sequence(self) -> int:
        """Prompt plus output of the longest request the scenario makes (checked against max_seq_len)."""
        raise NotImplementedError


class NgramSettings(ScenarioSettings):
    """Prompt-lookup speculative decoding (seed 001 §2): draft length × n-gram size × workload."""

    prompt_len: int = Field(default=128, ge=16, description="the workload builder seeds with 16 tokens")
    output_len: int = Field(default=64, ge=2)
    draft_lens: UniquePositive = [2, 4, 8]
    ngram_sizes: UniquePositive = [1, 2, 3]
    workloads: Annotated[list[NgramWorkload], Field(min_length=1), AfterValidator(_unique)] = [
        "high_overlap",
        "low_overlap",
    ]
    overlap_ngram: PositiveInt = Field(default=2, description="n of the reported workload n-gram overlap")

    def longest_sequence(self) -> int:
        return self.prompt_len + self.output_len


class KvPersistSettings(ScenarioSettings):
    """A prefix KV cache saved by one process and loaded by another (seed 001 §3)."""

    prefix_lens: UniquePositive = [64, 256]
    suffix_len: int = Field(
        default=16,
        ge=1,
        description="prompt tokens after the prefix: never cached, so "
        "generate prefills them and never re-feeds the whole prompt",
    )
    output_len: int = Field(default=16, ge=2)

    def longest_sequence(self) -> int:
        return max(self.prefix_lens) + self.suffix_len + self.output_len


class KvOffloadSettings(ScenarioSettings):
    """A KV pool that holds about one request, block reuse on, prompts A,B,A,B, with and without a host
    cache (seeds 004 and 001 §1)."""

    backends: Annotated[list[ScenarioBackend], Field(min_length=1), AfterValidator(_unique)] = Field(
        default=["hf"],
        exclude=True,
        description="hf: transformers with a tiered prefix cache of this study's; trtllm_pytorch: TensorRT-LLM's "
        "block reuse and host cache (KvCacheConfig), off by default",
    )
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


MultiroundArm = Literal["no_reuse", "reuse_gpu_only", "reuse_host_offload"]
MULTIROUND_ARMS: tuple[MultiroundArm, ...] = ("no_reuse", "reuse_gpu_only", "reuse_host_offload")


class MultiroundSettings(ScenarioSettings):
    """U users, each with a long context, over R rounds round-robin; each round adds new tokens and
    generates output; with and without KV reuse, with and without a host tier (seed 003, issue 5).

    `warmup_iterations` untimed requests (user 0's first prompt, no reuse) precede the timed sweep;
    `iterations` repeats the whole sweep (every arm × user count), each time on fresh caches.
    """

    backends: Annotated[list[ScenarioBackend], Field(min_length=1), AfterValidator(_unique)] = Field(
        default=["hf"],
        exclude=True,
        description="hf: transformers with per-user prefix caches; trtllm_pytorch: TensorRT-LLM's block reuse "
        "and host cache (KvCacheConfig), off by default",
    )
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


class ScenariosSection(BaseModel):
    """Every scenario's settings; a scenario whose `models` is empty does not run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ngram: NgramSettings = Field(default_factory=NgramSettings)
    kv_persist: KvPersistSettings = Field(default_factory=KvPersistSettings)
    kv_offload: KvOffloadSettings = Field(default_factory=KvOffloadSettings)
    multiround: MultiroundSettings = Field(default_factory=MultiroundSettings)

    def enabled(self) -> dict[str, ScenarioSettings]:
        """The scenarios that run, by name."""
        return {
            name: settings for name in type(self).model_fields if (settings := getattr(self, name)).models
        }

    def trtllm_features(self) -> list[str]:
        """The TensorRT-LLM features the enabled scenarios' `trtllm_pytorch` variants need (for the preflight)."""
        return [TRTLLM_FEATURES[name] for name, settings in self.enabled().items()
                if "trtllm_pytorch" in settings.backends]

    def model_errors(self, max_seq_len: dict[str, int]) -> list[str]:
        """Unknown models and requests longer than a model allows, each naming its key."""
        problems = []
        for name in type(self).model_fields:
            settings: ScenarioSettings = getattr(self, name)
            for model in settings.models:
                if model not in max_seq_len:
                    problems.append(
                        f"scenarios.{name}.models: unknown model {model!r}; allowed: {sorted(max_seq_len)}"
                    )
                elif settings.longest_sequence() > max_seq_len[model]:
                    problems.append(
                        f"scenarios.{name}: longest request {settings.longest_sequence()} tokens "
                        f"exceeds models.{model}.max_seq_len={max_seq_len[model]}"
                    )
        return problems


ScenarioName = Literal["ngram", "kv_persist", "kv_offload", "multiround"]  # the fields of ScenariosSection
TRTLLM_FEATURES = {"ngram": "ngram", "kv_persist": "kv_connector", "kv_offload": "kv_host_cache",
                   "multiround": "kv_host_cache"}  # trtllm.version.FEATURES of each variant
