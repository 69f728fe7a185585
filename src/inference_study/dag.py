"""The DVC DAG's code dependencies, derived from the import graph instead of listed by hand.

A stage depends on every module its script can import: the script's own imports of `inference_study`,
then their transitive closure over the import graph that grimp builds (imports inside functions count;
imports under `if TYPE_CHECKING:` do not, they never run). Importing `a.b.c` also runs `a/__init__.py`
and `a/b/__init__.py`, so every module brings its parent packages. What grimp cannot see, a module
declares: a module-level literal

    DYNAMIC_IMPORTS: tuple[str, ...] = ("inference_study.backends", ...)

names the modules or packages it imports at run time (importlib, a registry); a package means the
package and every module under it. The constant is read from the module's source, never by importing it.

`missing_deps` lists, per stage of dvc.yaml, the files of that closure its `deps:` do not cover;
`derive_deps` rewrites each stage's src/ deps to the closure, touching nothing else in the file.
`function_level_imports` lists the imports made inside functions, for the rule that only heavy optional
packages are imported there. Run as `python -m inference_study.dag --check` or `--write`.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import io
import os
import re
import shlex
import sys
import tempfile
import tokenize
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grimp
from ruamel.yaml import YAML

PACKAGE = "inference_study"
DVC_YAML = Path("dvc.yaml")
_PYTHON = re.compile(r"python(\d+(\.\d+)?)?")


# --- the import graph --------------------------------------------------------------------------------


def namespace_portions(package: str = PACKAGE, src_root: Path = Path("src")) -> list[str]:
    """Directories under the package that hold Python files but no `__init__.py`, as module names.

    grimp skips such a directory (and every import of a module in it) when it walks the package, so
    `build_graph` passes each one to grimp as a further package of its own.
    """
    root = src_root / package
    portions = []
    for directory, subdirectories, _files in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if d.isidentifier() and d != "__pycache__")
        here = Path(directory)
        if here == root or (here / "__init__.py").exists():
            continue
        if any(True for _ in here.rglob("*.py")):
            portions.append(".".join((package, *here.relative_to(root).parts)))
    return portions


@contextmanager
def _importable_from(package: str, src_root: Path) -> Iterator[None]:
    """Put src_root first on sys.path, and make sure the import system finds `package` there."""
    root = str(src_root.resolve())
    sys.path.insert(0, root)
    importlib.invalidate_caches()
    try:
        spec = importlib.util.find_spec(package)
        wanted = (src_root / package).resolve()
        locations = (spec.submodule_search_locations or []) if spec else []
        found = [Path(location).resolve() for location in locations]
        if wanted not in found:
            where = ", ".join(map(str, found)) or "nowhere"
            raise RuntimeError(f"the import system finds {package} at {where}, not at {wanted}: grimp would "
                               f"scan the wrong tree (install this checkout, or run from it)")
        yield
    finally:
        sys.path.remove(root)


def build_graph(package: str = PACKAGE, src_root: Path = Path("src")) -> grimp.ImportGraph:
    """The package's import graph, as grimp builds it from src_root, without TYPE_CHECKING-only imports."""
    with _importable_from(package, src_root):
        return grimp.build_graph(package, *namespace_portions(package, src_root),
                                 cache_dir=None, exclude_type_checking_imports=True)


