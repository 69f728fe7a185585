"""Reading dvc.yaml: each stage resolved to its entry point and closure, and what its deps fail to cover.

DVC reruns a stage only when one of its `deps:` changes, so a module the stage imports but does not list
leaves its results stale without a word. Each stage definition (a plain stage, or the `do:` of a foreach
stage) is resolved against the checkout as DVC runs it: its `wdir`, then the first `python` call of its
`cmd` (a script, or `-m` a module), whose closure (see `inference_study.dag.graph`) is what the deps must
cover. `inference_study.dag.rewrite` writes the same closure back as the deps.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grimp
from ruamel.yaml import YAML

from inference_study.dag.graph import PACKAGE, build_graph, closure_files, module_closure, stage_closure

DVC_YAML = Path("dvc.yaml")
_PYTHON = re.compile(r"python(\d+(\.\d+)?)?")


def stage_entry(cmd: Any) -> tuple[str, str] | None:
    """("script", "stages/x.py") or ("module", "a.b") for the first `python` call of a stage's cmd."""
    for line in cmd if isinstance(cmd, list) else [cmd]:
        try:
            words = shlex.split(str(line))
        except ValueError:
            words = str(line).split()
        for index, word in enumerate(words):
            if not _PYTHON.fullmatch(os.path.basename(word)):
                continue
            rest = iter(words[index + 1:])
            for argument in rest:
                if argument == "-m":
                    return ("module", next(rest, ""))
                if argument.startswith("-m") and len(argument) > 2:
                    return ("module", argument[2:])
                if argument in ("-W", "-X", "-c"):
                    if argument == "-c":
                        break
                    next(rest, None)
                    continue
                if argument.startswith("-"):
                    continue
                return ("script", argument)
    return None


def definitions(data: Any) -> Iterator[tuple[str, Any]]:
    """(stage name, the mapping holding its cmd and deps): `do:` for a foreach stage, else the stage."""
    for name, stage in (data.get("stages") or {}).items():
        if isinstance(stage, dict):
            yield name, stage["do"] if isinstance(stage.get("do"), dict) else stage


def _norm(path: str | os.PathLike) -> str:
    return os.path.normpath(path)


def _covered(path: str, deps: Sequence[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip(os.sep) + os.sep) for dep in deps)


