"""What the PyTorch scenarios share: the loaded eager baseline, the timing policy of a unit, and the near-tie
check.

Everything a scenario asks of the model goes through the hf backend's public methods (`greedy`,
`prefill`, `next_token_logits`, `model_config`), never through its attributes. Timed loops are
`timing.converge` (arms round-robin until the stopping rule says stop).
"""

from __future__ import annotations

from pathlib import Path

from inference_study.backends.hf.generate import HfEager
from inference_study.backends.hf.settings import HfEagerSettings
from inference_study.plan import ScenarioUnit
from inference_study.scenarios.records import Divergence
from inference_study.scenarios.timing import Policy

ULPS_OF_NOISE = 10


def load_eager(model_dir: Path, dtype: str, device: str) -> HfEager:
    """The hf_eager backend, loaded: scenarios change one thing against the study's plain baseline."""
    backend = HfEager(HfEagerSettings(), model_dir, dtype, device)
    backend.load()
    return backend


def policy(unit: ScenarioUnit) -> Policy:
    """The unit's stopping rule (its scenario's own, else bench.stopping) and the study's max_cv."""
    return Policy(rule=unit.settings.rule(unit.bench), max_cv=unit.bench.max_cv)


def divergence(
    backend: HfEager, what: str, prompt: list[int], reference: list[int], candidate: list[int]
) -> Divergence | None:
    """None when `candidate` equals `reference`; else how far the reference model prefers its own token over
    the candidate's at the first difference. A gap within a few units in the last place of the dtype is an
    argmax flip between tied logits, which a lossless feature's different kernel shapes may cause."""
    position = next((i for i, (a, b) in enumerate(zip(reference, candidate)) if a != b), None)
    if position is None:
        return None
    logits, eps = backend.next_token_logits(prompt + reference[:position])
    gap = float(logits[reference[position]] - logits[candidate[position]])
    tolerance = ULPS_OF_NOISE * eps * float(logits.abs().max())
    return Divergence(what=what, position=position, logit_gap=gap, tolerance=tolerance, within_noise=gap <= tolerance)
