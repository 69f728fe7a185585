"""Measure the study's stale cells on every GPU of a host or of a Ray cluster, one cell per GPU at a time.

`dvc repro` runs its stages one after another (DVC has no parallel repro), and its queue workers cannot be
pinned to a GPU; Ray can: a task asking for a GPU runs with CUDA_VISIBLE_DEVICES naming the one it holds, on
one host or many. DVC still decides what is stale and records what ran: the upstream stages run through
`dvc repro`, each stale bench or scenario stage becomes one Ray task running its stage's code path
(run.run_unit), the driver writes the result atomically to the stage's output and `dvc commit`s exactly that
stage, and the report runs through `dvc repro` last.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference_study.cell_status import DvcState, dvc_state
from inference_study.config import PARAMS_FILE, load_params
from inference_study.environment import Environment, collect_environment
from inference_study.pipeline import ENV_NAME, RESULTS_DIR, model_dir
from inference_study.plan import BenchUnit, ScenarioUnit, bench_units, scenario_units
from inference_study.progress import configure_library_bars
from inference_study.results import CellResult, ResultError, ScenarioResult, write_result, write_scenario_result
from inference_study.run import run_unit
from inference_study.strict import ConfigError

REPORT_STAGE = "report"  # the one stage downstream of the cells: it runs once they are all recorded
LOCK_FILE = Path(".dvc/tmp/inference-study-run.lock")
CONNECT_TIMEOUT_S = 5.0
RECORDED = ("ok", "oom", "failed")  # a result's own statuses: each is a measured outcome that DVC records

Unit = BenchUnit | ScenarioUnit
Result = CellResult | ScenarioResult


class RunError(RuntimeError):
    """A stage that DVC runs for the executor (upstream or the report) failed; the message says which."""


@dataclass(frozen=True)
class Resources:
    """What each task asks of Ray: a unit's GPUs and the host CPUs it keeps busy (so host-bound rungs on one
    host are limited by its cores), and how many tasks may be in flight at once."""

    gpus: float = 1
    cpus: float = 1
    max_parallel: int | None = None

    def __post_init__(self) -> None:
        if self.gpus < 0:
            raise ConfigError(f"--gpus-per-unit: {self.gpus} is negative")
        if self.cpus <= 0:
            raise ConfigError(f"--cpus-per-unit: {self.cpus} must be above 0")
        if self.max_parallel is not None and self.max_parallel < 1:
            raise ConfigError(f"--max-parallel: {self.max_parallel} must be at least 1")


@dataclass(frozen=True)
class Placement:
    """Where and when a task ran, as the task itself saw it."""

    cuda_visible_devices: str | None
    node: str
    pid: int
    started: float
    finished: float


@dataclass(frozen=True)
class Outcome:
    """One unit's end: its result's status (ok, oom, failed: written and committed), `crashed` (the task
    died or raised: nothing written) or `refused` (a result the driver would not commit: nothing written)."""

    stage: str
    state: str
    detail: str
    placement: Placement | None = None

    def line(self, origin: float) -> str:
        where = ""
        if self.placement:
            p = self.placement
            where = (f" (CUDA_VISIBLE_DEVICES={p.cuda_visible_devices}, node {p.node[:8]}, "
                     f"{p.started - origin:.1f}-{p.finished - origin:.1f} s)")
        return f"{self.stage}: {self.state}{where}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class RunSummary:
    """What one run did, for its closing line and for tests: DVC's logs, each unit's end, the times."""

    upstream_log: str
    outcomes: list[Outcome]
    report_log: str | None  # None when the report did not run (a unit crashed or was refused)
    measure_s: float
    total_s: float

    @property
    def ok(self) -> bool:
        return all(outcome.state in RECORDED for outcome in self.outcomes)

    def peak_concurrency(self) -> int:
        """The most tasks that ran at the same moment, from the tasks' own clocks."""
        edges = sorted((t, step) for o in self.outcomes if o.placement
                       for t, step in ((o.placement.started, 1), (o.placement.finished, -1)))
        running = peak = 0
        for _, step in edges:
            running += step
            peak = max(peak, running)
        return peak

    def line(self) -> str:
        states = Counter(outcome.state for outcome in self.outcomes)
        counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "nothing stale"
        report = "report up to date" if self.report_log is not None else "report not run: a unit is missing"
        return (f"run: {len(self.outcomes)} unit(s): {counts}; up to {self.peak_concurrency()} at once; "
                f"{self.measure_s:.1f} s measuring, {self.total_s:.1f} s in all; {report}")


