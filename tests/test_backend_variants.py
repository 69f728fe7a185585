"""Backend variants (`BackendSpec.variant_of`): the paged rung taken apart as settings of one code path.

Each variant is its own rung with its own cells and config hash, runs the same class with its fixed
settings applied, shares its base's pool (conf interpolates it, so a preset that widens hf_paged's pool widens
theirs), and records what it changes.
"""

from __future__ import annotations

import pytest
import yaml
from helpers.repository import REPO_ROOT

from inference_study import registry
from inference_study.compose import compose_yaml
from inference_study.config import validate_params
from inference_study.plan import bench_units

VARIANTS = {"hf_paged_graphs": {"use_cuda_graph": True}, "hf_paged_compiled": {"compile_level": 1},
            "hf_paged_graphs_compiled": {"use_cuda_graph": True, "compile_level": 1}}


@pytest.fixture(scope="module")
def paged_study():
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO_ROOT)
        return validate_params(yaml.safe_load(compose_yaml(["study=h200_paged"])), source="h200_paged")


def test_every_variant_runs_its_base_class_with_its_settings_fixed(paged_study) -> None:
    pool = paged_study.backends["hf_paged"]
    units = {unit.cell.backend: unit for unit in bench_units(paged_study)
             if (unit.cell.batch_size, unit.cell.input_len) == (8, 512)}
    base = units["hf_paged"].settings.model_dump()
    assert "use_cuda_graph" not in base and "compile_level" not in base  # left to transformers
    for name, fixed in VARIANTS.items():
        spec = registry.sweepable_backends()[name]
        assert (spec.variant_of, spec.implementation) == ("hf_paged", registry.sweepable_backends()["hf_paged"].implementation)
        settings = units[name].settings.model_dump()
        assert settings == {**base, **fixed}
        assert settings["num_blocks"] == pool["num_blocks"] == 2304  # the preset's widened pool, interpolated
        assert units[name].config_hash != units["hf_paged"].config_hash


def test_variants_differ_from_each_other_in_hash_and_result_path(paged_study) -> None:
    units = [unit for unit in bench_units(paged_study) if unit.cell.backend.startswith("hf_paged")]
    assert len({unit.config_hash for unit in units}) == len(units) == 4 * 9
    assert len({unit.result_path(REPO_ROOT / "results") for unit in units}) == len(units)


def test_a_variant_records_what_it_changes_and_a_rung_its_own_words() -> None:
    assert registry.description("hf_paged_graphs_compiled") == (
        "changes from hf_paged: use_cuda_graph=True, compile_level=1 (the same code, these settings fixed)")
    assert registry.description("hf_paged").startswith("changes from hf_static_compiled")


def test_the_variant_settings_reach_transformers_config() -> None:
    """What the variant fixes is what continuous batching is configured with (transformers' own config class)."""
    from inference_study.backends.hf.paged import HfPaged  # heavy: imports transformers

    for name, fixed in VARIANTS.items():
        backend = HfPaged.__new__(HfPaged)
        backend.settings = registry.sweepable_backends()[name].validate({}, key=f"backends.{name}")
        config = backend.continuous_batching_config()
        assert config.use_cuda_graph is fixed.get("use_cuda_graph", config.use_cuda_graph)
        if "compile_level" in fixed:
            assert config.default_compile_level == fixed["compile_level"]
        assert backend.compiles is ("compile_level" in fixed)
