"""Rewriting dvc.yaml's deps in place: each stage's src/ deps replaced by the closure of its code.

A YAML round trip would reformat the whole file and drop or move comments, so only the lines of the deps
lists that change are replaced in the text, located by the line numbers ruamel.yaml records; the result
is parsed again and compared with the intended data, so an edit that strays outside a deps list fails
loudly instead of being written.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from inference_study.dag.dvc_yaml import DVC_YAML, Stage, definitions, load_stages
from inference_study.dag.graph import PACKAGE


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


def _rewrite(text: str, data: Any, stages: list[Stage]) -> tuple[str, list[str]]:
    """text with each derivable stage's deps block replaced; the names of the stages that changed."""
    lines = text.splitlines(keepends=True)
    eol = "\r\n" if "\r\n" in text else "\n"
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += eol
    stages_map = data.get("stages") or {}
    boundaries = sorted({*_key_lines(data), *_key_lines(stages_map),
                         *(line for stage in stages_map.values() if isinstance(stage, dict)
                           for line in _key_lines(stage)),
                         *(line for _, definition in definitions(data) for line in _key_lines(definition))})
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
    return derive(dvc_yaml, package, src_root)[0]


def derive(dvc_yaml: Path, package: str, src_root: Path | None) -> tuple[str, list[str]]:
    """`derive_deps`'s text, and the names of the stages whose deps it changes (what --write reports)."""
    text = dvc_yaml.read_text(encoding="utf-8")
    data, stages = load_stages(dvc_yaml, package, src_root)
    new_text, changed = _rewrite(text, data, stages)
    expected = _plain(data)
    for stage in stages:
        derived = stage.derived()
        if derived is not None:
            name = stage.name
            target = expected["stages"][name]
            (target["do"] if isinstance(target.get("do"), dict) else target)["deps"] = _plain(derived)
    if _plain(YAML(typ="rt").load(new_text)) != expected:
        raise RuntimeError(f"rewriting {dvc_yaml} would change more than its deps lists "
                           f"(a bug in {__name__})")
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
