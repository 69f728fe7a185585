"""The import layers of src/inference_study ([tool.importlinter] in pyproject.toml) are kept, and a layer
broken on purpose in a throwaway package is caught, naming the offending import."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from inference_study import dag

from helpers.repository import REPO_ROOT

LINT_IMPORTS = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def lint_imports(config: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    """`lint-imports --no-cache --no-logo CONFIG` in a subprocess: nothing cached, plain wide text."""
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    command = [sys.executable, "-c", LINT_IMPORTS, "--no-cache", "--no-logo", str(config)]
    return subprocess.run(command, check=False, cwd=config.parent, env=env, capture_output=True, text=True,
                          timeout=300)


def broken_part(output: str) -> str:
    """import-linter's report from its list of broken contracts on (the importer -> imported chains)."""
    start = output.find("Broken contracts")
    return output[start:] if start >= 0 else output


def test_every_package_directory_has_an_init():
    # grimp, and so lint-imports, skip a directory without __init__.py and every import of its modules:
    # a contract could not see them. (inference_study.dag copes, but the layers would be checked blind.)
    portions = dag.namespace_portions("inference_study", REPO_ROOT / "src")
    assert not portions, f"add an __init__.py to: {', '.join(portions)}"


def test_repository_import_layers_are_kept():
    result = lint_imports(REPO_ROOT / "pyproject.toml")
    if result.returncode != 0:
        pytest.fail("import layers broken (importer -> imported (line)):\n"
                    + broken_part(result.stdout + result.stderr), pytrace=False)
    assert "0 broken" in result.stdout


@pytest.fixture
def package_name():
    return f"layers_synth_{uuid.uuid4().hex[:8]}"


def test_a_low_layer_importing_a_feature_folder_is_caught(tmp_path: Path, package_name: str):
    name = package_name
    files = {
        f"{name}/__init__.py": "",
        f"{name}/config.py": f"from {name} import tables\n",
        f"{name}/tables.py": f"""\
            def render():
                from {name}.backends.hf import Backend  # the planted violation, deferred
                return Backend
            """,
        f"{name}/backends/__init__.py": "",
        f"{name}/backends/hf.py": f"from {name}.config import *\nBackend = object\n",
        f"{name}/report.py": f"from {name} import backends, config\n",
    }
    for relative, text in files.items():
        path = tmp_path / "src" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    config = tmp_path / "pyproject.toml"
    config.write_text(textwrap.dedent(f"""\
        [tool.importlinter]
        root_package = "{name}"
        include_external_packages = false

        [[tool.importlinter.contracts]]
        name = "core below features"
        type = "forbidden"
        source_modules = ["{name}.config", "{name}.tables"]
        forbidden_modules = ["{name}.backends", "{name}.report"]
        """), encoding="utf-8")

    result = lint_imports(config, pythonpath=tmp_path / "src")

    assert result.returncode == 1, result.stdout + result.stderr
    report = broken_part(result.stdout)
    assert f"{name}.tables is not allowed to import {name}.backends" in report
    assert f"{name}.tables -> {name}.backends.hf (l.2)" in report
    assert f"{name}.config -> {name}.tables (l.1)" in report
    assert "Contracts: 0 kept, 1 broken." in result.stdout
    assert not list(tmp_path.rglob(".import_linter_cache"))


def test_every_import_inside_a_function_says_why() -> None:
    """Imports inside functions are only for heavy or optional packages, each with its reason beside it."""
    from inference_study.dag import function_level_imports

    silent = [(f, line, module) for f, line, module, comment in function_level_imports(REPO_ROOT / "src") if not comment]
    assert silent == []
