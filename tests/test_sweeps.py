"""Sweeping the way DVC and Hydra users expect, on the tiny model on CPU.

- `dvc exp run -S` with Hydra override syntax: DVC composes params.yaml from conf/ (hydra.enabled), a
  grown sweep runs only the new cell, the run-cache brings old timings back when params return to old
  values, and `-f`/`--no-run-cache` measure again; `dvc exp push` uses the committed default remote.
- `dvc exp run --queue` + `dvc queue start -j 1` runs whole configurations one after another.
- Hydra `-m` multirun of a stage script writes git-ignored, deterministic per-override directories,
  also through the submitit launcher's local executor, which starts every job at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.repository import cells
import yaml
from helpers.runs import SMALL_SWEEP, ran_stages, run

from inference_study.config import load_params

DVC = [sys.executable, "-m", "dvc"]
EXP_SWEEP = [arg for override in SMALL_SWEEP for arg in ("-S", override)]
CELL_1, CELL_2 = "tiny_llama/hf_eager/b1_i16_o4.json", "tiny_llama/hf_eager/b2_i16_o4.json"


def bench_runs(output: str) -> set[str]:
    return {stage for stage in ran_stages(output) if stage.startswith("bench@")}


def cell_bytes(repo: Path, key: str) -> bytes:
    return (repo / "results" / "cells" / key).read_bytes()


@pytest.mark.slow
def test_exp_run_composes_grows_and_the_run_cache_restores_old_timings(
    repo_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run(repo_copy, *DVC, "exp", "run", "-n", "small", *EXP_SWEEP)
    assert len(bench_runs(first)) == 1
    composed = yaml.safe_load((repo_copy / "params.yaml").read_text())
    assert composed["sweep"]["batch_sizes"] == [1] and composed["study"]["name"] == "default"  # from conf/
    measured = cell_bytes(repo_copy, CELL_1)

    # Growing the sweep measures only the new cell.
    grown = run(repo_copy, *DVC, "exp", "run", "-n", "grown", *EXP_SWEEP, "-S", "sweep.batch_sizes=[1,2]")
    assert len(bench_runs(grown)) == 1 and cell_bytes(repo_copy, CELL_1) == measured
    assert (repo_copy / "results" / "cells" / CELL_2).is_file()
    assert [c.batch_size for c in cells(load_params(repo_copy / "params.yaml"))] == [1, 2]

    # Change a measured setting and change it back: the run-cache restores the old timings, no run.
    run(repo_copy, *DVC, "exp", "run", *EXP_SWEEP, "-S", "bench.stopping.min_seconds=0.25")
    assert cell_bytes(repo_copy, CELL_1) != measured
    back = run(repo_copy, *DVC, "exp", "run", *EXP_SWEEP)
    assert not bench_runs(back) and "is cached - skipping run, checking out outputs" in back
    assert cell_bytes(repo_copy, CELL_1) == measured, "old timings came back from the run-cache"

    # Measuring again on purpose: force the cells (and only them) ...
    forced = run(repo_copy, *DVC, "repro", "--force", "--single-item", "--glob", "bench@*")
    assert ran_stages(forced) == bench_runs(forced) and len(bench_runs(forced)) == 1
    remeasured = cell_bytes(repo_copy, CELL_1)
    assert remeasured != measured
    # ... or bypass the run-cache when params return to values it has seen (min_seconds=0.25 above).
    run(repo_copy, sys.executable, "-m", "inference_study.cli", "compose", *SMALL_SWEEP,
        "bench.stopping.min_seconds=0.25")
    fresh = run(repo_copy, *DVC, "repro", "--no-run-cache", "--single-item", "--glob", "bench@*")
    assert len(bench_runs(fresh)) == 1 and "is cached" not in fresh
    assert cell_bytes(repo_copy, CELL_1) not in (measured, remeasured)

    # `dvc exp push` sends the experiment's commit to git and its results to the committed default remote.
    home = repo_copy.parent / "home"
    bare = repo_copy.parent / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    subprocess.run(["git", "remote", "add", "origin", str(bare)], cwd=repo_copy, check=True)
    monkeypatch.setenv("HOME", str(home))  # the shipped default remote is ~/.cache/inference-study/dvc-remote
    run(repo_copy, *DVC, "exp", "push", "origin", "small")
    (ref,) = subprocess.run(
        ["git", "ls-remote", str(bare)], capture_output=True, text=True, check=True
    ).stdout.split()[1::2]
    assert ref.startswith("refs/exps/") and ref.endswith("/small")
    lock = yaml.safe_load(
        subprocess.run(
            ["git", "show", f"{ref}:dvc.lock"], cwd=repo_copy, capture_output=True, text=True, check=True
        ).stdout
    )
    md5 = next(
        out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
        if out["path"] == f"results/cells/{CELL_1}"
    )
    remote = home / ".cache" / "inference-study" / "dvc-remote"
    assert (remote / "files" / "md5" / md5[:2] / md5[2:]).read_bytes() == measured, (
        "the experiment's cell was pushed"
    )


@pytest.mark.slow
def test_queued_configurations_become_separate_experiments(repo_copy: Path) -> None:
    queued = run(
        repo_copy,
        *DVC,
        "exp",
        "run",
        "--queue",
        *EXP_SWEEP,
        "-S",
        "backends.hf_eager.attn_implementation=sdpa,eager",
    )
    assert queued.count("Queued experiment") == 2
    run(repo_copy, *DVC, "queue", "start", "-j", "1")
    deadline = time.monotonic() + 600
    while True:
        status = run(repo_copy, *DVC, "queue", "status")
        if not any(state in status for state in ("Queued", "Running")):
            break
        assert time.monotonic() < deadline, status
        time.sleep(2)
    assert status.count("Success") == 2, status

    shown = json.loads(run(repo_copy, *DVC, "exp", "show", "--json"))
    experiments = [exp for baseline in shown for exp in (baseline.get("experiments") or [])]
    finished = {}
    for experiment in experiments:
        data = experiment["revs"][0]["data"]
        params = data["params"]["params.yaml"]["data"]
        metrics = data["metrics"]["reports/default/summary.json"]["data"]
        finished[params["backends"]["hf_eager"]["attn_implementation"]] = metrics
    assert set(finished) == {"sdpa", "eager"}
    assert all(m["cells_total"] == m["cells_ok"] == 1 for m in finished.values())


MULTIRUN = [
    "stages/model.py",
    "--config-dir",
    "conf",
    "--config-name",
    "config",
    "-m",
    "+cell.model=tiny_llama",
    "models.tiny_llama.seed=0,1",
]
JOB_DIRS = [f"+cell.model=tiny_llama,models.tiny_llama.seed={seed}" for seed in (0, 1)]


def multirun_jobs(repo: Path, *extra: str) -> list[Path]:
    """Run the model stage's multirun over two seeds; return each job's directory, checked."""
    run(repo, sys.executable, *MULTIRUN, *extra)
    sweep_dir = repo / "multirun" / "default"
    jobs = [sweep_dir / name for name in JOB_DIRS]
    weights = set()
    for seed, job in enumerate(jobs):
        provenance = json.loads((job / "models" / "tiny_llama" / "study_model.json").read_text())
        assert provenance["spec"]["seed"] == seed
        weights.add((job / "models" / "tiny_llama" / "model.safetensors").read_bytes())
    assert len(weights) == 2, "each job got its own override"
    assert not (repo / "results").exists(), "ad-hoc runs never write DVC outputs"
    assert (
        subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
        == ""
    )
    return jobs


def test_hydra_multirun_writes_git_ignored_per_override_dirs(repo_copy: Path) -> None:
    first = multirun_jobs(repo_copy)
    listing = sorted(p.name for p in (repo_copy / "multirun" / "default").iterdir())
    assert listing == sorted([*JOB_DIRS, "multirun.yaml"])
    second = multirun_jobs(repo_copy)
    assert (
        second == first and sorted(p.name for p in (repo_copy / "multirun" / "default").iterdir()) == listing
    )


def test_submitit_local_launcher_runs_the_same_jobs_all_at_once(repo_copy: Path) -> None:
    jobs = multirun_jobs(repo_copy, "hydra/launcher=submitit_local")
    submitit_logs = list((repo_copy / "multirun" / "default" / ".submitit").rglob("*_log.out"))
    assert len(submitit_logs) == 2, "one submitit job per override set"
    spans = [
        (
            (job / ".hydra" / "config.yaml").stat().st_mtime,
            (job / "models" / "tiny_llama" / "study_model.json").stat().st_mtime,
        )
        for job in jobs
    ]
    (start_a, end_a), (start_b, end_b) = spans
    assert start_a < end_b and start_b < end_a, f"the local executor ran the jobs concurrently: {spans}"
