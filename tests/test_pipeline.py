"""The DVC pipeline end to end on the tiny model: report written, second repro idle, grown sweep incremental."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from inference_study.config import load_params
from inference_study.results import read_result

pytestmark = pytest.mark.slow
SMALL_SWEEP = ["sweep.backends=[hf_eager]", "sweep.batch_sizes=[1]", "sweep.input_lens=[16]", "sweep.output_lens=[4]"]


def run(repo: Path, *args: str) -> str:
    done = subprocess.run(list(args), cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def compose(repo: Path, *overrides: str) -> None:
    run(repo, sys.executable, "-m", "inference_study.cli", "compose", *overrides)


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def test_repro_builds_report_then_idles_then_runs_only_new_cells(repo_copy: Path) -> None:
    compose(repo_copy, *SMALL_SWEEP)
    first = run(repo_copy, "dvc", "repro")
    assert ran_stages(first) == {"env", "roofline", "model@tiny_llama", "bench@tiny_llama-hf_eager-1-16-4", "report"}

    study = load_params(repo_copy / "params.yaml")
    (cell,) = study.cells()
    result_path = repo_copy / cell.result_path(Path("results"))
    result = read_result(result_path)
    assert result.status == "ok" and result.tokens.produced_min == result.tokens.produced_max == 4
    report_dir = repo_copy / "reports" / "default"
    for name in ("report.md", "results.csv", "summary.json"):
        assert (report_dir / name).stat().st_size > 0
    assert sorted(p.name for p in (report_dir / "figures").glob("*.png")) == [
        "latency_vs_input_tiny_llama.png", "throughput_vs_batch_tiny_llama.png",
    ]
    assert "![latency_vs_input_tiny_llama](figures/latency_vs_input_tiny_llama.png)" in (report_dir / "report.md").read_text()

    # The environment is re-fingerprinted on every repro (always_changed); nothing else runs.
    second = run(repo_copy, "dvc", "repro")
    assert ran_stages(second) == {"env"}

    before = result_path.read_bytes()
    compose(repo_copy, *SMALL_SWEEP[:1], "sweep.batch_sizes=[1,2]", *SMALL_SWEEP[2:])
    grown = run(repo_copy, "dvc", "repro")
    assert ran_stages(grown) == {"env", "bench@tiny_llama-hf_eager-2-16-4", "report"}
    assert result_path.read_bytes() == before
    summary = json.loads((report_dir / "summary.json").read_text())
    assert (summary["cells_total"], summary["cells_ok"]) == (2, 2)
    rows = (report_dir / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2
