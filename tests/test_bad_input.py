"""Bad input and faults never cost a result: each is refused with one line naming the file or key, and what
was there before stays (a cell has one identity, read the way DVC reads it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.repository import REPO_ROOT, composed
from helpers.runs import SMALL_SWEEP, compose, run

from inference_study.config import ModelSpec, parse_params, validate_params
from inference_study.models import hub_reachable
from inference_study.preflight import check_before_work
from inference_study.results import write_text_atomic
from inference_study.strict import ConfigError


def cli(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "inference_study.cli", *args], cwd=repo, capture_output=True,
                          text=True, timeout=300)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The error a failed command printed, asserted to be one line on stderr without a traceback."""
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    return lines[0]


def test_params_are_read_as_dvc_reads_them_yaml_1_2() -> None:
    """`010` is ten to DVC (YAML 1.2) and to the study; `yes` is a string to both, so no count."""
    raw = parse_params("sweep:\n  batch_sizes:\n  - 010\n  - yes\n", "params.yaml")
    assert raw["sweep"]["batch_sizes"] == [10, "yes"]
    study = composed()
    study["sweep"]["batch_sizes"] = raw["sweep"]["batch_sizes"][:1]
    assert validate_params(study).sweep.batch_sizes == [10]
    study["sweep"]["batch_sizes"] = raw["sweep"]["batch_sizes"]
    with pytest.raises(ConfigError, match=r"^params.yaml: sweep.batch_sizes.1: Input should be a valid integer"):
        validate_params(study)


@pytest.mark.parametrize("command", [["cells"], ["report"]])
def test_an_unparseable_params_file_is_one_line_naming_it(repo_copy: Path, command: list[str]) -> None:
    (repo_copy / "params.yaml").write_text("sweep: [unclosed\n")
    error = one_line_error(cli(repo_copy, *command))
    assert error.startswith("error: params.yaml: not valid YAML at line 2")


@pytest.mark.parametrize(("text", "finding"), [(None, "is missing"), ("sweep: [", "not valid YAML")])
def test_doctor_tells_missing_and_unparseable_params_apart_from_drift(repo_copy: Path, text, finding) -> None:
    params = repo_copy / "params.yaml"
    params.unlink() if text is None else params.write_text(text)
    done = cli(repo_copy, "doctor", "--json")
    findings = {item["topic"]: item for item in json.loads(done.stdout)}
    assert done.returncode == 1 and "params.yaml" in done.stderr
    assert findings["params.yaml"]["state"] == "problem" and finding in findings["params.yaml"]["detail"]


