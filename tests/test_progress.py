"""Progress bars show on a terminal and stay quiet in CI or when stderr is a pipe, library bars included.

The decision is checked in child processes whose stderr really is a pseudo-terminal or a pipe, the way
`dvc repro` in a terminal and `dvc repro` in CI run the stage scripts.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from inference_study import progress

BARS = """
from inference_study.progress import progress, steps
list(progress(range(3), "timed iterations"))
with steps("random llama model", ["tokenizer", "weights", "save"]) as begin:
    for name in ("tokenizer", "weights", "save"):
        begin(name)
"""
LIBRARY_BARS = """
from inference_study.progress import configure_library_bars
configure_library_bars()
import huggingface_hub.utils
from transformers.utils import logging
print(not huggingface_hub.utils.are_progress_bars_disabled(), logging.is_progress_bar_enabled())
"""


def child_env(**overrides: str) -> dict[str, str]:
    """This process's environment without CI or a progress-bar setting (CI sets CI=true), plus overrides."""
    env = {k: v for k, v in os.environ.items() if k not in {"CI", progress.HUB_BARS_VARIABLE}}
    package_root = str(Path(progress.__file__).parents[1])  # the child imports the same inference_study
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return env | overrides


def run_child(code: str, env: dict[str, str], terminal: bool) -> tuple[str, str]:
    """(stdout, stderr) of `python -c code`, its stderr a pseudo-terminal when `terminal`, else a pipe."""
    if not terminal:
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout, done.stderr
    parent_end, child_end = pty.openpty()
    fcntl.ioctl(
        child_end, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0)
    )  # a real terminal has a width
    with subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=child_end,
        stdin=subprocess.DEVNULL,
        text=True,
    ) as child:
        os.close(child_end)
        captured = b""
        while True:
            try:
                chunk = os.read(parent_end, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            captured += chunk
        stdout = child.stdout.read()
        assert child.wait(timeout=120) == 0, captured.decode(errors="replace")
    os.close(parent_end)
    return stdout, captured.decode(errors="replace")


@pytest.mark.parametrize(
    ("ci", "terminal", "expected_quiet"),
    [("", True, False), ("true", True, True), ("", False, True), ("1", False, True)],
)
def test_quiet_decision(
    monkeypatch: pytest.MonkeyPatch, ci: str, terminal: bool, expected_quiet: bool
) -> None:
    monkeypatch.setenv("CI", ci)

    class Stream:
        def isatty(self) -> bool:
            return terminal

    monkeypatch.setattr(sys, "stderr", Stream())
    assert progress.quiet() is expected_quiet


def test_bars_show_on_a_terminal() -> None:
    _, stderr = run_child(BARS, child_env(), terminal=True)
    assert "timed iterations" in stderr and "/3 [" in stderr
    assert "random llama model" in stderr and "save" in stderr


@pytest.mark.parametrize(("ci", "terminal"), [("true", True), (None, False)], ids=["ci", "pipe"])
def test_bars_stay_quiet_in_ci_and_off_a_terminal(ci: str | None, terminal: bool) -> None:
    env = child_env(CI=ci) if ci else child_env()
    _, stderr = run_child(BARS, env, terminal=terminal)
    assert stderr.strip() == ""


@pytest.mark.parametrize(
    ("ci", "terminal", "shown"), [(None, True, True), ("true", True, False), (None, False, False)]
)
def test_library_bars_follow_the_same_rule(ci: str | None, terminal: bool, shown: bool) -> None:
    env = child_env(CI=ci) if ci else child_env()
    stdout, _ = run_child(LIBRARY_BARS, env, terminal=terminal)
    assert stdout.split() == [str(shown), str(shown)]


def test_a_users_own_library_setting_is_kept() -> None:
    stdout, _ = run_child(LIBRARY_BARS, child_env(**{progress.HUB_BARS_VARIABLE: "0"}), terminal=False)
    assert stdout.split() == ["True", "True"]


def test_steps_rejects_an_undeclared_step() -> None:
    with pytest.raises(ValueError, match="unknown step 'compile'"):
        with progress.steps("build", ["weights"]) as begin:
            begin("compile")
