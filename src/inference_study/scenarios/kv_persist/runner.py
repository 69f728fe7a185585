"""The persistent prefix KV scenario's entry point: two instances, each its own process."""

from __future__ import annotations

from pathlib import Path

from inference_study.plan import ScenarioUnit
from inference_study.scenarios.common import policy
from inference_study.scenarios.kv_persist.record import KvPersistRecord
from inference_study.scenarios.kv_persist.run import run_kv_persist


def run(unit: ScenarioUnit, model_dir: Path, device: str, vocab_size: int) -> KvPersistRecord:
    return run_kv_persist(unit.settings, model_dir, unit.model.dtype, device, vocab_size, unit.bench.seed,
                          policy(unit))
