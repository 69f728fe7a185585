"""The PyTorch rungs on the installed transformers, whichever the supported range holds: 5.17 (the
study's own) or 4.57.1 (TensorRT-LLM 1.2's pin, in NVIDIA's image; .ci/run's second leg). Where a rung
cannot run as designed it is refused before any work, naming the backend and the installed version, never
measured otherwise.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import tomllib
import transformers
import yaml
from helpers.repository import REPO_ROOT
from packaging.requirements import Requirement
from packaging.version import Version

from inference_study import harness, registry
from inference_study.backends.hf import PAGED as PAGED_IMPLEMENTATION
from inference_study.backends.hf import paged
from inference_study.backends.hf.paged import HfPaged
from inference_study.backends.hf.settings import HfPagedSettings
from inference_study.compose import compose_yaml
from inference_study.config import StudyConfig, validate_params
from inference_study.environment import collect_environment
from inference_study.plan import bench_unit
from inference_study.strict import ConfigError

TENSORRT_LLM_PIN = "4.57.1"  # requirements.txt of NVIDIA/TensorRT-LLM at 000867d9 (1.2-era)
ON_TENSORRT_LLM_PIN = Version(transformers.__version__).major == 4
# Every rung but the paged ones, which need 5.17's continuous batching (paged.continuous_batching_missing).
RUNGS = ["hf_eager", "hf_static", "hf_static_compiled", "hf_compiled_loop", "hf_fused_loop"]
PAGED = [name for name, spec in registry.sweepable_backends().items()
         if spec.implementation == PAGED_IMPLEMENTATION]
BATCH, INPUT_LEN, OUTPUT_LEN = 2, 16, 8


def _study(*overrides: str) -> StudyConfig:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO_ROOT)
        raw = yaml.safe_load(compose_yaml(list(overrides)))
    raw["bench"].update(device="cpu", warmup_iterations=1)
    raw["bench"]["stopping"].update(min_requests=2 * BATCH, max_requests=2 * BATCH, min_seconds=0)
    return validate_params(raw)


def test_the_requirement_covers_both_supported_versions() -> None:
    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    requirement = next(Requirement(line) for line in dependencies if Requirement(line).name == "transformers")
    for version in (TENSORRT_LLM_PIN, "5.17.0", transformers.__version__):
        assert requirement.specifier.contains(version), version


def test_the_environment_records_the_installed_transformers() -> None:
    assert collect_environment().transformers == transformers.__version__


def test_paged_rungs_refused_before_any_work_naming_backend_and_version(monkeypatch: pytest.MonkeyPatch,
                                                                       model_dir: Path) -> None:
    """Without ContinuousBatchingConfig (4.57; a stand-in module here on 5.x) every stage's preflight stops,
    `doctor` says why, and a direct load is refused before the model loads."""
    if not ON_TENSORRT_LLM_PIN:
        monkeypatch.setattr(paged, "transformers", SimpleNamespace(__version__=TENSORRT_LLM_PIN))
    study = _study(f"sweep.backends=[hf_eager,{','.join(PAGED)}]")
    family = registry.family_of("hf_paged")
    with pytest.raises(ConfigError) as refused:
        family.preflight(study, [])
    message = str(refused.value)
    assert "\n" not in message and message.startswith("sweep.backends: ")
    assert all(name in message for name in PAGED) and f"transformers {TENSORRT_LLM_PIN}" in message
    for name in PAGED:
        assert f"transformers {TENSORRT_LLM_PIN}" in registry.backend_class(name).unavailable_reason("cpu")
    with pytest.raises(ConfigError, match=f"backends.hf_paged: .*transformers {TENSORRT_LLM_PIN}"):
        HfPaged(HfPagedSettings(), model_dir, "float32", "cpu").load()
    family.preflight(_study("sweep.backends=[hf_eager,hf_static]"), [])


def test_every_rung_refused_on_a_transformers_older_than_tested(monkeypatch: pytest.MonkeyPatch) -> None:
    """An older TensorRT-LLM image's transformers may take the same calls and measure something else."""
    import inference_study.backends.hf as family_module

    monkeypatch.setattr(family_module, "metadata", SimpleNamespace(version=lambda package: "4.45.2"))
    with pytest.raises(ConfigError, match=r"^sweep.backends: hf_eager, hf_static: the installed transformers "
                                          r"4.45.2 is older than 4.57.1"):
        registry.family_of("hf_eager").preflight(_study("sweep.backends=[hf_eager,hf_static]"), [])


def test_paged_rungs_allowed_where_continuous_batching_is_the_one_driven() -> None:
    study = _study(f"sweep.backends=[hf_eager,{','.join(PAGED)}]")
    if ON_TENSORRT_LLM_PIN:
        pytest.skip(f"transformers {transformers.__version__} has no ContinuousBatchingConfig: refused above")
    registry.family_of("hf_paged").preflight(study, [])
    assert all(registry.backend_class(name).unavailable_reason("cpu") is None for name in PAGED)


@pytest.fixture(scope="module")
def measured(model_dir: Path) -> dict:
    """One harness cell per rung on the installed transformers (compiled rungs compile once each)."""
    if not ON_TENSORRT_LLM_PIN:
        pytest.skip("transformers 5.x: tests/test_backends_cpu.py runs every rung there")
    study, environment = _study(), collect_environment()
    cell = {"model": "tiny_llama", "batch_size": BATCH, "input_len": INPUT_LEN, "output_len": OUTPUT_LEN}
    return {name: harness.run_cell(bench_unit(study, {**cell, "backend": name}), model_dir, environment)
            for name in RUNGS}


@pytest.mark.parametrize("name", RUNGS)
def test_rung_measures_on_the_installed_transformers(measured: dict, name: str) -> None:
    result = measured[name]
    assert result.status == "ok" and result.error is None
    assert result.environment.transformers == transformers.__version__
    assert result.tokens.produced_min == result.tokens.produced_max == OUTPUT_LEN
    assert 0 < result.latency.ttft_s.p50 < result.latency.e2e_s.p50
    assert (result.compile_cache is not None) == (name not in ("hf_eager", "hf_static"))


def test_rungs_agree_on_greedy_tokens(measured: dict) -> None:
    """fp32 greedy decoding is the same whatever the cache layout, compilation or loop."""
    eager = measured["hf_eager"].output_ids
    assert eager and all(measured[name].output_ids == eager for name in RUNGS)
