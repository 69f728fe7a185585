"""The result record of the scenario: prompt-lookup (n-gram) speculative decoding against plain greedy, over draft
length x n-gram size x workload, and what it says, computed from its rows: the expectation (outputs and draft
counters), the timing claims (each setting against plain greedy), the controls (settings whose drafts were
identical, which do the same work) and the upgrade of version-1 records (import-light: no torch)."""

from __future__ import annotations

from itertools import groupby
from typing import Any, Literal

from pydantic import Field

from inference_study.scenario import ScenarioRecord
from inference_study.scenarios.records import Comparison, Divergence, Expectation, Record, agreement
from inference_study.scenarios.timing import rate_speedup, unrepeated, unrepeated_verdict
from inference_study.uncertainty import Interval


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
    greedy_tokens_per_s: Interval = Field(description="plain greedy's output tokens/s over its timed repeats")
    greedy_output_ids: list[int]


class NgramRow(Record):
    """One draft length × n-gram size on one workload; its speedup over that workload's plain greedy run is
    the record's claim for it (with its interval); counters are of the last timed run."""

    workload: Literal["high_overlap", "low_overlap"]
    draft_len: int
    ngram_size: int
    tokens_per_s: Interval = Field(description="output tokens/s over the timed repeats")
    proposed_tokens: int
    accepted_tokens: int
    acceptance_rate: float | None
    forward_passes: int
    tokens_per_forward: float
    identical_to_greedy: bool


class NgramRecord(ScenarioRecord):
    scenario: Literal["ngram"] = "ngram"
    record_version: Literal[2] = 2
    workloads: list[NgramWorkloadInfo]
    rows: list[NgramRow]
    divergences: list[Divergence] = Field(
        default=[], description="first divergence of each output that differs from its reference"
    )
    expectation: Expectation

    @classmethod
    def upgraded(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Version 1 kept one median tokens/s per setting and a bare speedup; it is read as version 2."""
        return upgrade_v1(data)


EXPECTED = (
    "Output identical to plain greedy decoding for every draft length and n-gram size; on the "
    "high-overlap workload drafts are accepted and decoding is faster (the n-gram speculation write-up: editing, code "
    "modification and templates work best). Met is judged on the outputs and the draft counters; whether decoding "
    "was faster is each setting's timing claim, stated only where its interval excludes 1."
)
GREEDY = "plain greedy"
TOKENS_PER_S = "output tokens/s"


def setting(row: NgramRow) -> str:
    return f"draft {row.draft_len}, n-gram {row.ngram_size}"


def claims(workloads: list[NgramWorkloadInfo], rows: list[NgramRow]) -> list[Comparison]:
    """Each setting's tokens/s against plain greedy's on its workload."""
    greedy = {w.name: w.greedy_tokens_per_s for w in workloads}
    return [rate_speedup(row.workload, setting(row), GREEDY, TOKENS_PER_S, row.tokens_per_s, greedy[row.workload])
            for row in rows]


def _same_drafts(row: NgramRow) -> tuple[str, int, int, int]:
    return row.workload, row.proposed_tokens, row.accepted_tokens, row.forward_passes


def controls(rows: list[NgramRow]) -> list[Comparison]:
    """Per workload, settings that proposed and accepted the same drafts in the same forward passes do the same
    model work: the fastest of them against the slowest should not differ."""
    found = []
    for (workload, *_), group in groupby(sorted(rows, key=_same_drafts), key=_same_drafts):
        same = list(group)
        if len(same) < 2:
            continue
        fastest = max(same, key=lambda r: r.tokens_per_s.value)
        slowest = min(same, key=lambda r: r.tokens_per_s.value)
        names = "; ".join(setting(r) for r in same)
        found.append(rate_speedup(
            f"{workload}, settings with identical draft counts ({names}: {same[0].proposed_tokens} proposed, "
            f"{same[0].accepted_tokens} accepted, {same[0].forward_passes} forward passes)",
            f"fastest ({setting(fastest)})", f"slowest ({setting(slowest)})", TOKENS_PER_S,
            fastest.tokens_per_s, slowest.tokens_per_s))
    return found


def expectation(rows: list[NgramRow], divergences: list[Divergence]) -> Expectation:
    """Met: outputs agree with greedy (up to numeric noise) and every high-overlap setting had drafts accepted."""
    identical = sum(r.identical_to_greedy for r in rows)
    agree, outputs = agreement(identical == len(rows), divergences)
    high = [r for r in rows if r.workload == "high_overlap"]
    accepted = [r for r in high if r.accepted_tokens > 0]
    observed = f"identical to greedy in {identical} of {len(rows)} settings, outputs {outputs}"
    if high:
        rates = [r.acceptance_rate or 0 for r in high]
        observed += (f"; high-overlap drafts accepted in {len(accepted)} of {len(high)} settings (acceptance "
                     f"{min(rates):.0%} to {max(rates):.0%})")
    else:
        observed += "; no high-overlap workload was run"
    met = agree and bool(high) and len(accepted) == len(high)
    return Expectation(expected=EXPECTED, met=met, observed=observed)


def upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A version-1 record as version 2: each median tokens/s becomes an Interval without an interval, the bare
    speedups give way to claims without intervals, the expectation is judged anew on outputs and counters."""
    workloads = [NgramWorkloadInfo.model_validate({**w, "greedy_tokens_per_s": unrepeated(w["greedy_tokens_per_s"])})
                 for w in data["workloads"]]
    rows = [NgramRow.model_validate({**{k: v for k, v in r.items() if k != "speedup"},
                                     "tokens_per_s": unrepeated(r["tokens_per_s"])}) for r in data["rows"]]
    divergences = [Divergence.model_validate(d) for d in data.get("divergences", [])]
    checks = controls(rows)
    return {
        **data,
        "record_version": 2,
        "workloads": workloads,
        "rows": rows,
        "expectation": expectation(rows, divergences),
        "verdict": unrepeated_verdict(1, checks),
        "stopping": {},
        "claims": claims(workloads, rows),
        "controls": checks,
    }
