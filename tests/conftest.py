"""Shared fixtures: the repository root and a throwaway copy of it for pipeline tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def tracked_files() -> list[str]:
    """Files git tracks, plus new ones not ignored: what a fresh clone of this working tree would hold."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, check=True, capture_output=True, text=True,
    ).stdout.split()
    return [name for name in listing if (REPO_ROOT / name).is_file()]


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A fresh git repository holding the project's files, with no results and no DVC cache."""
    target = tmp_path / "study"
    for name in tracked_files():
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, destination)
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        subprocess.run(["git", *args], cwd=target, check=True)
    return target
