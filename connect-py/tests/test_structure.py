"""The package's shape: no module, Python or Rust, imports a module that imports it back."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, List, Set

import connect_ops as ops

PACKAGE = Path(ops.__file__).parent
RUST_SOURCES = Path(__file__).resolve().parent.parent / "src"


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Every module that reaches itself through its imports, with the path that leads back."""
    found: List[List[str]] = []

    def walk(start: str, node: str, path: List[str], seen: Set[str]) -> None:
        for nxt in sorted(graph.get(node, set())):
            if nxt == start:
                found.append(path + [nxt])
            elif nxt not in seen:
                seen.add(nxt)
                walk(start, nxt, path + [nxt], seen)

    for module in sorted(graph):
        walk(module, module, [module], {module})
    return found


def python_imports() -> Dict[str, Set[str]]:
    graph: Dict[str, Set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        deps: Set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module)
                else:
                    deps.update(alias.name for alias in node.names)
        graph[path.stem] = deps
    # The extension's own imports of package modules, by the name it would import them with.
    extension: Set[str] = set()
    for path in RUST_SOURCES.glob("*.rs"):
        extension.update(re.findall(r'import\("connect_ops\.(\w+)"\)', path.read_text()))
    graph["_connect_ops"] = extension
    return graph


def rust_imports() -> Dict[str, Set[str]]:
    graph: Dict[str, Set[str]] = {}
    for path in RUST_SOURCES.glob("*.rs"):
        graph[path.stem] = set(re.findall(r"crate::(\w+)", path.read_text())) - {path.stem}
    return graph


def test_the_cycle_finder_sees_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c", "a"],
        ["b", "c", "a", "b"],
        ["c", "a", "b", "c"],
    ]


def test_python_modules_import_no_circle() -> None:
    graph = python_imports()
    assert {"_types", "_errors", "_deployer", "_connect_ops"} <= set(graph)
    assert "_connect_ops" in graph["_types"] or "_data" in graph["_types"]
    assert cycles(graph) == []


def test_rust_modules_import_no_circle() -> None:
    graph = rust_imports()
    assert {"bridge", "convert", "memory", "stack", "deployer"} <= set(graph)
    assert cycles(graph) == []
    # The generic helpers import no feature module.
    assert graph["bridge"] <= {"convert", "errors"}
    assert graph["convert"] <= {"errors"}
