"""A compiled flow with some steps' functions replaced, for one run: the mocks of a replay or
a test harness (``mocked``), and the stand-ins for mocks a restart lost (``stand_ins``: they
fail with ``MockLostError`` rather than run the real function, with no retry, fallback or
cache that would act as if it had run)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from cronflow_actors.errors import InvalidWorkflowError, MockLostError
from cronflow_actors.flow.compile import compile_flow
from cronflow_actors.flow.compiled import CompiledFlow, Resolve
from cronflow_actors.flow.nodes import Branch, EachNode, IfNode, Node

__all__ = ["mocked", "stand_ins"]

_STEP_OPTIONS = {"retry": None, "on_error": (), "cache": None, "circuit_breaker": None}
"""Step options a lost mock's stand-in drops, so that nothing tries it again or falls back
(or answers from a cache) as if the real handler had run."""


def mocked(
    flow: CompiledFlow, mocks: Mapping[str, Callable[..., Any]], resolve: Resolve | None = None
) -> CompiledFlow:
    """``flow`` compiled again with the functions of the steps in ``mocks`` replaced (their
    retry, timeout and ``on_error`` still apply)."""

    def mock(node: Node) -> Node:
        return _one_function(msgspec.structs.replace(node, handler=mocks[node.id]))

    return _recompiled(flow, mock, mocks, resolve)


def stand_ins(
    flow: CompiledFlow, run_id: str, steps: Iterable[str], resolve: Resolve | None = None
) -> CompiledFlow:
    """``flow`` compiled again with the steps in ``steps`` failing with ``MockLostError``."""

    def stand_in(node: Node) -> Node:
        async def lost(*_args: Any) -> Any:
            raise MockLostError(run_id, node.id)

        options = {
            name: default
            for name, default in _STEP_OPTIONS.items()
            if name in type(node).__struct_fields__
        }
        return _one_function(msgspec.structs.replace(node, handler=lost, **options))

    return _recompiled(flow, stand_in, set(steps), resolve)


def _one_function(node: Node) -> Node:
    """A mocked step that calls its function: a ``for_each`` (or ``batch``) whose handler
    built a flow per item calls the mock per item (``mock(item, ctx)``) in that flow's place,
    where its item flow ran with the real functions and the mock was never called (conform
    h39 F3)."""
    if isinstance(node, EachNode) and node.inner is not None:
        return msgspec.structs.replace(node, inner=None)
    return node


def _recompiled(
    flow: CompiledFlow, replace: Callable[[Node], Node], ids: Iterable[str], resolve: Resolve | None
) -> CompiledFlow:
    if flow.definition is None:
        raise ValueError(f"flow {flow.id!r} was compiled without its definition")
    nodes = _replaced(flow.definition.nodes, replace, set(ids))
    definition = msgspec.structs.replace(flow.definition, nodes=tuple(nodes))
    problems: list[str] = []
    compiled = compile_flow(definition, problems, resolve)
    if compiled is None:
        raise InvalidWorkflowError(flow.id, problems)
    return compiled


def _replaced(nodes: Sequence[Node], replace: Callable[[Node], Node], ids: set[str]) -> list[Node]:
    result = []
    for original in nodes:
        node = replace(original) if original.id in ids else original
        if isinstance(node, IfNode):
            branches = [
                Branch(name=b.name, condition=b.condition, nodes=_replaced(b.nodes, replace, ids))
                for b in node.branches
            ]
            node = msgspec.structs.replace(node, branches=branches)
        result.append(node)
    return result
