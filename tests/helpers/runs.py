"""Commands run in a throwaway copy of the repository, for the pipeline tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SMALL_SWEEP = ["sweep.backends=[hf_eager]", "sweep.batch_sizes=[1]", "sweep.input_lens=[16]", "sweep.output_lens=[4]"]


SECRET = "hf_" + "NeverWrite" * 2 + "ThisToken"  # built at run time: the literal is in no file


def run(repo: Path, *args: str) -> str:
    """Run a command in the repo copy with an HF token in its environment (it must never be written)."""
    done = subprocess.run(list(args), cwd=repo, capture_output=True, text=True, env=os.environ | {"HF_TOKEN": SECRET})
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def compose(repo: Path, *overrides: str) -> None:
    run(repo, sys.executable, "-m", "inference_study.cli", "compose", *overrides)


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))



def run_in_copy(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A command in the repository copy, importing the copy's own sources."""
    env = os.environ | {"PYTHONPATH": str(repo / "src"),
                        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(list(args), cwd=repo, capture_output=True, text=True, env=env)


def composed_stages(repo: Path, pattern: re.Pattern[str], *overrides: str) -> set[str]:
    """`name@item` of the DAG's stages matching `pattern` after composing params with `overrides`."""
    composed = run_in_copy(repo, sys.executable, "-m", "inference_study.cli", "compose", *overrides)
    assert composed.returncode == 0, composed.stderr
    listed = run_in_copy(repo, sys.executable, "-m", "dvc", "stage", "list")
    assert listed.returncode == 0, listed.stderr
    return {f"{name}@{item}" for name, item in pattern.findall(listed.stdout)}
