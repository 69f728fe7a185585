"""dvc.yaml's code deps are derived from the import graph (inference_study.dag): the repository's are
complete, a dep taken away is named, and the closure follows imports inside functions and declared
DYNAMIC_IMPORTS but not TYPE_CHECKING-only imports."""

from __future__ import annotations

import argparse
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import yaml
from ruamel.yaml import YAML

from inference_study import dag

from helpers.repository import REPO_ROOT


@pytest.fixture
def package_name():
    """A fresh top-level package name, dropped from sys.modules afterwards (grimp imports parents)."""
    name = f"dag_synth_{uuid.uuid4().hex[:8]}"
    yield name
    for module in [module for module in sys.modules if module == name or module.startswith(name + ".")]:
        del sys.modules[module]


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def synthetic_project(root: Path, name: str) -> None:
    """a imports b; b imports c inside a function; c declares d and the plugins package in DYNAMIC_IMPORTS;
    d imports ns.m, a module of a directory with no __init__.py; a imports e only under TYPE_CHECKING."""
    write(root, {
        f"src/{name}/__init__.py": "",
        f"src/{name}/a.py": f"""\
            from typing import TYPE_CHECKING

            from {name} import b

            if TYPE_CHECKING:
                from {name}.e import Thing
            """,
        f"src/{name}/b.py": f"""\
            def run():
                from {name}.c import go  # deferred on purpose
                return go()
            """,
        f"src/{name}/c.py": f"""\
            DYNAMIC_IMPORTS: tuple[str, ...] = ("{name}.d", "{name}.plugins", "some_external_package")


            def go():
                return 1
            """,
        f"src/{name}/d.py": f"import {name}.ns.m\n",
        f"src/{name}/e.py": "Thing = int\n",
        f"src/{name}/f.py": "",
        f"src/{name}/ns/m.py": "",
        f"src/{name}/plugins/__init__.py": "",
        f"src/{name}/plugins/p1.py": "",
        f"src/{name}/plugins/deep/__init__.py": "",
        f"src/{name}/plugins/deep/p2.py": "",
        "stages/run.py": f"""\
            from {name}.a import b

            if __name__ == "__main__":
                b.run()
            """,
    })


def dvc_yaml_with_real_code(tmp_path: Path, text: str) -> Path:
    """A dvc.yaml in tmp_path beside links to the repository's src/ and stages/."""
    (tmp_path / "src").symlink_to(REPO_ROOT / "src", target_is_directory=True)
    (tmp_path / "stages").symlink_to(REPO_ROOT / "stages", target_is_directory=True)
    path = tmp_path / "dvc.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_repository_stages_depend_on_everything_their_scripts_import():
    missing = dag.missing_deps(REPO_ROOT / "dvc.yaml")
    lines = "\n".join(f"{stage}: {', '.join(paths)}" for stage, paths in missing.items())
    if missing:
        pytest.fail("dvc.yaml's deps miss code the stages import (`inference-study dag --write` derives "
                    f"them):\n{lines}", pytrace=False)


def test_a_dep_taken_away_is_named(tmp_path: Path):
    derived = dag.derive_deps(REPO_ROOT / "dvc.yaml")
    yaml_rt = YAML()
    data = yaml_rt.load(derived)
    deps = data["stages"]["bench"]["deps"]
    removed = next(dep for dep in deps
                   if isinstance(dep, str) and dep.startswith("src/") and dep.endswith(".py"))
    deps.remove(removed)
    path = dvc_yaml_with_real_code(tmp_path, "")
    with path.open("w", encoding="utf-8") as handle:
        yaml_rt.dump(data, handle)

    assert dag.missing_deps(path) == {"bench": [removed]}