def _rel(path: str, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


class Stage:
    """One stage definition resolved against the checkout: its base directory, entry point and closure."""

    def __init__(self, name: str, definition: Any, root: Path, src_root: Path, package: str,
                 graph: grimp.ImportGraph) -> None:
        self.name = name
        self.definition = definition
        self.base = Path(_norm(root / str(definition.get("wdir", "."))))
        self.src_root = src_root
        self.deps = list(definition.get("deps") or [])
        self.entry = stage_entry(definition.get("cmd", ""))
        self.problems: list[str] = []  # why the closure could not be derived
        self.script: str | None = None
        self.files: set[str] | None = None  # normalized paths of the closure, None when not derivable
        if self.entry is None or "${" in self.entry[1]:
            return
        kind, target = self.entry
        if kind == "module":
            if not (target == package or target.startswith(package + ".")):
                return
            if target not in graph.modules:
                self.problems.append(f"{target} (the stage's module is not a module of {package})")
                return
            modules = module_closure(target, package, src_root, graph)
        else:
            self.script = _norm(self.base / target)
            if not Path(self.script).is_file():
                self.problems.append(f"{target} (the stage's script does not exist)")
                return
            try:
                modules = stage_closure(Path(self.script), package, src_root, graph)
            except ValueError as error:  # a script importing a module that is not there
                self.problems.append(f"({error})")
                return
        self.files = {_norm(path) for path in closure_files(modules, src_root)}

    def dep_paths(self) -> list[tuple[Any, str | None]]:
        """Each deps entry with its normalized path, None for a templated or non-string entry."""
        out = []
        for dep in self.deps:
            name = dep if isinstance(dep, str) else next(iter(dep), None) if isinstance(dep, dict) else None
            out.append((dep, None if name is None or "${" in str(name) else _norm(self.base / str(name))))
        return out

    def is_src(self, path: str | None) -> bool:
        """A deps path under src_root that the closure replaces: Python code, a directory, a missing path."""
        if path is None or not _covered(path, [_norm(self.src_root)]):
            return False
        return path.endswith(".py") or Path(path).is_dir() or not Path(path).exists()

    def missing(self) -> list[str]:
        listed = [path for _, path in self.dep_paths() if path is not None]
        problems = list(self.problems)
        if self.files is not None:
            wanted = ([self.script] if self.script else []) + sorted(self.files)
            problems += [_rel(path, self.base) for path in wanted if not _covered(path, listed)]
        problems += [f"{_rel(path, self.base)} (listed in deps, does not exist)" for path in listed
                     if _covered(path, [_norm(self.src_root)]) and not Path(path).exists()]
        return problems

    def derived(self) -> list[Any] | None:
        """The stage's deps with the src/ entries replaced by the closure, or None when not derivable."""
        if self.files is None:
            if self.problems:
                raise ValueError(f"stage {self.name}: {'; '.join(self.problems)}")
            return None
        entries = self.dep_paths()
        # an entry already listed is kept as it is (quotes, comment); a new one is a plain path
        listed = {path: dep for dep, path in entries if isinstance(dep, str) and path is not None}
        kept = [dep for dep, path in entries
                if not self.is_src(path) and not (self.script and path == self.script)]
        wanted = ([self.script] if self.script else []) + _collapse(self.files, self.src_root)
        return [listed.get(path, _rel(path, self.base)) for path in wanted] + kept


def _collapse(files: set[str], src_root: Path) -> list[str]:
    """Sorted paths covering files: a directory wherever every .py file under it, recursively, is one."""

    def python_files(directory: Path) -> set[str]:
        return {_norm(path) for path in directory.rglob("*.py") if "__pycache__" not in path.parts}

    out: list[str] = []
    todo = [src_root]
    while todo:
        directory = todo.pop()
        inside = python_files(directory)
        if not inside & files:
            continue
        if inside <= files and directory != src_root:
            out.append(_norm(directory))
            continue
        out += sorted(path for path in files if Path(path).parent == Path(_norm(directory)))
        todo += [path for path in directory.iterdir() if path.is_dir() and path.name != "__pycache__"]
    return sorted(out)


def load_stages(dvc_yaml: Path, package: str, src_root: Path | None) -> tuple[Any, list[Stage]]:
    """dvc.yaml parsed round-trip (its line numbers kept, for rewriting) and every stage resolved.

    One import graph serves every stage: building it is the slow part.
    """
    data = YAML(typ="rt").load(dvc_yaml.read_text(encoding="utf-8"))
    root = dvc_yaml.parent
    src_root = src_root if src_root is not None else root / "src"
    graph = build_graph(package, src_root)
    stages = [Stage(name, definition, root, Path(_norm(src_root)), package, graph)
              for name, definition in definitions(data)]
    return data, stages


def missing_deps(dvc_yaml: Path = DVC_YAML, package: str = PACKAGE,
                 src_root: Path | None = None) -> dict[str, list[str]]:
    """Per stage (by its name in dvc.yaml; a matrix stage once), what its deps fail to cover.

    Each entry is a path relative to the stage's directory, as deps entries are written: the stage's
    script or a file of its closure that no deps entry (file, or directory above it) covers. A deps
    entry under src/ that does not exist is listed as "<path> (listed in deps, does not exist)", and a
    script that does not exist as "<path> (the stage's script does not exist)". Templated entries
    (`${item.model}`) are ignored. Stages with no problem are left out: an empty dict means all good.
    """
    _, stages = load_stages(dvc_yaml, package, src_root)
    return {stage.name: problems for stage in stages if (problems := stage.missing())}


def unignored_bytecode(dvc_yaml: Path = DVC_YAML) -> list[str]:
    """Directory deps under src/ that would hash __pycache__/*.pyc (DVC does, unless .dvcignore says not).

    A directory dep of Python code goes stale whenever Python rewrites a .pyc under it; a line
    `__pycache__/` in the .dvcignore beside dvc.yaml prevents that. Empty when it is there.
    """
    ignore = dvc_yaml.parent / ".dvcignore"
    lines = ignore.read_text(encoding="utf-8").splitlines() if ignore.exists() else []
    if any(line.strip().strip("/*") in ("__pycache__", ".pyc") for line in lines):
        return []
    data = YAML(typ="safe").load(dvc_yaml.read_text(encoding="utf-8")) or {}
    src = _norm(dvc_yaml.parent / "src")
    found = []
    for _, definition in definitions(data):
        base = dvc_yaml.parent / str(definition.get("wdir", "."))
        found += [dep for dep in definition.get("deps") or []
                  if isinstance(dep, str) and "${" not in dep and _covered(_norm(base / dep), [src])
                  and (base / dep).is_dir() and any((base / dep).rglob("*.py"))]
    return sorted(set(found))