@contextmanager
def ray_cluster(address: str | None, num_gpus: int | None) -> Iterator[None]:
    """Join the Ray cluster at `address`, or start a local Ray instance (with `num_gpus` logical GPUs when
    given), and leave it afterwards; an address nobody answers at is refused at once, not after Ray's
    minutes of retries."""
    try:
        import ray  # heavy and optional (the `ray` extra): only the executor needs it
    except ImportError:
        raise ConfigError("inference-study run needs Ray: pip install 'inference-study[ray]'") from None
    if address is not None and num_gpus is not None:
        raise ConfigError("--num-gpus: gives a local Ray instance logical GPUs; a cluster at --address has its own")
    if num_gpus is not None and num_gpus < 0:
        raise ConfigError(f"--num-gpus: {num_gpus} is negative")
    if address not in (None, "auto"):
        _check_reachable(address)
    try:
        ray.init(address=address, **({} if num_gpus is None else {"num_gpus": num_gpus}))
    except Exception as error:  # Ray raises a bare Exception for a local node that does not start in time
        raise ConfigError(f"{'--address' if address else 'ray.init'}: {_first_line(error)}") from None
    try:
        yield
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address: {address!r} is not host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise ConfigError(f"--address: no Ray cluster answers at {address} ({error})") from None


def check_resources(resources: Resources, sharded: dict[str, int] | None = None) -> None:
    """Refuse a unit no node of the cluster can hold: Ray would wait for such a node forever. `sharded` names the
    swept models with tensor parallelism, and their ranks: such a unit asks for that many times the GPUs."""
    import ray  # heavy and optional (the `ray` extra): only the executor needs it

    nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    most_gpus = max((node.get("GPU", 0) for node in nodes), default=0)
    if resources.gpus > most_gpus:
        raise ConfigError(f"--gpus-per-unit: {resources.gpus:g} GPU(s) per unit, but no node of the Ray cluster has "
                          f"more than {most_gpus:g} (a local instance takes logical GPUs from --num-gpus)")
    for model, ranks in (sharded or {}).items():
        if resources.gpus * ranks > most_gpus:
            raise ConfigError(f"models.{model}.tensor_parallel: {ranks} ranks need {resources.gpus * ranks:g} GPUs of "
                              f"one node, but no node of the Ray cluster has more than {most_gpus:g}")
    if not any(node.get("GPU", 0) >= resources.gpus and node.get("CPU", 0) >= resources.cpus for node in nodes):
        raise ConfigError(f"--cpus-per-unit: no node of the Ray cluster with {resources.gpus:g} GPU(s) has "
                          f"{resources.cpus:g} CPUs")


def run_study(resources: Resources) -> RunSummary:
    """Bring the study in the working directory (a DVC repository's root, as for `dvc repro`) up to date on the
    connected Ray cluster: upstream stages through DVC, each stale unit as one task, each result committed as
    it comes, then the report once every unit is recorded.

    Every node must see the repository at the same path (one host, or a shared filesystem)."""
    from dvc.repo import Repo  # heavy: DVC's repository API, to record each finished stage in dvc.lock

    check_resources(resources)
    root = Path.cwd()
    with _exclusive(root):
        study = load_params(root / PARAMS_FILE)
        sharded = study.sharded_models()
        if sharded:  # the cluster's other limits were checked above, before the working directory was read
            check_resources(resources, sharded)
        planned = {unit.result_path(root / RESULTS_DIR).resolve(): unit
                   for unit in [*bench_units(study), *scenario_units(study)]}
        state = _state(root)
        unit_stages = {name: planned[outs[0]] for name, outs in state.outputs.items()
                       if len(outs) == 1 and outs[0] in planned}
        start = time.time()
        upstream = [name for name in state.outputs if name not in unit_stages and name != REPORT_STAGE]
        upstream_log = _upstream(root, upstream, resources)
        stale = {name: unit for name, unit in unit_stages.items() if name in _state(root).changes}
        measuring = time.time()
        with Repo(str(root)) as repo:
            outcomes = measure_units(root, stale, resources, _fingerprint(root / RESULTS_DIR / ENV_NAME),
                                     record=lambda name: repo.commit(name, force=True))
        measure_s = time.time() - measuring
        report_log = None
        if all(outcome.state in RECORDED for outcome in outcomes):
            code, report_log = _dvc_repro(root, "--single-item", REPORT_STAGE)
            print(report_log, end="")
            if code:
                raise RunError(f"dvc repro --single-item {REPORT_STAGE} exited {code}; every cell is recorded")
        return RunSummary(upstream_log, outcomes, report_log, measure_s, time.time() - start)


@contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """One executor per repository at a time, so no cell is measured twice at once."""
    if not (root / ".dvc").is_dir():
        raise ConfigError(f"{root}: not the root of a DVC repository (run the executor in the study's checkout)")
    path = root / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"{path}: another `inference-study run` is measuring this repository") from None
        yield


def _state(root: Path) -> DvcState:
    state = dvc_state(root)
    if state is None:
        raise ConfigError(f"{root / '.dvc'}: a `dvc repro` holds the repository's lock; run again when it finishes")
    return state


