"""What every scenario shares, as the core sees it: its settings' base class and its record's base class.

A scenario is an experiment with its own workload and measurements (prompt-lookup speculation, a prefix
KV cache that outlives its process, KV offload, multi-round chat). Each lives in its own folder under
`scenarios/` and registers a `ScenarioSpec` (registry.py); the core knows none of them by name.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo, model_validator

from inference_study.stopping import legacy_iterations_error
from inference_study.strict import Record, Strict, unique


class ScenarioSettings(Strict):
    """Settings every scenario has: which variants run and how often each measurement repeats."""

    # Which variants run, not how one is measured: left out of model_dump, so the hf measurement's config
    # hash and its report settings stay the same when a TensorRT-LLM variant is switched on beside it.
    backends: Annotated[list[str], Field(min_length=1), AfterValidator(unique)] = Field(
        default=["hf"],
        exclude=True,
        description="hf: transformers (runs anywhere); other variants are backends the scenario's spec lists",
    )
    warmup_iterations: int = Field(default=1, ge=0)
    iterations: int | None = Field(default=None, ge=1, description="old results' fixed count (read only); "
                                   "timed repeats stop by bench.stopping")

    @model_validator(mode="after")
    def _no_fixed_count(self, info: ValidationInfo) -> ScenarioSettings:
        legacy = legacy_iterations_error(self.iterations, info)
        if legacy:
            raise ValueError(f"iterations: {legacy}")
        return self

    def longest_sequence(self) -> int:
        """Prompt plus output of the longest request the scenario makes (checked against max_seq_len)."""
        raise NotImplementedError


class ScenarioRecord(Record):
    """Base of a scenario's own result record, versioned by its `record_version`."""

    scenario: str
    record_version: int

    def measured_backends(self) -> set[str]:
        """The backends of the rows this record holds beyond the scenario's own transformers arms ("hf")."""
        return {row.backend for row in getattr(self, "rows", []) if getattr(row, "backend", "hf") != "hf"}
