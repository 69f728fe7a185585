"""The DVC pipeline end to end on the tiny model: report written, second repro idle, grown sweep incremental."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.repository import cells

from helpers.runs import SECRET, SMALL_SWEEP, compose, ran_stages, run

from inference_study.config import load_params
from inference_study.results import read_result

pytestmark = pytest.mark.slow
def cell_states(repo: Path) -> tuple[dict[int, str], int]:
    """`inference-study cells --json` in the repo copy: state by batch size, and the exit code."""
    done = subprocess.run([sys.executable, "-m", "inference_study.cli", "cells", "--json"], cwd=repo,
                          capture_output=True, text=True)
    return {row["batch_size"]: row["state"] for row in json.loads(done.stdout)}, done.returncode


def test_repro_builds_report_then_idles_then_runs_only_new_cells(repo_copy: Path) -> None:
    compose(repo_copy, *SMALL_SWEEP)
    first = run(repo_copy, "dvc", "repro")
    assert ran_stages(first) == {"env", "roofline", "model@tiny_llama", "bench@tiny_llama-hf_eager-1-16-4", "report"}

    study = load_params(repo_copy / "params.yaml")
    (cell,) = cells(study)
    result_path = repo_copy / cell.result_path(Path("results"))
    result = read_result(result_path)
    assert result.status == "ok" and result.tokens.produced_min == result.tokens.produced_max == 4
    report_dir = repo_copy / "reports" / "default"
    for name in ("report.md", "results.csv", "summary.json"):
        assert (report_dir / name).stat().st_size > 0
    assert sorted(p.name for p in (report_dir / "figures").glob("*.png")) == [
        "latency_vs_input_tiny_llama.png", "pareto_tiny_llama.png", "throughput_vs_batch_tiny_llama.png",
    ]
    assert "![latency_vs_input_tiny_llama](figures/latency_vs_input_tiny_llama.png)" in (report_dir / "report.md").read_text()

    # The environment is re-fingerprinted on every repro (always_changed); nothing else runs.
    second = run(repo_copy, "dvc", "repro")
    assert ran_stages(second) == {"env"}

    before = result_path.read_bytes()
    compose(repo_copy, *SMALL_SWEEP[:1], "sweep.batch_sizes=[1,2]", *SMALL_SWEEP[2:])
    assert cell_states(repo_copy) == ({1: "done", 2: "missing"}, 1)
    grown = run(repo_copy, "dvc", "repro")
    assert cell_states(repo_copy) == ({1: "done", 2: "done"}, 0)
    assert ran_stages(grown) == {"env", "bench@tiny_llama-hf_eager-2-16-4", "report"}
    assert result_path.read_bytes() == before
    summary = json.loads((report_dir / "summary.json").read_text())
    assert (summary["cells_total"], summary["cells_ok"]) == (2, 2)
    rows = (report_dir / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2

    compose(repo_copy, *SMALL_SWEEP[:1], "sweep.batch_sizes=[1,2]", *SMALL_SWEEP[2:], "bench.stopping.min_requests=40")
    states, exit_code = cell_states(repo_copy)
    assert (states, exit_code) == ({1: "stale", 2: "stale"}, 1), "a changed bench param makes every cell stale"

    written = [p for p in repo_copy.rglob("*") if p.is_file() and ".git" not in p.parts]
    assert len(written) > 20
    assert not [p for p in written if SECRET.encode() in p.read_bytes()], "the HF token leaked into a file"
    assert SECRET not in first + second + grown, "the HF token leaked into the logs"


def test_sigkill_mid_cell_leaves_no_result_and_repro_resumes(repo_copy: Path) -> None:
    """A stage killed mid-cell leaves nothing DVC or the report accepts; the next repro runs only what is missing."""
    compose(repo_copy, *SMALL_SWEEP)
    run(repo_copy, "dvc", "repro")
    (done_cell,) = cells(load_params(repo_copy / "params.yaml"))
    done_path = repo_copy / done_cell.result_path(Path("results"))
    before = done_path.read_bytes()

    compose(repo_copy, *SMALL_SWEEP[:1], "sweep.batch_sizes=[1,2]", *SMALL_SWEEP[2:])
    new_cell = next(c for c in cells(load_params(repo_copy / "params.yaml")) if c.batch_size == 2)
    new_path = repo_copy / new_cell.result_path(Path("results"))
    log = repo_copy / "repro.log"
    with open(log, "w") as output:
        process = subprocess.Popen(["dvc", "repro"], cwd=repo_copy, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + 120
    while "Running stage 'bench@tiny_llama-hf_eager-2-16-4'" not in log.read_text():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    time.sleep(1.0)  # inside the cell's process: imports, model load
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()

    assert not new_path.exists(), "no partial result"
    assert done_path.read_bytes() == before
    status = run(repo_copy, "dvc", "status")
    assert "bench@tiny_llama-hf_eager-2-16-4" in status and "bench@tiny_llama-hf_eager-1-16-4" not in status
    resumed = run(repo_copy, "dvc", "repro")
    assert ran_stages(resumed) == {"env", "bench@tiny_llama-hf_eager-2-16-4", "report"}
    assert read_result(new_path).status == "ok"
    assert done_path.read_bytes() == before


@pytest.mark.slow
def test_a_changed_verdict_rule_makes_every_bench_cell_stale(repo_copy: Path) -> None:
    """Stage deps are derived from the import graph: the harness imports validity.py, so a new verdict rule
    re-runs the cells whose verdicts it would change, and `dvc status` says so before any repro."""
    compose(repo_copy, *SMALL_SWEEP)
    run(repo_copy, sys.executable, "-m", "dvc", "repro")
    cell = "bench@tiny_llama-hf_eager-1-16-4"
    assert cell not in run(repo_copy, sys.executable, "-m", "dvc", "status")
    validity = repo_copy / "src" / "inference_study" / "validity.py"
    validity.write_text(validity.read_text() + "\n# a changed verdict rule\n")
    status = run(repo_copy, sys.executable, "-m", "dvc", "status")
    assert cell in status and "src/inference_study/validity.py" in status