def test_derived_repository_deps_are_complete_idempotent_and_change_nothing_else(tmp_path: Path):
    original = (REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8")
    derived = dag.derive_deps(REPO_ROOT / "dvc.yaml")
    path = dvc_yaml_with_real_code(tmp_path, derived)

    assert dag.missing_deps(path) == {}
    assert dag.derive_deps(path) == derived
    before, after = yaml.safe_load(original), yaml.safe_load(derived)
    for stage in before["stages"].values():
        stage.pop("deps", None)
    for stage in after["stages"].values():
        stage.pop("deps", None)
    assert after == before
    comments = [line for line in original.splitlines() if line.lstrip().startswith("#")]
    assert [line for line in derived.splitlines() if line.lstrip().startswith("#")] == comments


def test_closure_follows_function_imports_parents_and_dynamic_imports_not_type_checking(
        tmp_path: Path, package_name: str):
    synthetic_project(tmp_path, package_name)
    closure = dag.stage_closure(tmp_path / "stages/run.py", package_name, tmp_path / "src")

    expected = {"", ".a", ".b", ".c", ".d", ".ns", ".ns.m", ".plugins", ".plugins.p1", ".plugins.deep",
                ".plugins.deep.p2"}
    assert closure == {package_name + suffix for suffix in expected}


def test_an_unknown_dynamic_import_of_the_package_is_an_error(tmp_path: Path, package_name: str):
    synthetic_project(tmp_path, package_name)
    (tmp_path / f"src/{package_name}/c.py").write_text(f'DYNAMIC_IMPORTS = ("{package_name}.gone",)\n')

    with pytest.raises(ValueError, match=rf"{package_name}\.gone"):
        dag.stage_closure(tmp_path / "stages/run.py", package_name, tmp_path / "src")


def test_missing_then_derived_deps_on_a_synthetic_project(tmp_path: Path, package_name: str):
    synthetic_project(tmp_path, package_name)
    name = package_name
    write(tmp_path, {"dvc.yaml": f"""\
        # the study
        stages:
          run:
            desc: A long description that goes on and on past any sensible width for a line, so that a
              dumper would rewrap it.
            matrix:
              item: [x, y]
            cmd: >-
              python stages/run.py --flag
              ${{item}}
            deps:
              - stages/run.py
              - src/{name}/a.py  # hand-listed
              - results/${{item}}
              - src/{name}/gone.py
              - results/data.json:
                  cache: false
            outs:
              - out/${{item}}.json
          by_module:
            cmd: python -m {name}.c
            deps:
              - results/x
          shell:
            cmd: echo hi
        """})
    path = tmp_path / "dvc.yaml"

    missing = dag.missing_deps(path, package=name)
    assert set(missing) == {"run", "by_module"}
    assert f"src/{name}/gone.py (listed in deps, does not exist)" in missing["run"]
    assert f"src/{name}/b.py" in missing["run"] and f"src/{name}/a.py" not in missing["run"]
    assert f"src/{name}/e.py" not in missing["run"]

    derived = dag.derive_deps(path, package=name)
    assert yaml.safe_load(derived)["stages"]["run"]["deps"] == [
        "stages/run.py",
        f"src/{name}/__init__.py",
        f"src/{name}/a.py",
        f"src/{name}/b.py",
        f"src/{name}/c.py",
        f"src/{name}/d.py",
        f"src/{name}/ns",
        f"src/{name}/plugins",
        "results/${item}",
        {"results/data.json": {"cache": False}},
    ]
    assert yaml.safe_load(derived)["stages"]["by_module"]["deps"][-1] == "results/x"
    assert "past any sensible width for a line, so that a\n" in derived
    assert "# the study\n" in derived
    assert f"      - src/{name}/a.py  # hand-listed\n" in derived
    path.write_text(derived, encoding="utf-8")
    assert dag.missing_deps(path, package=name) == {}
    assert dag.derive_deps(path, package=name) == derived


def test_check_and_write_from_the_command_line(tmp_path: Path, package_name: str, capsys):
    synthetic_project(tmp_path, package_name)
    write(tmp_path, {"dvc.yaml": """\
        stages:
          run:
            cmd: python stages/run.py
            deps:
              - stages/run.py
        """})
    path = tmp_path / "dvc.yaml"
    args = ["--dvc-yaml", str(path), "--package", package_name]
    main = dag.main

    assert main(["--check", *args]) == 1
    assert capsys.readouterr().out.startswith(f"run: src/{package_name}/__init__.py, ")
    assert main(["--write", *args]) == 0
    assert main(["--check", *args]) == 0
    assert main(["--write", *args]) == 0
    assert "already derived" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".dvc.yaml")) == []

    # as a subcommand of another parser (how `inference-study dag` wires it)
    parser = argparse.ArgumentParser(prog="inference-study")
    subcommand = parser.add_subparsers(dest="command", required=True).add_parser("dag")
    dag.add_arguments(subcommand)
    assert dag.run(parser.parse_args(["dag", "--check", *args])) == 0


def test_directory_deps_warn_until_dvcignore_skips_bytecode(tmp_path: Path, package_name: str):
    synthetic_project(tmp_path, package_name)
    write(tmp_path, {"dvc.yaml": f"""\
        stages:
          run:
            cmd: python stages/run.py
            deps:
              - stages/run.py
              - src/{package_name}/plugins
              - src/{package_name}/a.py
        """})
    assert dag.unignored_bytecode(tmp_path / "dvc.yaml") == [f"src/{package_name}/plugins"]
    (tmp_path / ".dvcignore").write_text("# bytecode changes on every import\n__pycache__/\n")
    assert dag.unignored_bytecode(tmp_path / "dvc.yaml") == []


def test_function_level_imports_name_module_line_and_comment(tmp_path: Path):
    write(tmp_path, {"pkg/m.py": """\
        import os


        def f():
            import torch  # heavy: only when measuring
            # matplotlib pulls in a GUI backend
            from matplotlib import pyplot
            from . import sibling
            return torch, pyplot, sibling, os


        class C:
            import json

            def g(self):
                import scipy.stats, pandas
        """})
    rows = [(Path(file).name, line, module, comment)
            for file, line, module, comment in dag.function_level_imports(tmp_path)]
    assert rows == [
        ("m.py", 5, "torch", "heavy: only when measuring"),
        ("m.py", 7, "matplotlib", "matplotlib pulls in a GUI backend"),
        ("m.py", 8, ".", None),
        ("m.py", 16, "scipy.stats", None),
        ("m.py", 16, "pandas", None),
    ]
