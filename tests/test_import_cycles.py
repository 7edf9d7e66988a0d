"""No import cycles between the package's modules.

Every import counts: at module level, inside functions and under ``TYPE_CHECKING``, because a
cycle hidden in a function or a type annotation is still two modules that must be read together.
A package's ``__init__`` is a module too: a module that imports its own package's ``__init__``,
which imports it back, is a cycle. Next to the layer test (tests/test_layers.py), which checks the
direction between layers; this one checks the modules inside them.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cronflow_actors"
NAME = PACKAGE.name


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = [NAME, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package's modules ``path`` imports (``from a import b`` names ``a.b`` when that is a
    module, else ``a``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            for alias in node.names:
                if f"{origin}.{alias.name}" in modules:
                    found.add(f"{origin}.{alias.name}")
                elif origin in modules:
                    found.add(origin)
    found.discard(name)
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    paths = {module_name(path, root): path for path in root.rglob("*.py")}
    return {name: imports_of(name, path, set(paths)) for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def describe(component: list[str], graph: dict[str, set[str]]) -> str:
    members = set(component)
    return "\n".join(f"  {name} imports {sorted(graph[name] & members)}" for name in component)


def test_no_import_cycles_inside_the_package() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n\n".join(describe(c, graph) for c in found)


def test_the_checker_sees_cycles_hidden_in_functions_and_type_checking(tmp_path: Path) -> None:
    package = tmp_path / NAME
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(f"from {NAME} import b\n")
    (package / "b.py").write_text(f"def f():\n    from {NAME}.a import x\n")
    (package / "sub" / "__init__.py").write_text("from .c import y\n")
    (package / "sub" / "c.py").write_text(
        f"from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from {NAME}.sub import z\n"
    )
    (package / "d.py").write_text(f"from {NAME}.a import x\n")
    graph = import_graph(package)
    assert cycles(graph) == [[f"{NAME}.a", f"{NAME}.b"], [f"{NAME}.sub", f"{NAME}.sub.c"]]
