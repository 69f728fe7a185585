"""Declarative comparisons a study preset asks its report for (`study.comparisons`).

The preset names the rung that speedups are over and the pairs of backends it sets side by side, with its
own words about them and, where it has one, a ratio measured elsewhere to check this run against. The
report computes and renders only what is declared here: no backend name, finding or outside number
lives in the code.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from inference_study.strict import Strict

Metric = Literal["output_tokens_per_s", "ttft_p50_ms", "tpot_p50_ms", "e2e_p50_ms"]
METRICS: tuple[Metric, ...] = ("output_tokens_per_s", "ttft_p50_ms", "tpot_p50_ms", "e2e_p50_ms")


def _unique(values: list[str]) -> list[str]:
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise ValueError(f"values must be unique; repeated: {repeated}")
    return values


class Shape(Strict):
    """One cell shape of the sweep (any model)."""

    batch_size: int = Field(gt=0)
    input_len: int = Field(gt=0)
    output_len: int = Field(ge=2)


class Expected(Strict):
    """A ratio measured elsewhere: `candidate` ÷ each of `against` for `metric` at the shape `at`.

    The report shows this run's ratio at that shape beside it and whether it lies on the same side of 1.
    """

    ratio: float = Field(gt=0)
    metric: Metric = "output_tokens_per_s"
    at: Shape
    source: str = Field(min_length=1, description="where the ratio was measured, in words a reader can look up")


class Pair(Strict):
    """One backend set against others at every shape where both have a usable measurement.

    `view: ratios`: one table per backend of `against`, `candidate` ÷ it for each metric (above 1: more
    tokens/s or a longer latency), with which side has the higher tokens/s.
    `view: best_of`: one table per model and metric, every backend of `against` beside `candidate`, with the
    candidate's speedup over the study's baseline and over the best of `against` at that shape.
    """

    title: str = Field(min_length=1, description="the section heading")
    candidate: str
    against: Annotated[list[str], Field(min_length=1), AfterValidator(_unique)]
    view: Literal["ratios", "best_of"] = "ratios"
    metrics: Annotated[list[Metric], Field(min_length=1), AfterValidator(_unique)] = Field(
        default_factory=lambda: list(METRICS))
    note: str = Field(default="", description="the preset author's words on what the comparison isolates")
    expected: Expected | None = None

    @model_validator(mode="after")
    def _candidate_is_not_against_itself(self) -> Pair:
        if self.candidate in self.against:
            raise ValueError(f"candidate {self.candidate!r} is also in against")
        return self


class Comparisons(Strict):
    """What the report compares; empty by default, so the code carries no study's findings."""

    baseline: str | None = Field(default=None, description="the rung every speedup and output equivalence is over")
    pairs: list[Pair] = Field(default_factory=list)

    @model_validator(mode="after")
    def _titles_unique(self) -> Comparisons:
        titles = [pair.title for pair in self.pairs]
        repeated = sorted({title for title in titles if titles.count(title) > 1})
        if repeated:
            raise ValueError(f"pairs: each title is one report section, so titles must be unique; repeated: {repeated}")
        return self