def test_a_hub_model_without_network_is_one_line_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    spec = ModelSpec.model_validate({"source": "hf", "architecture": "llama", "dtype": "float16", "max_seq_len": 64,
                                     "hf_repo_id": "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "revision": "main"})
    problem = hub_reachable(spec)
    assert problem and "\n" not in problem and "cannot reach TinyLlama/TinyLlama-1.1B-Chat-v1.0@main" in problem


def test_an_unwritable_results_folder_is_found_before_any_measurement(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="not writable"):
        check_before_work(validate_params(composed()), blocker / "results", blocker / "results" / "models")


def test_a_missing_local_model_path_is_found_before_any_work(tmp_path: Path) -> None:
    raw = composed()
    raw["models"]["tiny_llama"] = {**raw["models"]["tiny_llama"], "source": "local", "local_path": str(tmp_path)}
    with pytest.raises(ConfigError, match=r"models.tiny_llama.local_path: .* \(no config.json\)"):
        check_before_work(validate_params(raw), tmp_path / "results", tmp_path / "results" / "models")


def test_cuda_on_a_machine_without_it_is_found_before_any_work(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    raw = composed()
    raw["bench"] = {**raw["bench"], "device": "cuda"}
    with pytest.raises(ConfigError, match="bench.device: 'cuda' but torch"):
        check_before_work(validate_params(raw), tmp_path / "results", tmp_path / "results" / "models")


def test_atomically_written_files_have_normal_modes(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "summary.json", "{}\n")
    finally:
        os.umask(mask)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o644


def test_cells_while_a_repro_holds_the_lock_reads_the_files_and_says_so(repo_copy: Path) -> None:
    from dvc.repo import Repo

    with Repo(str(repo_copy)) as repo, repo.lock:  # what a running `dvc repro` holds
        done = cli(repo_copy, "cells", "--json")
    assert "Traceback" not in done.stderr and done.returncode == 1  # the cells have not run: not all done
    assert "note: a `dvc repro` holds the repository's lock" in done.stderr
    assert '"state": "missing"' in done.stdout


@pytest.mark.slow
def test_a_failed_check_before_work_leaves_every_result_in_place(repo_copy: Path) -> None:
    """`bench.device=cuda` on a CPU machine: the env stage refuses it before DVC deletes anything."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    compose(repo_copy, *SMALL_SWEEP)
    run(repo_copy, sys.executable, "-m", "dvc", "repro")
    results = sorted((repo_copy / "results").rglob("*.json"))
    before = {path: path.read_bytes() for path in results}
    compose(repo_copy, *SMALL_SWEEP, "bench.device=cuda")
    done = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=repo_copy, capture_output=True, text=True)
    assert done.returncode != 0 and "bench.device: 'cuda' but torch" in done.stderr + done.stdout
    assert {path: path.read_bytes() for path in results} == before
    assert (repo_copy / "results" / "models" / "tiny_llama" / "config.json").is_file()


@pytest.mark.slow
def test_cells_polled_during_a_real_repro_never_crash(repo_copy: Path) -> None:
    compose(repo_copy, *SMALL_SWEEP)
    repro = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=repo_copy, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    polls = []
    while repro.poll() is None and len(polls) < 20:
        polls.append(cli(repo_copy, "cells", "--json"))
    repro.wait(timeout=600)
    assert polls, "the repro finished before a poll"
    for done in polls:
        assert "Traceback" not in done.stderr and done.returncode in (0, 1), done.stderr
    assert cli(repo_copy, "cells").returncode == 0  # every cell done once the repro finished


def test_a_result_read_outside_dvc_is_checked_against_the_params_that_read_it(tmp_path: Path) -> None:
    """`cells --results DIR`: a file holding another cell is invalid, one measured under other settings stale."""
    import shutil

    from inference_study.cell_status import cell_statuses
    from inference_study.config import load_params

    inputs = REPO_ROOT / "reports" / "measured" / "cpu" / "inputs"
    study = load_params(inputs / "params.yaml", legacy_ok=True)
    shutil.copytree(inputs / "cells", tmp_path / "cells")
    first, second = (status.cell for status in cell_statuses(study, tmp_path, {})[:2])
    shutil.copyfile(second.result_path(tmp_path), first.result_path(tmp_path))  # first's file holds second
    raw = study.model_dump(mode="json")
    raw["bench"]["max_cv"] = 0.5  # another verdict threshold: every result was measured under other settings
    states = {s.cell: s for s in cell_statuses(validate_params(raw, legacy_ok=True), tmp_path, {})}
    assert states[first].state == "invalid" and f"holds cell {second.key}" in states[first].detail
    assert states[second].state == "stale" and "measured under other settings" in states[second].detail


def test_every_unit_writes_exactly_the_output_its_dvc_stage_declares() -> None:
    """The plan's result path of each cell and scenario run is the `outs` entry DVC names from the raw matrix
    values, so no stage can overwrite another stage's result (the float-batch defect)."""
    import yaml

    from inference_study.plan import bench_units, scenario_units

    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    study = validate_params(composed("study=scenarios_cpu"))
    bench_out = stages["bench"]["outs"][0]
    for unit in bench_units(study):
        item = {"model": unit.cell.model, "backend": unit.cell.backend, "batch": unit.cell.batch_size,
                "input": unit.cell.input_len, "output": unit.cell.output_len}
        declared = bench_out
        for key, value in item.items():
            declared = declared.replace(f"${{item.{key}}}", str(value))
        assert unit.result_path(Path("results")) == Path(declared)
    scenario_out = stages["scenario"]["outs"][0]
    for unit in scenario_units(study):
        declared = scenario_out.replace("${item.model}", unit.model_name).replace("${item.scenario}", unit.scenario)
        assert unit.result_path(Path("results")) == Path(declared)
