"""The layers are visible in the tree and imports only go down (docs/architecture.md).

Every module of the installed package is parsed (not imported): each ``import`` / ``from ... import``
anywhere in it, function-level and ``TYPE_CHECKING`` ones included, must land in a layer its own
layer may use, and the module graph must have no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOPS = {"ffn_edge": ROOT / "ffn_edge", "ffn_edge.export": ROOT / "export", "ffn_edge.runtime": ROOT / "runtime"}

LAYER_OF_PREFIX = [  # first match wins
    ("ffn_edge.core", "core"), ("ffn_edge.bundle", "bundle"),
    ("ffn_edge.runtime.results", "results"), ("ffn_edge.runtime.backends", "backends"),
    ("ffn_edge.runtime.media", "media"), ("ffn_edge.runtime.control", "control"),
    ("ffn_edge.runtime.streaming", "streaming"), ("ffn_edge.runtime.session", "session"),
    ("ffn_edge.runtime.app", "app"), ("ffn_edge.runtime", "runtime-api"),
    ("ffn_edge.export", "export"),
    ("ffn_edge.train", "tools"), ("ffn_edge.evaluate", "tools"), ("ffn_edge.demo", "tools"),
    ("ffn_edge.importers", "tools"), ("ffn_edge.entry", "tools"), ("ffn_edge.gpucheck", "tools"),
    ("ffn_edge", "torch-side"),  # layers, models, data, losses, checkpoint, recipes
]
_RUNTIME_BELOW_STREAMING = {"core", "bundle", "results", "backends", "media", "control"}
ALLOWED = {
    "core": {"core"},
    "bundle": {"core", "bundle"},
    "results": {"core", "results"},
    "control": {"core", "control"},
    "media": {"core", "bundle", "media"},
    "backends": {"core", "bundle", "backends"},
    "streaming": _RUNTIME_BELOW_STREAMING | {"streaming"},
    "session": _RUNTIME_BELOW_STREAMING | {"streaming", "session"},
    "app": _RUNTIME_BELOW_STREAMING | {"streaming", "session", "app", "runtime-api"},
    "runtime-api": {"runtime-api"},  # resolves its names lazily (importlib), imports nothing statically
    "torch-side": {"core", "bundle", "torch-side"},  # training never imports the runtime
    "export": {"core", "bundle", "torch-side", "backends", "export"},  # verifies and builds engines with backends
    "tools": set(),  # train / evaluate / demo / import CLIs: anything
}


def layer(module: str) -> str:
    for prefix, name in LAYER_OF_PREFIX:
        if module == prefix or module.startswith(prefix + "."):
            return name
    raise AssertionError(f"{module} is in no layer")


def modules() -> dict[str, Path]:
    found = {}
    for top, folder in TOPS.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if any(p in {"__pycache__"} for p in parts):
                continue
            name = ".".join((top, *parts[:-1])) if parts[-1] == "__init__" else ".".join((top, *parts))
            if top == "ffn_edge" and parts[0] in {"export", "runtime"}:
                continue
            found[name] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``name`` imports (a ``from pkg import mod`` counts as importing pkg.mod)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("ffn_edge")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("ffn_edge"):
                continue
            subs = {f"{target}.{a.name}" for a in node.names} & known
            out |= subs or {target}
    return {m for m in out if m != name}


MODULES = modules()
GRAPH = {name: imports_of(name, path, set(MODULES)) for name, path in MODULES.items()}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_imports_only_its_own_or_lower_layers(name: str) -> None:
    mine = layer(name)
    if mine == "tools":
        return
    bad = sorted(m for m in GRAPH[name] if layer(m) not in ALLOWED[mine])
    assert not bad, f"{name} ({mine}) imports upward: " + ", ".join(f"{m} ({layer(m)})" for m in bad)


def test_no_import_cycle_between_modules() -> None:
    # Package __init__ modules are skipped: importing pkg.mod always runs pkg/__init__ first, which is not a cycle.
    graph = {n: {m for m in deps if m in GRAPH and MODULES[m].name != "__init__.py"}
             for n, deps in GRAPH.items() if MODULES[n].name != "__init__.py"}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)


def test_the_layer_test_sees_an_upward_import() -> None:
    """The walker itself: a bundle module importing the session is caught."""
    assert layer("ffn_edge.runtime.session") not in ALLOWED["bundle"]
    assert "ffn_edge.runtime.session" in GRAPH["ffn_edge.runtime.app.cli"]
    assert "ffn_edge.core.sampling" in GRAPH["ffn_edge.runtime.session"]
