"""One run path: a resolved unit in, a validated result out (a bench cell or a scenario run)."""

from __future__ import annotations

from pathlib import Path

from inference_study import registry
from inference_study.environment import Environment
from inference_study.harness import model_info, resolve_device, run_cell
from inference_study.models import resolve_model
from inference_study.plan import BenchUnit, ScenarioUnit
from inference_study.results import CellResult, ScenarioResult
from inference_study.tensor_parallel import inside_ranks, launch


def run_scenario(unit: ScenarioUnit, model_stage_dir: Path, environment: Environment) -> ScenarioResult:
    """Measure a scenario unit through its registered runner; a GPU out-of-memory error is the recorded
    outcome, not raised."""
    import torch  # heavy: only a run needs it

    device = resolve_device(unit.bench.device)
    model_dir, provenance = resolve_model(model_stage_dir)
    info = model_info(unit.model_name, unit.model, model_dir, provenance["random_weights"])
    status, error, record = "ok", None, None
    try:
        record = registry.load(registry.scenarios()[unit.scenario].runner)(
            unit, model_dir, device, info.geometry.vocab_size
        )
    except torch.OutOfMemoryError as oom:
        status, error = "oom", f"GPU out of memory: {str(oom).splitlines()[0]}"
    return ScenarioResult(
        scenario=unit.scenario,
        status=status,
        error=error,
        config_hash=unit.config_hash,
        device=device,
        model=info,
        environment=environment,
        environment_fingerprint=environment.fingerprint,
        record=record,
        null_reasons={} if record else {"record": f"scenario {status}"},
    )


def run_unit(unit: BenchUnit | ScenarioUnit, model_stage_dir: Path, environment: Environment) -> CellResult | ScenarioResult:
    """Measure any unit: the same path for every backend and every scenario. A unit of a model sharded over N
    GPUs, on a rung or scenario the study starts ranks for, runs this same path in N torchrun ranks; rank 0's
    result is the unit's."""
    ranks = unit.model.tensor_parallel
    if ranks > 1 and not inside_ranks() and _study_starts_ranks(unit):
        return launch(f"{__name__}:run_unit", (unit, model_stage_dir, environment), ranks)
    if isinstance(unit, ScenarioUnit):
        return run_scenario(unit, model_stage_dir, environment)
    return run_cell(unit, model_stage_dir, environment)


def _study_starts_ranks(unit: BenchUnit | ScenarioUnit) -> bool:
    """Whether the study starts the ranks of `unit` (not a library that starts its own, as TensorRT-LLM does)."""
    if isinstance(unit, ScenarioUnit):
        return registry.scenarios()[unit.scenario].ranks == "torchrun"
    spec = registry.sweepable_backends().get(unit.cell.backend)
    return spec is not None and spec.ranks == "torchrun"
