"""A flow per item: ``for_each(name, items, lambda item, flow: flow.step(...).step(...))``.

The function is called once at definition with a placeholder item (``ITEM``) to learn the
flow's shape, which is compiled like any subflow; each item then runs as a child workflow whose
payload is the item. The steps' functions may use the item (a closure over it): at run time
every function of the per-item flow is taken from the flow the function builds for the real
item (built again on demand, after a restart too). The shape may not depend on the item.

The builder hands in how to make an empty flow (``new_flow``) and gets back the per-item
flow's ``FlowDefinition``, which the compiler compiles like any other."""

from __future__ import annotations

import inspect
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from cronflow_actors.flow import nodes as n
from cronflow_actors.flow.context import FlowContext
from cronflow_actors.flow.definition import FlowDefinition
from cronflow_actors.flow.envelope import EMPTY

__all__ = ["EMPTY", "ITEM", "builds_a_flow", "per_item_flow"]

_CALLABLE_FIELDS = (
    "handler",
    "condition",
    "items",
    "filter",
    "validate",
    "on_pause",
    "on_timeout",
    "message",
    "description",
    "approval_url",
    "duration",
    "input",
)
_CACHED = 256  # per-item flows kept built (one per child workflow running)


class _Item:
    """The placeholder item: the steps' functions may hold it (they get the real item at run
    time); using it to shape the flow (naming, choosing or counting steps) is refused."""

    def __getattr__(self, name: str) -> _Item:
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    def __getitem__(self, key: Any) -> _Item:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> _Item:
        return self

    def _refuse(self, *_args: Any) -> Any:
        raise TypeError(
            "the shape of a for_each/batch flow may not depend on the item: use the item "
            "inside the steps' functions (or ctx.payload), not to name, choose or count steps"
        )

    __bool__ = __iter__ = __len__ = __str__ = __format__ = __int__ = __index__ = _refuse
    __eq__ = __lt__ = __hash__ = __contains__ = _refuse


ITEM = _Item()


def builds_a_flow(handler: Any) -> bool:
    """Whether a ``for_each``/``batch`` function builds a flow per item: its second parameter
    is named ``flow`` (``lambda item, flow: flow.step(...)``)."""
    try:
        params = list(inspect.signature(handler).parameters)
    except (TypeError, ValueError):
        return False
    return len(params) == 2 and params[1] == "flow"


def per_item_flow(
    make: Callable[..., Any],
    child_id: str,
    problems: list[str],
    new_flow: Callable[[str], Any],
) -> FlowDefinition | None:
    """The per-item flow's shape, from ``make(ITEM, new_flow(child_id))``, with every function
    standing in for the one ``make(item, flow)`` gives for the real item."""
    try:
        shape = _built(make, ITEM, child_id, new_flow)
    except Exception as error:
        problems.append(f"building the flow of each item failed: {type(error).__name__}: {error}")
        return None
    rebuilt: OrderedDict[str, list[n.Node]] = OrderedDict()
    lock = threading.Lock()

    def nodes_for(fctx: FlowContext) -> list[n.Node]:
        """The nodes of the flow built for this child's item (kept while it runs)."""
        key = fctx.run.id
        with lock:
            found = rebuilt.get(key)
            if found is not None:
                rebuilt.move_to_end(key)
                return found
        real = list(_built(make, fctx.payload, child_id, new_flow).nodes)
        if _shape_of(real) != _shape_of(shape.nodes):
            raise TypeError(
                f"the flow built for item {fctx.payload!r} is not shaped like the one built "
                "at definition; its steps may use the item, its shape may not depend on it"
            )
        with lock:
            rebuilt[key] = real
            while len(rebuilt) > _CACHED:
                rebuilt.popitem(last=False)
        return real

    return FlowDefinition(
        id=child_id,
        name=child_id,
        nodes=tuple(_proxied(shape.nodes, (), nodes_for)),
        hooks=shape.hooks,
        skip_when_empty=True,
    )


def _built(
    make: Callable[..., Any], item: Any, child_id: str, new_flow: Callable[[str], Any]
) -> FlowDefinition:
    flow = new_flow(child_id)
    returned = make(item, flow)
    if inspect.isawaitable(returned):
        if inspect.iscoroutine(returned):
            returned.close()  # (never awaited: no warning for it)
        raise TypeError(
            "a flow built for each item is built at once: its function (item, flow) must be a "
            "plain def (or a lambda), not async def"
        )
    built = returned if isinstance(returned, type(flow)) else flow
    definition: FlowDefinition = built.definition()
    return definition


def _shape_of(nodes: Sequence[n.Node]) -> list[Any]:
    shape: list[Any] = []
    for node in nodes:
        branches = [_shape_of(b.nodes) for b in getattr(node, "branches", ())]
        shape.append((type(node).__name__, node.id, branches))
    return shape


def _proxied(
    nodes: Sequence[n.Node], path: tuple[int, ...], nodes_for: Callable[[FlowContext], list[n.Node]]
) -> list[n.Node]:
    result = []
    for index, node in enumerate(nodes):
        where = (*path, index)
        change: dict[str, Any] = {}
        for field in _CALLABLE_FIELDS:
            value = getattr(node, field, None)
            if callable(value):
                change[field] = _proxy(value, where, field, None, nodes_for)
        for field in ("on_error", "handlers"):
            values = getattr(node, field, ())
            if values:
                change[field] = tuple(
                    _proxy(v, where, field, i, nodes_for) for i, v in enumerate(values)
                )
        if isinstance(node, n.IfNode):
            change["branches"] = [
                n.Branch(
                    name=branch.name,
                    condition=None
                    if branch.condition is None
                    else _proxy(branch.condition, where, "branch", b, nodes_for),
                    nodes=_proxied(branch.nodes, (*where, b), nodes_for),
                )
                for b, branch in enumerate(node.branches)
            ]
        result.append(msgspec.structs.replace(node, **change) if change else node)
    return result


def _real(nodes: Sequence[n.Node], where: tuple[int, ...], field: str, index: int | None) -> Any:
    """The function at ``where``/``field``/``index`` of the nodes built for a real item; or
    the value there, where the item itself (or a value made of it) was given in place of a
    function (a sleep's duration, a subflow's input), which the placeholder stood in for."""
    node: Any = None
    level = nodes
    steps = list(where)
    while steps:
        node = level[steps.pop(0)]
        if steps:  # into an if_ branch
            level = node.branches[steps.pop(0)].nodes
    if field == "branch":
        return node.branches[index].condition
    value = getattr(node, field)
    if field == "duration" and value is None:  # a duration given as a value: its seconds
        value = node.seconds
    return value[index] if index is not None else value


def _proxy(
    original: Callable[..., Any],
    where: tuple[int, ...],
    field: str,
    index: int | None,
    nodes_for: Callable[[FlowContext], list[n.Node]],
) -> Callable[..., Any]:
    """A function like ``original`` (plain or coroutine, so it runs where that one would)
    that calls the same function of the flow built for the running child's item."""

    def resolve(args: tuple[Any, ...]) -> Any:
        fctx = next(a for a in args if isinstance(a, FlowContext))
        return _real(nodes_for(fctx), where, field, index)

    if inspect.iscoroutinefunction(original):

        async def call_async(*args: Any) -> Any:
            return await resolve(args)(*args)

        return call_async

    def call(*args: Any) -> Any:
        real = resolve(args)
        return real(*args) if callable(real) else real  # a value where the placeholder was

    return call
