"""The Ray executor on a local Ray instance of 2 CPUs and 2 logical GPUs. It refuses bad input before any
work, each with one line, and a result measured in another environment than the driver's env.json. End to
end in a throwaway copy (slow): two cells measured at once, each on its own GPU, recorded in dvc.lock as a
serial `dvc repro` records them; a task killed mid-cell leaves only its cell missing, and the rerun
measures only it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from inference_study.cell_status import dvc_state
from inference_study.cli import main
from inference_study.config import validate_params
from inference_study.environment import collect_environment
from inference_study.executor import Resources, RunSummary, check_resources, measure_units, ray_cluster, run_study
from inference_study.plan import bench_units
from inference_study.results import read_result
from inference_study.strict import ConfigError

from helpers.repository import composed, copy_repository
from helpers.runs import SMALL_SWEEP, compose, ran_stages, run

ray = pytest.importorskip("ray")

FAST = ["bench.stopping.min_seconds=0", "bench.stopping.max_seconds=0.5"]


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance of 2 CPUs and 2 logical GPUs, shared by this module's tests."""
    ray.init(num_cpus=2, num_gpus=2)
    yield
    ray.shutdown()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_address_is_refused_at_once(capsys):
    address = f"127.0.0.1:{closed_port()}"
    assert main(["run", "--address", address]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --address: no Ray cluster answers at {address}") and err.count("\n") == 1


@pytest.mark.parametrize("address", ["localhost", "ray://host:port"])
def test_an_address_that_is_no_address_is_refused(address):
    with pytest.raises(ConfigError, match=r"^--address: .* is not host:port"), ray_cluster(address, None):
        pass


@pytest.mark.parametrize(("address", "num_gpus"), [("auto", 2), (None, -1)])
def test_logical_gpus_are_a_count_for_a_local_instance(address, num_gpus):
    with pytest.raises(ConfigError, match="^--num-gpus: "), ray_cluster(address, num_gpus):
        pass


@pytest.mark.parametrize(("resources", "key"), [
    (Resources(gpus=3), "--gpus-per-unit"),
    (Resources(gpus=1, cpus=3), "--cpus-per-unit"),
])
def test_a_unit_no_node_can_hold_is_refused(local_ray, resources, key):
    with pytest.raises(ConfigError, match=f"^{key}: ") as refused:
        check_resources(resources)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(("kwargs", "key"), [({"gpus": -1}, "--gpus-per-unit"), ({"cpus": 0}, "--cpus-per-unit"),
                                              ({"max_parallel": 0}, "--max-parallel")])
def test_impossible_resources_are_refused(kwargs, key):
    with pytest.raises(ConfigError, match=f"^{key}: "):
        Resources(**kwargs)


def test_more_gpus_per_unit_than_the_cluster_has_stops_before_any_work(local_ray, tmp_path, monkeypatch):
    """Refused on the cluster's resources before the working directory is even read."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^--gpus-per-unit: 3 GPU\(s\) per unit, but no node of the Ray cluster "
                                          r"has more than 2 \(a local instance takes logical GPUs from --num-gpus\)$"):
        run_study(Resources(gpus=3))
    assert not list(tmp_path.iterdir())


def test_a_result_of_another_environment_is_refused(local_ray, tmp_path, model_dir, capsys):
    """The driver's env.json says another CPU: the worker's result is refused, never written nor recorded."""
    study = validate_params(composed(*SMALL_SWEEP, *FAST))
    [unit] = bench_units(study)
    shutil.copytree(model_dir, tmp_path / "results" / "models" / "tiny_llama")
    driver = collect_environment().model_copy(update={"cpu": "another CPU"})
    recorded: list[str] = []
    [outcome] = measure_units(tmp_path, {"bench@one": unit}, Resources(), driver.fingerprint, recorded.append)
    assert (outcome.stage, outcome.state, recorded) == ("bench@one", "refused", [])
    assert outcome.detail == (f"measured in environment {collect_environment().fingerprint}, not in results/env.json's "
                              f"{driver.fingerprint}: one comparison never mixes environments")
    assert "\n" not in outcome.detail and not unit.result_path(tmp_path / "results").exists()
    assert capsys.readouterr().out.startswith("bench@one: refused (CUDA_VISIBLE_DEVICES=")


TWO_CELLS = [SMALL_SWEEP[0], "sweep.batch_sizes=[1,2]", *SMALL_SWEEP[2:]]
TIMED = ["bench.stopping.min_seconds=2", "bench.stopping.max_seconds=2"]  # longer than the two tasks' start skew
LONG = ["bench.stopping.min_seconds=5", "bench.stopping.max_seconds=5"]  # long enough to be killed mid-cell
KILL_AFTER_S = 4  # into the task: past the imports and the model load on 2 cores, inside the timed region
STAGES = ["bench@tiny_llama-hf_eager-1-16-4", "bench@tiny_llama-hf_eager-2-16-4"]
UPSTREAM = {"env", "roofline", "model@tiny_llama"}


@pytest.fixture(scope="module")
def study_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One throwaway copy for the module's pipeline tests: the second finds env, roofline and model done."""
    return copy_repository(tmp_path_factory.mktemp("executor") / "study")


def result_path(repo: Path, stage: str) -> Path:
    batch = stage.split("-")[-3]
    return repo / "results" / "cells" / "tiny_llama" / "hf_eager" / f"b{batch}_i16_o4.json"


def lock_entries(repo: Path) -> dict[str, dict]:
    """Each bench stage's dvc.lock entry less its output hashes (those of a new measurement differ)."""
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {name: {key: value for key, value in stages[name].items() if key != "outs"} for name in STAGES}


def only_env_changed(repo: Path) -> bool:
    return set(dvc_state(repo).changes) == {"env"}  # env is always_changed


@pytest.mark.slow
def test_two_cells_run_at_once_on_their_own_gpus_as_dvc_repro_would(local_ray, study_copy, monkeypatch):
    monkeypatch.chdir(study_copy)
    compose(study_copy, *TWO_CELLS, *TIMED)
    summary = run_study(Resources())
    assert ran_stages(summary.upstream_log) == UPSTREAM  # no cell through DVC
    assert sorted(o.stage for o in summary.outcomes) == STAGES and {o.state for o in summary.outcomes} == {"ok"}
    placements = [o.placement for o in summary.outcomes]
    assert {p.cuda_visible_devices for p in placements} == {"0", "1"}
    assert max(p.started for p in placements) < min(p.finished for p in placements)  # lifetimes overlap
    assert summary.peak_concurrency() == 2 and ran_stages(summary.report_log) == {"report"}
    assert only_env_changed(study_copy)
    assert ran_stages(run(study_copy, sys.executable, "-m", "dvc", "repro")) == {"env"}

    measured = {stage: read_result(result_path(study_copy, stage)) for stage in STAGES}
    recorded = lock_entries(study_copy)
    began = time.time()
    serial = run(study_copy, sys.executable, "-m", "dvc", "repro", "--force", "--single-item", *STAGES)
    serial_s = time.time() - began
    assert ran_stages(serial) == set(STAGES)
    for stage in STAGES:
        again = read_result(result_path(study_copy, stage))
        assert (again.cell, again.config_hash) == (measured[stage].cell, measured[stage].config_hash)
    assert lock_entries(study_copy) == recorded
    print(f"\n{summary.line()}\nserial dvc repro of the same {len(STAGES)} cells: {serial_s:.1f} s")


def kill_one_cell_when_running(after_s: float, killed: list[int]) -> None:
    """SIGKILL one Ray worker `after_s` seconds into a cell (a worker titles itself ray::_measure then)."""
    deadline = time.time() + 120
    while time.time() < deadline:
        for pid in os.listdir("/proc"):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if pid.isdigit() and title.startswith(b"ray::_measure"):
                time.sleep(after_s)
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
                return
        time.sleep(0.1)


@pytest.mark.slow
def test_a_killed_cell_stays_missing_and_the_rerun_measures_only_it(local_ray, study_copy, monkeypatch):
    monkeypatch.chdir(study_copy)
    compose(study_copy, *TWO_CELLS, *LONG)
    killed: list[int] = []
    killer = threading.Thread(target=kill_one_cell_when_running, args=(KILL_AFTER_S, killed))
    killer.start()
    first: RunSummary = run_study(Resources())
    killer.join()
    states = {o.stage: o.state for o in first.outcomes}
    [victim] = [stage for stage, state in states.items() if state == "crashed"]
    [survivor] = [stage for stage, state in states.items() if state == "ok"]
    assert killed and first.report_log is None and not first.ok
    assert not result_path(study_copy, victim).exists() and result_path(study_copy, survivor).is_file()
    assert {victim, survivor} <= set(STAGES) and victim in dvc_state(study_copy).changes
    assert survivor not in dvc_state(study_copy).changes

    second = run_study(Resources())
    assert [(o.stage, o.state) for o in second.outcomes] == [(victim, "ok")]
    assert ran_stages(second.upstream_log) == {"env"} and ran_stages(second.report_log) == {"report"}
    assert only_env_changed(study_copy)