def module_file(module: str, src_root: Path = Path("src")) -> Path | None:
    """`a.b` → src_root/a/b.py or src_root/a/b/__init__.py; None for a namespace package (no file)."""
    base = src_root.joinpath(*module.split("."))
    for candidate in (base.with_name(base.name + ".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def dynamic_imports(path: Path) -> tuple[str, ...]:
    """The module-level `DYNAMIC_IMPORTS` literal of a Python file, or () when it declares none."""
    source = path.read_text(encoding="utf-8")
    if "DYNAMIC_IMPORTS" not in source:
        return ()
    for node in ast.parse(source, filename=str(path)).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(target, ast.Name) and target.id == "DYNAMIC_IMPORTS" for target in targets):
            try:
                names = ast.literal_eval(value)
            except ValueError:
                names = None
            if not isinstance(names, (tuple, list)) or not all(isinstance(name, str) for name in names):
                raise ValueError(f"{path}:{node.lineno}: DYNAMIC_IMPORTS must be a literal tuple of module "
                                 "names")
            return tuple(names)
    return ()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement of a tree, at any depth, except those under `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def script_imports(script: Path, graph: grimp.ImportGraph, package: str = PACKAGE) -> set[str]:
    """The package's modules a script outside the package imports directly (TYPE_CHECKING excluded)."""
    tree = ast.parse(script.read_text(encoding="utf-8"), filename=str(script))
    wanted: set[str] = set()
    for node in _runtime_imports(tree):
        if isinstance(node, ast.Import):
            wanted.update(alias.name for alias in node.names)
        elif node.level == 0 and node.module:
            wanted.add(node.module)
            wanted.update(f"{node.module}.{alias.name}" for alias in node.names
                          if f"{node.module}.{alias.name}" in graph.modules)
    ours = {name for name in wanted if name == package or name.startswith(package + ".")}
    unknown = sorted(name for name in ours if name not in graph.modules)
    if unknown:
        raise ValueError(f"{script} imports {', '.join(unknown)}, which is not a module of {package}")
    return ours


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _closure(roots: set[str], graph: grimp.ImportGraph, package: str, src_root: Path) -> set[str]:
    """Modules reachable from roots over imports, parent packages and DYNAMIC_IMPORTS declarations."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        following = set(graph.find_modules_directly_imported_by(module))
        following.update(name for name in _ancestors(module) if name in graph.modules)
        path = module_file(module, src_root)
        if path is not None:
            following.update(_declared(path, graph, package))
        todo.extend(following - seen)
    return seen


def _declared(path: Path, graph: grimp.ImportGraph, package: str) -> set[str]:
    """The modules a file's DYNAMIC_IMPORTS names, a package with everything under it; others ignored."""
    modules: set[str] = set()
    for name in dynamic_imports(path):
        if name in graph.modules:
            modules.add(name)
            modules.update(graph.find_descendants(name))
        elif name == package or name.startswith(package + "."):
            raise ValueError(f"{path}: DYNAMIC_IMPORTS names {name}, which is not a module of {package}")
    return modules


def stage_closure(script: Path, package: str = PACKAGE, src_root: Path = Path("src"),
                  graph: grimp.ImportGraph | None = None) -> set[str]:
    """The package's modules a stage script imports, directly or not (see the module docstring).

    `graph` saves rebuilding the import graph when one was built for the same package and src_root.
    """
    graph = graph if graph is not None else build_graph(package, src_root)
    roots = script_imports(script, graph, package) | _declared(script, graph, package)
    return _closure(roots, graph, package, src_root)


def module_closure(module: str, package: str = PACKAGE, src_root: Path = Path("src"),
                   graph: grimp.ImportGraph | None = None) -> set[str]:
    """What `python -m module` imports: the module (or the package and its __main__) and its closure."""
    graph = graph if graph is not None else build_graph(package, src_root)
    roots = {module} | ({f"{module}.__main__"} & set(graph.modules))
    return _closure(roots, graph, package, src_root)


def closure_files(modules: set[str], src_root: Path = Path("src")) -> set[Path]:
    """The files of modules (namespace packages have none)."""
    return {path for path in (module_file(module, src_root) for module in modules) if path is not None}


# --- dvc.yaml ----------------------------------------------------------------------------------------


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


def _definitions(data: Any) -> Iterator[tuple[str, Any]]:
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


class _Stage:
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


def _stages(dvc_yaml: Path, package: str, src_root: Path | None) -> tuple[Any, list[_Stage]]:
    data = YAML(typ="rt").load(dvc_yaml.read_text(encoding="utf-8"))
    root = dvc_yaml.parent
    src_root = src_root if src_root is not None else root / "src"
    graph = build_graph(package, src_root)
    stages = [_Stage(name, definition, root, Path(_norm(src_root)), package, graph)
              for name, definition in _definitions(data)]
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
    _, stages = _stages(dvc_yaml, package, src_root)
    return {stage.name: problems for stage in stages if (problems := stage.missing())}


# --- rewriting deps in place -------------------------------------------------------------------------


def _key_lines(mapping: Any) -> list[int]:
    return [mapping.lc.key(key)[0] for key in mapping]


def _region_end(start: int, boundaries: list[int], lines: list[str]) -> int:
    """The line after a value starting at `start`: the next boundary, less trailing comments and blanks."""
    end = min([line for line in boundaries if line > start] + [len(lines)])
    while end - 1 > start and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1
    return end


def _scalar(value: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./@+-]+", value) and not value.startswith(("-", "@")):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _rewrite(text: str, data: Any, stages: list[_Stage]) -> tuple[str, list[str]]:
    """text with each derivable stage's deps block replaced; the names of the stages that changed."""
    lines = text.splitlines(keepends=True)
    eol = "\r\n" if "\r\n" in text else "\n"
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += eol
    stages_map = data.get("stages") or {}
    boundaries = sorted({*_key_lines(data), *_key_lines(stages_map),
                         *(line for stage in stages_map.values() if isinstance(stage, dict)
                           for line in _key_lines(stage)),
                         *(line for _, definition in _definitions(data) for line in _key_lines(definition))})
    edits: list[tuple[int, int, list[str]]] = []
    changed = []
    for stage in stages:
        new = stage.derived()
        if new is None or new == stage.deps:
            continue
        changed.append(stage.name)
        definition = stage.definition
        deps = definition.get("deps")
        if isinstance(deps, list) and deps and not deps.fa.flow_style():
            first_line, first_col = deps.lc.item(0)
            prefix = lines[first_line][:first_col]
            starts = [deps.lc.item(i)[0] for i in range(len(deps))]
            end = _region_end(starts[-1], boundaries, lines)
            originals = {id(item): "".join(lines[start:stop])
                         for item, start, stop in zip(deps, starts, [*starts[1:], end], strict=True)}
            body = [originals[id(item)] if id(item) in originals else f"{prefix}{_scalar(item)}{eol}"
                    for item in new]
            edits.append((first_line, end, body))
            continue
        # no deps yet, or a flow-style list: write a block list in place of the key (or after cmd)
        key = "deps" if "deps" in definition else "cmd"
        key_line, key_col = definition.lc.key(key)
        end = _region_end(key_line, boundaries, lines)
        indent = " " * key_col
        kept = [item for item in new if isinstance(item, str)]
        if len(kept) != len(new):
            raise ValueError(f"stage {stage.name}: write its deps as a block list, one entry a line")
        block = [f"{indent}deps:{eol}"] + [f"{indent}  - {_scalar(item)}{eol}" for item in new]
        edits.append((key_line, end, block) if key == "deps" else (end, end, block))
    if not edits:
        return text, []
    for start, stop, body in sorted(edits, reverse=True):
        lines[start:stop] = body
    return "".join(lines), changed


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def derive_deps(dvc_yaml: Path = DVC_YAML, package: str = PACKAGE, src_root: Path | None = None) -> str:
    """dvc.yaml's text with each stage's src/ deps replaced by its derived closure.

    The new deps: the stage's script, then the closure's files sorted (a directory where every .py file
    under it is in the closure), then every other entry (results/..., templated, non-Python files under
    src/) in its original order. Only the lines of deps lists that change are rewritten: comments and
    formatting elsewhere are kept byte for byte, and a file whose deps are already derived comes back
    unchanged.
    """
    return _derive(dvc_yaml, package, src_root)[0]


def _derive(dvc_yaml: Path, package: str, src_root: Path | None) -> tuple[str, list[str]]:
    text = dvc_yaml.read_text(encoding="utf-8")
    data, stages = _stages(dvc_yaml, package, src_root)
    new_text, changed = _rewrite(text, data, stages)
    expected = _plain(data)
    for stage in stages:
        derived = stage.derived()
        if derived is not None:
            name = stage.name
            target = expected["stages"][name]
            (target["do"] if isinstance(target.get("do"), dict) else target)["deps"] = _plain(derived)
    if _plain(YAML(typ="rt").load(new_text)) != expected:
        raise RuntimeError(f"rewriting {dvc_yaml} would change more than its deps lists (a bug in dag.py)")
    return new_text, changed


def write_atomic(path: Path, text: str) -> None:
    """Replace path's content with text in one rename, keeping its permissions."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --- imports inside functions ------------------------------------------------------------------------


def _comments(source: str) -> tuple[dict[int, str], set[int]]:
    """Line → comment text, and the lines that hold nothing but a comment."""
    comments: dict[int, str] = {}
    alone: set[int] = set()
    lines = source.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            line = token.start[0]
            comments[line] = token.string.lstrip("#").strip()
            if not lines[line - 1][:token.start[1]].strip():
                alone.add(line)
    return comments, alone


def _comment_for(node: ast.stmt, comments: dict[int, str], alone: set[int]) -> str | None:
    for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
        if line in comments and line not in alone:
            return comments[line]
    above, line = [], node.lineno - 1
    while line in alone:
        above.insert(0, comments[line])
        line -= 1
    return " ".join(above) or None


def function_level_imports(src_root: Path = Path("src")) -> list[tuple[str, int, str, str | None]]:
    """Every import statement inside a function under src_root: (file, line, module, its comment or None).

    The comment is a trailing comment on the statement's lines, else the comment lines right above it.
    `import a, b` gives one row per module; `from .x import y` gives ".x" (relative, as written).
    """
    found: list[tuple[tuple[str, int, int, int], tuple[str, int, str, str | None]]] = []
    for path in sorted(src_root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        source = path.read_text(encoding="utf-8")
        comments, alone = _comments(source)
        tree = ast.parse(source, filename=str(path))
        stack: list[tuple[ast.AST, bool]] = [(tree, False)]
        while stack:
            node, in_function = stack.pop()
            if in_function and isinstance(node, ast.Import):
                found += [((str(path), node.lineno, node.col_offset, index),
                           (str(path), node.lineno, alias.name, _comment_for(node, comments, alone)))
                          for index, alias in enumerate(node.names)]
            elif in_function and isinstance(node, ast.ImportFrom):
                found.append(((str(path), node.lineno, node.col_offset, 0),
                              (str(path), node.lineno, "." * node.level + (node.module or ""),
                               _comment_for(node, comments, alone))))
            inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            stack += [(child, inner) for child in ast.iter_child_nodes(node)]
    return [row for _, row in sorted(found)]


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
    for _, definition in _definitions(data):
        base = dvc_yaml.parent / str(definition.get("wdir", "."))
        found += [dep for dep in definition.get("deps") or []
                  if isinstance(dep, str) and "${" not in dep and _covered(_norm(base / dep), [src])
                  and (base / dep).is_dir() and any((base / dep).rglob("*.py"))]
    return sorted(set(found))


# --- command line ------------------------------------------------------------------------------------


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
            text, changed = _derive(path, args.package, args.src)
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


if __name__ == "__main__":
    sys.exit(main())
