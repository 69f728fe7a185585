"""The scenario stages in the real dvc.yaml: absent from the default DAG, one per model when a preset
enables them, and `dvc repro` runs them into validated results and report sections."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from helpers.repository import REPO_ROOT
from helpers.runs import composed_stages
from helpers.runs import run_in_copy as run

from inference_study.config import load_params, scenario_result_path
from inference_study.results import read_scenario_result

SCENARIO_STAGE = re.compile(r"^(scenario)@(\S+)", re.MULTILINE)
# Short runs: every timed loop (cells and scenarios alike) stops after its first iteration or two, at
# max_requests, so the pipeline runs in seconds; the timings are then intervals of too few repeats, and say so.
QUICK = "{min_requests:1,max_requests:2,min_seconds:0,max_seconds:5,target_half_width:0.5}"
SMALL = [
    "scenarios.ngram.prompt_len=32",
    "scenarios.ngram.output_len=16",
    "scenarios.ngram.draft_lens=[4]",
    "scenarios.ngram.ngram_sizes=[2]",
    "scenarios.ngram.warmup_iterations=0",
    "scenarios.kv_persist.prefix_lens=[24]",
    "scenarios.kv_persist.warmup_iterations=0",
    "scenarios.kv_offload.warmup_iterations=0",
    "scenarios.multiround.warmup_iterations=0",
    *(f"+scenarios.{name}.stopping={QUICK}" for name in ("ngram", "kv_persist", "kv_offload", "multiround")),
    f"bench.stopping={QUICK}",
    "bench.warmup_iterations=0",
]


def scenario_stages(repo: Path, *overrides: str) -> set[str]:
    return composed_stages(repo, SCENARIO_STAGE, *overrides)


def test_default_and_h100_dags_have_no_scenario_stage(repo_copy: Path) -> None:
    assert scenario_stages(repo_copy) == set()
    assert scenario_stages(repo_copy, "study=h100") == set()


def test_scenario_presets_add_one_stage_per_scenario_and_model(repo_copy: Path) -> None:
    assert scenario_stages(repo_copy, "study=scenarios_cpu") == {
        "scenario@ngram-tiny_llama",
        "scenario@kv_persist-tiny_llama",
        "scenario@kv_offload-tiny_llama",
        "scenario@multiround-tiny_llama",
    }
    assert scenario_stages(repo_copy, "study=h100", "scenario=h100") == {
        f"scenario@{name}-{model}"
        for name in ("ngram", "kv_persist", "kv_offload", "multiround")
        for model in ("tinyllama_1b", "qwen2_5_7b")
    }


@pytest.mark.slow
def test_repro_runs_the_scenarios_into_results_and_report(repo_copy: Path) -> None:
    scenario_stages(repo_copy, "study=scenarios_cpu", *SMALL)
    done = run(repo_copy, sys.executable, "-m", "dvc", "repro")
    assert done.returncode == 0, done.stderr[-3000:]
    study = load_params(repo_copy / "params.yaml")
    for name in ("ngram", "kv_persist", "kv_offload", "multiround"):
        result = read_scenario_result(scenario_result_path(repo_copy / "results", name, "tiny_llama"))
        assert result.status == "ok" and result.record.scenario == name
        kept = scenario_result_path(repo_copy / "reports" / study.study.name / "inputs", name, "tiny_llama")
        assert read_scenario_result(kept) == result
    report = (repo_copy / "reports" / "scenarios_cpu" / "report.md").read_text()
    assert (
        "## Scenario: n-gram speculative decoding" in report and "## Scenario: Persistent prefix KV" in report
    )
    assert "## Scenario: KV offload to a host cache" in report
    assert "## Scenario: Multi-round chat" in report
    assert report.count("Expected (original benchmark):") == 4
    assert report.count("timing verdict: **warn**") == 4  # no warmup, and loops stopped at max_requests
    assert "not converged: stopped at max_requests" in report
    for name in ("ngram", "kv_persist", "kv_offload", "multiround"):
        record = read_scenario_result(scenario_result_path(repo_copy / "results", name, "tiny_llama")).record
        assert record.stopping and all(s.reason == "max_requests" for s in record.stopping.values())


def test_the_scenario_stage_depends_on_the_scenario_settings_but_not_the_model_lists() -> None:
    """A setting missing from the stage's params would leave stale results looking fresh; the model list
    there would re-run every model's stage when one is added."""
    import yaml

    params = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]["scenario"]["params"]
    assert "scenarios.${item.scenario}" in params and "models.${item.model}" in params
    assert not any(param.startswith("sweep") for param in params)


@pytest.mark.slow
def test_adding_a_model_leaves_the_other_models_scenario_results_fresh(repo_copy: Path) -> None:
    scenario_stages(repo_copy, "study=scenarios_cpu", *SMALL)
    done = run(repo_copy, sys.executable, "-m", "dvc", "repro", "scenario@kv_offload-tiny_llama")
    assert done.returncode == 0, done.stderr[-3000:]

    def fresh(*overrides: str) -> bool:
        scenario_stages(repo_copy, "study=scenarios_cpu", *SMALL, *overrides)
        status = run(repo_copy, sys.executable, "-m", "dvc", "status", "scenario@kv_offload-tiny_llama")
        assert status.returncode == 0, status.stderr
        return "up to date" in status.stdout

    assert fresh("sweep.scenario_models=[tiny_llama,tinyllama_1b]", "sweep.models=[tiny_llama,tinyllama_1b]")
    assert not fresh("scenarios.kv_offload.output_len=24")
