"""`inference-study`: compose params.yaml from conf/, check it for drift, list cell states, rebuild the
report, check the machine, derive the DAG's code deps."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from tabulate import tabulate

from inference_study.config import PARAMS_FILE, load_params
from inference_study.pipeline import REPORTS_DIR, RESULTS_DIR
from inference_study.plan import bench_units, scenario_units
from inference_study.results import ResultError
from inference_study.roofline import ROOFLINE_NAME
from inference_study.strict import ConfigError


def _compose(args: argparse.Namespace) -> int:
    from inference_study.compose import drift, write_params  # imports Hydra

    if args.check:
        if args.overrides:
            raise ConfigError("compose --check compares against conf/ defaults and takes no overrides")
        difference = drift(params_file=args.params)
        if difference:
            print(f"{args.params} differs from conf/ (run `inference-study compose`):\n{difference}", file=sys.stderr)
            return 1
        print(f"{args.params} matches conf/")
        return 0
    write_params(args.overrides, params_file=args.params)
    print(f"wrote {args.params}" + (f" with {' '.join(args.overrides)}" if args.overrides else ""))
    return 0


def _report(args: argparse.Namespace) -> int:
    from inference_study.report import build_report  # imports matplotlib and pandas

    params, results = (args.inputs / "params.yaml", args.inputs) if args.inputs else (args.params, args.results)
    study = load_params(params, legacy_ok=args.inputs is not None)  # committed inputs may predate bench.stopping
    units = [*bench_units(study), *scenario_units(study)]
    if not any(unit.result_path(results).is_file() for unit in units):
        raise ResultError(f"none of the {len(units)} units of {params} has a result under {results}/cells/: "
                          "run `dvc repro`, or `dvc pull --allow-missing` to fetch shared results")
    out_dir = args.inputs.parent if args.inputs else REPORTS_DIR / study.study.name
    headline = build_report(study, results, out_dir, results / ROOFLINE_NAME)
    print(f"wrote {out_dir}/report.md ({headline['cells_ok']} of {headline['cells_total']} cells measured)")
    return 0


def _cells(args: argparse.Namespace) -> int:
    """One row per cell of the params; exit 1 when any cell is not done, so scripts can wait on it."""


    from inference_study.cell_status import REPRO_RUNNING, cell_statuses, dvc_changes_by_output  # imports DVC

    study = load_params(args.params)
    changes = dvc_changes_by_output(Path("."))
    if changes is None:
        print(f"note: {REPRO_RUNNING}", file=sys.stderr)
    statuses = cell_statuses(study, args.results, changes or {})
    rows = [status.as_row() for status in statuses]
    print(json.dumps(rows, indent=2) if args.json else tabulate(rows, headers="keys"))
    counts = Counter(status.state for status in statuses)
    print(", ".join(f"{count} {state}" for state, count in sorted(counts.items())), file=sys.stderr)
    return 0 if set(counts) == {"done"} else 1


def _doctor(args: argparse.Namespace) -> int:
    """Print every finding; exit 1 when any is a problem (absent optional pieces are not)."""


    from inference_study.doctor import diagnose  # imports torch and DVC

    findings = diagnose(args.root)
    if args.json:
        print(json.dumps([finding.as_dict() for finding in findings], indent=2))
    else:
        print(tabulate([(f.topic, f.state, f.detail) for f in findings], headers=["check", "state", "detail"]))
    problems = [f.topic for f in findings if f.state == "problem"]
    if problems:
        print(f"doctor: {len(problems)} problem(s): {', '.join(problems)}", file=sys.stderr)
    return 1 if problems else 0


def _run(args: argparse.Namespace) -> int:
    """Exit 1 when a unit crashed or was refused (the others stay recorded; a rerun runs only those)."""
    from inference_study.executor import Resources, RunError, ray_cluster, run_study  # imports Ray and DVC

    resources = Resources(args.gpus_per_unit, args.cpus_per_unit, args.max_parallel)
    try:
        with ray_cluster(args.address, args.num_gpus):
            summary = run_study(resources)
    except RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(summary.line())
    return 0 if summary.ok else 1


def _dag(args: argparse.Namespace) -> int:
    from inference_study import dag  # imports grimp and ruamel.yaml, which no other command needs

    return dag.main(args.dag_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inference-study", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    compose = commands.add_parser("compose", help="write params.yaml from conf/ (Hydra overrides allowed)")
    compose.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. study=h100 sweep.batch_sizes=[1,8]")
    compose.add_argument("--check", action="store_true", help="fail if params.yaml differs from conf/ defaults")
    compose.add_argument("--params", type=Path, default=PARAMS_FILE, help=argparse.SUPPRESS)
    compose.set_defaults(handler=_compose)
    report = commands.add_parser("report", help="rebuild reports/<study>/ from existing results, no GPU needed")
    report.add_argument("--params", type=Path, default=PARAMS_FILE, help="params file naming the cells")
    report.add_argument("--results", type=Path, default=RESULTS_DIR, help="directory holding cells/")
    report.add_argument("--inputs", type=Path, help="a report's inputs/ folder (e.g. reports/measured/h100/inputs): "
                        "rebuild that report, in the folder holding them, from its committed raw results")
    report.set_defaults(handler=_report)
    cells = commands.add_parser("cells", help="each cell of params.yaml and its state: done, stale (dvc status), "
                                "missing, oom, failed, or invalid (a result file that fails validation)")
    cells.add_argument("--params", type=Path, default=PARAMS_FILE, help="params file naming the cells")
    cells.add_argument("--results", type=Path, default=RESULTS_DIR, help="directory holding cells/")
    cells.add_argument("--json", action="store_true", help="print the rows as JSON")
    cells.set_defaults(handler=_cells)
    doctor = commands.add_parser("doctor", help="what is installed and usable here: GPU, NVML, torch/CUDA, "
                                 "transformers, tensorrt_llm, backends, DVC remote, params.yaml")
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON")
    doctor.add_argument("--root", type=Path, default=Path("."), help="the study checkout to inspect")
    doctor.set_defaults(handler=_doctor)
    run = commands.add_parser("run", help="measure the stale cells on every GPU through Ray (one host, or a cluster "
                              "with --address): DVC runs the upstream stages, records each cell, runs the report")
    run.add_argument("--address", help="a running Ray cluster (host:port, ray://host:port or auto); default: start "
                     "a local Ray instance")
    run.add_argument("--num-gpus", type=int, help="logical GPUs of the local Ray instance (default: the GPUs it finds)")
    run.add_argument("--max-parallel", type=int, help="at most this many units in flight (default: as the GPUs allow)")
    run.add_argument("--gpus-per-unit", type=float, default=1, help="GPUs each unit holds (default 1; 0 on a CPU)")
    run.add_argument("--cpus-per-unit", type=float, default=1, help="host CPUs each unit holds (default 1): bounds "
                     "how many host-bound units share a host")
    run.set_defaults(handler=_run)
    dag = commands.add_parser("dag", help="check (--check) or derive (--write) dvc.yaml's code deps from the "
                              "import graph: a stage depends on every module its script can import")
    dag.set_defaults(handler=_dag)
    dag.add_argument("dag_args", nargs="*", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["dag"]:  # its own flags (--check, --write, ...) go to dag's parser untouched
        argv = ["dag", "--", *argv[1:]]
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ConfigError, ResultError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