def _dvc_repro(root: Path, *args: str) -> tuple[int, str]:
    """`dvc repro ARGS` in the repository, its exit code and output."""
    done = subprocess.run([sys.executable, "-m", "dvc", "repro", *args], cwd=root, capture_output=True, text=True,
                          check=False)
    return done.returncode, done.stdout + done.stderr


def _upstream(root: Path, stages: list[str], resources: Resources) -> str:
    """Run the stages upstream of the cells (env, roofline, models, ...) through `dvc repro`, as a Ray task
    holding what a unit holds: the environment fingerprint and the roofline are then those of one GPU as a
    cell sees it, wherever the driver runs."""
    import ray  # heavy and optional (the `ray` extra): only the executor needs it

    if not stages:  # `dvc repro` without targets would run every stage, the cells too
        return ""
    task = ray.remote(_dvc_repro).options(num_gpus=resources.gpus, num_cpus=resources.cpus, max_retries=0)
    code, log = ray.get(task.remote(root, *stages))
    print(log, end="")
    if code:
        raise RunError(f"dvc repro of the upstream stages ({', '.join(stages)}) exited {code}: no unit was measured")
    return log


def _fingerprint(env_file: Path) -> str:
    try:
        return Environment.model_validate(json.loads(env_file.read_text())).fingerprint
    except (OSError, ValueError) as error:
        raise ResultError(f"{env_file}: cannot read the driver's environment: {_first_line(error)}") from None


def measure_units(root: Path, stale: dict[str, Unit], resources: Resources, expected: str,
                  record: Callable[[str], object]) -> list[Outcome]:
    """One Ray task per stale unit (never retried: a killed cell stays missing), at most `max_parallel` in
    flight; each result whose environment fingerprint is `expected` is written, then `record`ed by its stage
    name as it arrives, so a crash later keeps it. A stale unit's old result goes as its task is sent."""
    import ray  # heavy and optional (the `ray` extra): only the executor needs it

    task = ray.remote(_measure)
    origin, waiting = time.time(), list(stale)
    limit = resources.max_parallel or max(len(waiting), 1)
    running: dict[Any, str] = {}
    outcomes = []
    while waiting or running:
        while waiting and len(running) < limit:
            name = waiting.pop(0)
            # As `dvc repro` removes a stage's outputs before its command: a cell that dies is missing, not stale.
            stale[name].result_path(root / RESULTS_DIR).unlink(missing_ok=True)
            gpus = resources.gpus * stale[name].model.tensor_parallel  # a tensor-parallel unit: one node's N GPUs
            options = {"num_gpus": gpus, "num_cpus": resources.cpus, "max_retries": 0}
            running[task.options(**options).remote(root, stale[name])] = name
        [ready], _ = ray.wait(list(running), num_returns=1)
        name = running.pop(ready)
        outcome = _collect(root, name, stale[name], ready, expected)
        if outcome.state in RECORDED:
            record(name)
        print(outcome.line(origin), flush=True)
        outcomes.append(outcome)
    return outcomes


def _measure(root: Path, unit: Unit) -> tuple[Result, Placement]:
    """A unit in a Ray worker: its DVC stage's code path in the repository root, the worker's own
    environment fingerprint; nothing is written here, so a killed task leaves no partial file."""
    import ray  # heavy and optional (the `ray` extra): only the executor needs it

    started = time.time()
    os.chdir(root)  # as under DVC: the stage's relative paths (results/...) name the same files
    configure_library_bars()
    name = unit.model_name if isinstance(unit, ScenarioUnit) else unit.cell.model
    result = run_unit(unit, model_dir(name), collect_environment())
    placement = Placement(os.environ.get("CUDA_VISIBLE_DEVICES"), ray.get_runtime_context().get_node_id(),
                          os.getpid(), started, time.time())
    return result, placement


def _collect(root: Path, name: str, unit: Unit, ref: Any, expected: str) -> Outcome:
    """The task's result written to its stage's output, or why not."""
    import ray  # heavy and optional (the `ray` extra): only the executor needs it

    try:
        result, placement = ray.get(ref)
    except ray.exceptions.RayError as error:
        return Outcome(name, "crashed", _first_line(getattr(error, "cause", None) or error))
    if result.environment_fingerprint != expected:
        return Outcome(name, "refused", f"measured in environment {result.environment_fingerprint}, not in "
                       f"{RESULTS_DIR / ENV_NAME}'s {expected}: one comparison never mixes environments", placement)
    path = unit.result_path(root / RESULTS_DIR)
    try:
        (write_scenario_result if isinstance(result, ScenarioResult) else write_result)(path, result)
    except ResultError as error:
        return Outcome(name, "refused", _first_line(error), placement)
    return Outcome(name, result.status, result.error or "", placement)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
