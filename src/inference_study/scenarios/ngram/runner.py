"""The n-gram scenario's entry point: its transformers arms on the loaded eager baseline."""

from __future__ import annotations

from pathlib import Path

from inference_study.plan import ScenarioUnit
from inference_study.scenarios.common import load_eager, policy
from inference_study.scenarios.ngram.record import NgramRecord
from inference_study.scenarios.ngram.run import run_ngram


def run(unit: ScenarioUnit, model_dir: Path, device: str, vocab_size: int) -> NgramRecord:
    backend = load_eager(model_dir, unit.model.dtype, device)
    try:
        return run_ngram(backend, unit.settings, vocab_size, unit.bench.seed, policy(unit))
    finally:
        backend.release()
