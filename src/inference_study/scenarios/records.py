"""Pieces every scenario's record shares: the expected outcome, how outputs agree, and timing comparisons
(no torch here).

A scenario result (results.ScenarioResult) carries the study's common header and the scenario's own
record (in its folder), told apart by `scenario` and versioned by its `record_version`.
"""

from __future__ import annotations

from pydantic import Field

from inference_study.scenario import Comparison
from inference_study.strict import Record

__all__ = ["Comparison", "Divergence", "Expectation", "Record", "agreement"]


class Expectation(Record):
    """The original benchmark's expected outcome, and whether this run met it, in words a reader can check."""

    expected: str
    met: bool
    observed: str


class Divergence(Record):
    """Where a lossless feature's greedy tokens first differ from the reference's, and whether that is an
    argmax flip between nearly equal logits (numeric noise: another kernel shape, random weights' flat
    logits) rather than a wrong cache or a wrong draft check."""

    what: str = Field(description="the outputs compared: feature against reference")
    position: int = Field(description="first output token that differs")
    logit_gap: float = Field(
        description="at that position, the reference model's logit of the reference token minus that of "
        "the feature's token (a full prefill of prompt + agreed tokens, float32 logits)"
    )
    tolerance: float = Field(description="10 units in the last place of the model dtype at the largest logit")
    within_noise: bool = Field(description="logit_gap <= tolerance")


def agreement(identical: bool, divergences: list[Divergence]) -> tuple[bool, str]:
    """Whether outputs agree up to numeric noise, and the words saying so for an expectation."""
    if identical:
        return True, "identical"
    if divergences and all(d.within_noise for d in divergences):
        worst = max(divergences, key=lambda d: d.logit_gap / d.tolerance)
        return True, (f"different, every divergence a near-tie within numeric noise ({len(divergences)}; "
                      f"largest logit gap {worst.logit_gap:.3g} against a tolerance of {worst.tolerance:.3g})")
    flips = [d for d in divergences if not d.within_noise]
    shown = "; ".join(f"{d.what} at token {d.position}, logit gap {d.logit_gap:.3g}" for d in flips[:3])
    return False, f"DIFFERENT beyond numeric noise ({shown or 'not checked'})"
