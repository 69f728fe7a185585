"""The import-graph closure: which of the package's modules a stage's code can import when it runs.

A stage depends on every module its script can import: the script's own imports of `inference_study`,
then their transitive closure over the import graph that grimp builds (imports inside functions count;
imports under `if TYPE_CHECKING:` do not, they never run). Importing `a.b.c` also runs `a/__init__.py`
and `a/b/__init__.py`, so every module brings its parent packages. What grimp cannot see, a module
declares: a module-level literal

    DYNAMIC_IMPORTS: tuple[str, ...] = ("inference_study.backends", ...)

names the modules or packages it imports at run time (importlib, a registry); a package means the
package and every module under it. The constant is read from the module's source, never by importing it.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grimp

PACKAGE = "inference_study"


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
