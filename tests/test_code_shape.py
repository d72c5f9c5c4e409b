"""The code keeps a shape that stays easy to change: no class over MAX_CLASS_LINES lines, no function
with more than MAX_PARAMS parameters (an options object instead, as ``StreamOptions`` / ``ExportOptions``).

Parsed, not imported. An exception must be listed here with the reason it is one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ffn_edge", "runtime", "export")
MAX_CLASS_LINES = 200
MAX_PARAMS = 10
EXCEPTIONS = {
    # name: why it may exceed
    "ffn_edge/data/dataset.py:__init__": "VideoDataset's keywords mirror ffn-train's data flags one to one",
}


def _definitions() -> list[tuple[str, ast.AST]]:
    out = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    out.append((f"{rel}:{node.name}", node))
    return out


def _params(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = node.args
    names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    return len(names) - (1 if names and names[0] in ("self", "cls") else 0)


def test_no_class_is_too_long_and_no_function_takes_too_many_parameters() -> None:
    too_big = []
    for name, node in _definitions():
        if name in EXCEPTIONS:
            continue
        if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
            too_big.append(f"{name}: class of {node.end_lineno - node.lineno + 1} lines")
        elif not isinstance(node, ast.ClassDef) and _params(node) > MAX_PARAMS:
            too_big.append(f"{name}: {_params(node)} parameters")
    assert not too_big, "; ".join(too_big)


@pytest.mark.parametrize("source, expected", [
    ("def f(a, b, c, d, e, f, g, h, i, j, k): pass", 11),
    ("class C:\n    def m(self, a, *, b): pass", 2),
])
def test_parameters_are_counted_without_self(source: str, expected: int) -> None:
    fn = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)][0]
    assert _params(fn) == expected
