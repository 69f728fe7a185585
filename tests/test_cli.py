"""The `inference-study` console script: every command has --help, errors go to stderr with a non-zero exit,
compose writes and checks params.yaml, report refuses to build from nothing, doctor says what runs here.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers.repository import REPO_ROOT
from inference_study.backends.hf.loop import HfCompiledLoop
from inference_study.cli import main
from inference_study.doctor import STATES

REPO = REPO_ROOT
COMMANDS = ["compose", "cells", "report", "doctor", "dag"]


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run the CLI the way the console script does, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "inference_study.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)], ids=["top", *COMMANDS])
def test_every_command_has_help(command: list[str]) -> None:
    done = cli(*command, "--help")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("usage: inference-study" + "".join(f" {c}" for c in command))
    if not command:
        assert all(name in done.stdout for name in COMMANDS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compose", "nosuch=1"], "Could not override 'nosuch'"),
        (["compose", "sweep.batch_sizes=[1"], "no viable alternative at input '[1'"),
        (["compose", "bench=nosuch"], "Could not find 'bench/nosuch'"),
        (["compose", "sweep.batch_sizes=[0]"], "sweep.batch_sizes.0"),
        # a float or bool would name a DVC stage b2.0_... while the study measured cell b2: refused
        (["compose", "sweep.batch_sizes=[2.0]"], "sweep.batch_sizes.0: Input should be a valid integer"),
        (["compose", "sweep.batch_sizes=[true]"], "sweep.batch_sizes.0: Input should be a valid integer"),
        (["compose", "sweep.input_lens=[16.0]"], "sweep.input_lens.0: Input should be a valid integer"),
        (["compose", "sweep.batch_sizes=4"], "sweep.batch_sizes: Input should be a valid list"),
        (["compose", "--check", "study=h100"], "takes no overrides"),
        (["report", "--params", "missing.yaml"], "missing.yaml not found"),
        (
            ["report", "--results", "no-results-here"],
            "units of params.yaml has a result under no-results-here/cells/",
        ),
        (["cells", "--params", "missing.yaml"], "missing.yaml not found"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_errors_go_to_stderr_with_a_nonzero_exit(args: list[str], message: str, repo_copy: Path) -> None:
    before = (repo_copy / "params.yaml").read_bytes()
    done = cli(*args, cwd=repo_copy)
    assert done.returncode == 2, done
    assert message in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""
    assert (repo_copy / "params.yaml").read_bytes() == before, "a failed command must not touch params.yaml"


def test_compose_writes_overrides_and_check_catches_the_drift(repo_copy: Path) -> None:
    assert cli("compose", "--check", cwd=repo_copy).returncode == 0
    done = cli("compose", "sweep.batch_sizes=[2]", cwd=repo_copy)
    assert done.returncode == 0 and "wrote params.yaml with sweep.batch_sizes=[2]" in done.stdout
    check = cli("compose", "--check", cwd=repo_copy)
    assert check.returncode == 1
    assert "-  - 2" in check.stderr and "+  - 1" in check.stderr


def test_report_rebuilds_a_committed_report_from_its_inputs(repo_copy: Path) -> None:
    report = repo_copy / "reports" / "measured" / "cpu" / "report.md"
    committed = report.read_bytes()
    report.unlink()
    done = cli("report", "--inputs", "reports/measured/cpu/inputs", cwd=repo_copy)  # rebuilt where its inputs are
    assert done.returncode == 0, done.stderr
    assert report.read_bytes() == committed


def doctor(
    capsys: pytest.CaptureFixture[str], root: Path, *args: str
) -> tuple[int, dict[str, dict[str, str]], str]:
    """`doctor --json` in this process (slow imports, paid once): exit code, findings by topic, stderr."""
    code = main(["doctor", "--json", "--root", str(root), *args])
    out, err = capsys.readouterr()
    return code, {f["topic"]: f for f in json.loads(out)}, err


def test_doctor_reports_this_machine_and_checkout(capsys: pytest.CaptureFixture[str]) -> None:
    code, findings, stderr = doctor(capsys, REPO)
    assert code == 0, stderr
    assert all(f["state"] in STATES for f in findings.values())
    assert findings["torch"]["detail"].startswith(torch.__version__)
    assert findings["GPU"]["state"] == ("ok" if torch.cuda.is_available() else "absent")
    assert findings["NVML"]["state"] in {"ok", "absent"}
    trtllm_installed = importlib.util.find_spec("tensorrt_llm") is not None
    assert findings["tensorrt_llm"]["state"] == ("ok" if trtllm_installed else "absent")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for name in ("hf_eager", "hf_static_compiled", "hf_compiled_loop"):
        assert findings[f"backend {name}"] == {
            "topic": f"backend {name}",
            "state": "ok",
            "detail": f"can run on {device}",
        }
    assert findings["DVC remote"]["state"] == "ok" and findings["DVC remote"]["detail"].startswith(
        "local (default)"
    )
    assert findings["params.yaml"]["state"] == "ok"


def test_doctor_prints_a_table_from_the_console_script() -> None:
    table = cli("doctor")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["check", "state", "detail"]
    assert any(line.split()[:2] == ["DVC", "remote"] for line in table.stdout.splitlines())


def test_doctor_problems_outside_a_checkout(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, findings, stderr = doctor(capsys, tmp_path)
    assert code == 1
    assert findings["DVC remote"]["state"] == findings["params.yaml"]["state"] == "problem"
    assert "2 problem(s): DVC remote, params.yaml" in stderr


def test_doctor_names_a_backend_that_cannot_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        HfCompiledLoop, "unavailable_reason", classmethod(lambda cls, device: "no compiler here")
    )
    code, findings, stderr = doctor(capsys, REPO)
    assert code == 1
    assert findings["backend hf_compiled_loop"]["state"] == "problem"
    assert findings["backend hf_compiled_loop"]["detail"] == "no compiler here"
    assert "1 problem(s): backend hf_compiled_loop" in stderr


def test_doctor_reads_the_default_remote_from_dvc_config(
    capsys: pytest.CaptureFixture[str], repo_copy: Path
) -> None:
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "remote", "add", "-d", "shared", "s3://bucket/study"], cwd=repo_copy, check=True)
    _, findings, _ = doctor(capsys, repo_copy)
    assert findings["DVC remote"] == {
        "topic": "DVC remote",
        "state": "ok",
        "detail": "shared (default): s3://bucket/study (not contacted)",
    }
    subprocess.run([*dvc, "remote", "default", "--unset"], cwd=repo_copy, check=True)
    _, findings, _ = doctor(capsys, repo_copy)
    assert findings["DVC remote"]["state"] == "absent"
