"""Imports only point down the layers of DESIGN.md. A module that imports upward fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cronflow_actors"

# Which layers of the package each layer may import (errors/ and calls.py are everyone's
# leaves).
ALLOWED: dict[str, set[str]] = {
    "messages": set(),
    "net": {"messages"},
    "kernel": {"messages"},
    "store": {"messages"},
    "metrics": set(),
    "engine": {"net", "kernel", "store", "messages", "metrics"},
    "flow": {"net", "messages"},
    "runtime": {"net", "kernel", "store", "engine", "flow", "messages", "metrics"},
    "http": {"runtime", "messages", "metrics"},
    "cli": {"runtime", "http", "messages"},  # the outermost edge: `serve` starts the HTTP app
    "examples": set(),  # written as a user writes: through the package root only
}

# Layers written as user code, which import the package root (``import cronflow_actors as cf``).
ROOT_USERS = frozenset({"examples"})

# Outside libraries a layer must not touch: the pure net layer runs no IO and no event loop.
FORBIDDEN_EXTERNAL: dict[str, set[str]] = {
    "messages": {"asyncio", "pykka", "aiosqlite", "sqlite3", "prometheus_client", "threading"},
    "net": {"asyncio", "pykka", "aiosqlite", "sqlite3", "prometheus_client", "threading", "time"},
    "kernel": {"aiosqlite", "sqlite3", "prometheus_client"},
    "store": {"pykka", "prometheus_client"},
    "metrics": {"pykka", "aiosqlite", "sqlite3"},
}


def imported_modules(source: str) -> set[str]:
    """Every module a source file imports, at any depth (imports inside functions count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations(layer: str, source: str) -> list[str]:
    problems = []
    for name in sorted(imported_modules(source)):
        top = name.split(".")[0]
        if top == "cronflow_actors":
            parts = name.split(".")
            if len(parts) == 1:
                if layer in ROOT_USERS:
                    continue
                problems.append(f"imports the package root {name!r} (import the layer instead)")
                continue
            target = parts[1]
            if target in ("errors", "calls", layer):
                continue
            if target not in ALLOWED[layer]:
                problems.append(f"imports {name!r}; {layer}/ may import {sorted(ALLOWED[layer])}")
        elif top in FORBIDDEN_EXTERNAL.get(layer, set()):
            problems.append(f"imports {name!r}, which {layer}/ must not use")
    return problems


def layer_files() -> list[tuple[str, Path]]:
    return [(layer, path) for layer in ALLOWED for path in sorted((PACKAGE / layer).rglob("*.py"))]


def test_every_layer_folder_exists() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert sorted(folders - {"errors"}) == sorted(ALLOWED)  # errors/ is a leaf, not a layer


@pytest.mark.parametrize(
    ("layer", "path"),
    layer_files(),
    ids=[str(path.relative_to(PACKAGE)) for _, path in layer_files()],
)
def test_imports_point_down(layer: str, path: Path) -> None:
    assert violations(layer, path.read_text()) == [], path


LEAVES = ["calls.py", *(f"errors/{p.name}" for p in sorted((PACKAGE / "errors").glob("*.py")))]


@pytest.mark.parametrize("leaf", LEAVES)
def test_leaf_modules_import_nothing_of_the_package(leaf: str) -> None:
    imported = imported_modules((PACKAGE / leaf).read_text())
    outside = [
        n
        for n in imported
        if n.startswith("cronflow_actors") and not n.startswith("cronflow_actors.errors")
    ]
    assert not outside


def test_the_checker_catches_upward_and_forbidden_imports() -> None:
    assert violations("net", "import asyncio\n") == ["imports 'asyncio', which net/ must not use"]
    assert violations("kernel", "def f():\n    from cronflow_actors.engine import x\n")
    assert violations("kernel", "from cronflow_actors.runtime.app import Runtime\n")
    assert violations("net", "import cronflow_actors.store\n")
    assert violations("kernel", "from cronflow_actors.messages import Message\n") == []
    assert violations("store", "from cronflow_actors.errors import StoreError\n") == []
