"""`inference-study dag` (or `python -m inference_study.dag`): check or rewrite dvc.yaml's code deps.

The options are added by `add_arguments` and acted on by `run`, so the same command works on a parser
of its own (`main`) and as a subcommand of `inference-study`. --check is the default because it changes
nothing: a bare invocation only reports, and only --write edits dvc.yaml.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from inference_study.dag.dvc_yaml import DVC_YAML, missing_deps, unignored_bytecode
from inference_study.dag.graph import PACKAGE
from inference_study.dag.rewrite import derive, write_atomic


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options, on a parser of its own or on a subcommand's (`inference-study dag`)."""
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true",
                        help="list, per stage, the modules its deps miss; exit 1 if any (the default)")
    action.add_argument("--write", action="store_true",
                        help="rewrite each stage's src/ deps to the derived closure, in place")
    parser.add_argument("--dvc-yaml", type=Path, default=DVC_YAML,
                        help="the pipeline file (default: %(default)s)")
    parser.add_argument("--src", type=Path, default=None, help="the source root (default: src/ beside it)")
    parser.add_argument("--package", default=PACKAGE,
                        help="the package whose modules count (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inference-study dag", description=(
        "Check or rewrite dvc.yaml's code deps: a stage depends on every module its script can import."))
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """--check (the default) or --write, on parsed arguments; 0 done, 1 deps missing, 2 error."""
    path: Path = args.dvc_yaml
    try:
        if args.write:
            text, changed = derive(path, args.package, args.src)
            if changed:
                write_atomic(path, text)
                print(f"{path}: rewrote the deps of {len(changed)} stage(s): {', '.join(changed)}")
            else:
                print(f"{path}: every stage's deps are already derived")
            _warn_bytecode(path)
            return 0
        missing = missing_deps(path, args.package, args.src)
        _warn_bytecode(path)
    except (OSError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for stage, problems in missing.items():
        print(f"{stage}: {', '.join(problems)}")
    if missing:
        print(f"{path}: {len(missing)} stage(s) miss code deps; `inference-study dag --write` derives them",
              file=sys.stderr)
        return 1
    print(f"{path}: every stage's deps cover what its script imports")
    return 0


def _warn_bytecode(path: Path) -> None:
    directories = unignored_bytecode(path)
    if directories:
        print(f"warning: {', '.join(directories)} hash __pycache__ too: any import would make those stages "
              f"stale; add `__pycache__/` to {path.parent / '.dvcignore'}", file=sys.stderr)
