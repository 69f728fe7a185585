"""The imports made inside functions, for the project rule that only heavy optional packages are imported
there, each with a comment saying why.

Such an import is easy to miss when reading a module's top, yet it still runs and still counts in the
closure of `inference_study.dag.graph`; listing them, with the comment that justifies each, lets the rule
be checked by a test rather than by eye.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path


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
