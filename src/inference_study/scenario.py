"""What every scenario shares, as the core sees it: its settings' base class and its record's base class.

A scenario is an experiment with its own workload and measurements (prompt-lookup speculation, a prefix
KV cache that outlives its process, KV offload, multi-round chat). Each lives in its own folder under
`scenarios/` and registers a `ScenarioSpec` (registry.py); the core knows none of them by name.

Its timings repeat as a cell's do: each timed loop stops by a `StoppingRule` (the scenario's own
`stopping`, else `bench.stopping`), every timing is an `Interval` over its repeats, and the record carries
a verdict (pass or warn, with the reasons), its loops' `Stopping` records, and its timing comparisons:
claims (what the original benchmark expects to be faster) and controls (what should not differ).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from inference_study.stopping import Stopping, StoppingRule
from inference_study.strict import Record, Strict, unique
from inference_study.uncertainty import Ratio, Wording
from inference_study.validity import Verdict

if TYPE_CHECKING:
    from inference_study.config import BenchSettings

# Settings fields that a study before scenario stopping rules did not have (stopping) or that only old
# studies set (iterations): left out of model_dump while None, so the config hash of old params, and the
# settings a report shows, are what they were (ScenarioUnit.config_hash hashes model_dump()).
UNSET_WHEN_NONE = ("stopping", "iterations")


class ScenarioSettings(Strict):
    """Settings every scenario has: which variants run, its warmup, and (optionally) its own stopping rule."""

    # Which variants run, not how one is measured: left out of model_dump, so the hf measurement's config
    # hash and its report settings stay the same when a TensorRT-LLM variant is switched on beside it.
    backends: Annotated[list[str], Field(min_length=1), AfterValidator(unique)] = Field(
        default=["hf"],
        exclude=True,
        description="hf: transformers (runs anywhere); other variants are backends the scenario's spec lists",
    )
    warmup_iterations: int = Field(default=1, ge=0)
    stopping: StoppingRule | None = Field(
        default=None, description="this scenario's own stopping rule for each of its timed loops; null: bench.stopping"
    )
    iterations: int | None = Field(default=None, ge=1, description="old results' fixed count (read only); "
                                   "timed repeats stop by the stopping rule")

    @model_serializer(mode="wrap")
    def _leave_out_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped = handler(self)
        for name in UNSET_WHEN_NONE:
            if getattr(self, name) is None:
                dumped.pop(name, None)
        return dumped

    def rule(self, bench: BenchSettings) -> StoppingRule:
        """The rule each timed loop of this scenario stops by: its own, else the study's `bench.stopping`."""
        rule = self.stopping or bench.stopping
        if rule is None:
            raise ValueError("no stopping rule: params of the old fixed-count protocol are read only, never run")
        return rule

    def longest_sequence(self) -> int:
        """Prompt plus output of the longest request the scenario makes (checked against max_seq_len)."""
        raise NotImplementedError


class Comparison(Record):
    """One timing against another as a speedup of `subject` over `baseline` (> 1: the subject is faster),
    with the speedup's 95% interval (uncertainty.ratio: bootstrapped from both timings' repeats). A claim is
    a comparison the original benchmark makes; a control compares equal work, so it should not differ and
    its interval is the noise floor beside the claims."""

    what: str = Field(description="what is compared, where (backend, workload, user count)")
    subject: str
    baseline: str
    metric: str = Field(description="the timing compared: a time (lower is better) or a rate (higher is better)")
    speedup: Ratio

    @property
    def wording(self) -> Wording:
        return self.speedup.wording(higher_is_better=True)

    def stated(self) -> str:
        """The comparison in words; a number is quoted as a difference only when its interval excludes 1."""
        return self._phrased(("no interval (ratio of medians {v}×, not tested against noise)",
                              "not distinguishable (the speedup's 95% interval, {lo}×–{hi}×, spans 1)",
                              "{w}: speedup {v}× (95% interval {lo}×–{hi}×)"))

    def short(self) -> str:
        """The comparison for a table cell: its wording, and the speedup with its interval where it has one."""
        return self._phrased(("no interval ({v}× untested)", "not distinguishable [{lo}×, {hi}×]",
                              "{w} {v}× [{lo}×, {hi}×]"))

    def _phrased(self, forms: tuple[str, str, str]) -> str:
        """One of `forms` (no interval, not distinguishable, a difference) filled with this comparison's numbers."""
        speedup = self.speedup
        form = forms[0] if self.wording == "no interval" else forms[1] if self.wording == "not distinguishable" \
            else forms[2]
        bound = (lambda b: f"{b:.3g}") if speedup.ci_low is not None else (lambda b: "")
        return form.format(v=f"{speedup.value:.3g}", lo=bound(speedup.ci_low), hi=bound(speedup.ci_high),
                           w=self.wording)

    def sentence(self) -> str:
        return f"{self.what}: {self.subject} against {self.baseline}, {self.metric}: {self.stated()}"


class ScenarioRecord(Record):
    """Base of a scenario's own result record, versioned by its `record_version`.

    `verdict` judges the timings only (pass, or warn: a loop that did not converge, repeats over
    `bench.max_cv`, no warmup, a control that differed, timings from before repeats were kept); whether the
    original benchmark's expectation was met is `expectation` in each scenario's record, judged on counters
    and outputs, never on a timing.
    """

    scenario: str
    record_version: int
    verdict: Verdict
    stopping: dict[str, Stopping] = Field(description="each timed loop's stopping record, by loop; {} before loops "
                                          "stopped by a rule")
    claims: list[Comparison] = Field(description="timing comparisons the original benchmark makes")
    controls: list[Comparison] = Field(description="comparisons of equal work, which should not differ: the noise "
                                       "floor beside the claims")

    @model_validator(mode="before")
    @classmethod
    def _current_version(cls, data: Any) -> Any:
        """A record of an earlier `record_version` is read as the current one, by the scenario's own upgrade."""
        current = cls.model_fields["record_version"].default
        if isinstance(data, dict) and isinstance(data.get("record_version"), int) and data["record_version"] < current:
            return cls.upgraded(data)
        return data

    @classmethod
    def upgraded(cls, data: dict[str, Any]) -> dict[str, Any]:
        """An earlier version's record as this version's; a scenario whose record changed overrides it."""
        raise ValueError(f"record_version {data['record_version']} of {data.get('scenario')!r} has no upgrade")

    def measured_backends(self) -> set[str]:
        """The backends of the rows this record holds beyond the scenario's own transformers arms ("hf")."""
        return {row.backend for row in getattr(self, "rows", []) if getattr(row, "backend", "hf") != "hf"}
