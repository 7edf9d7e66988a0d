"""What every method of a ``cf.define(...)`` chain shares: the nodes recorded so far (an open
``if_`` block on a stack), the problems found so far, and the helpers that add a node, amend
the last one and read a duration. ``Flow`` and its method groups (``flow/branching.py``,
``flow/trigger_methods.py``) build on it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Self

import msgspec

from cronflow_actors.errors import InvalidWorkflowError
from cronflow_actors.flow.introspect import method_of
from cronflow_actors.flow.nodes import (
    ActionNode,
    CancelNode,
    EachNode,
    EventNode,
    GroupNode,
    HumanNode,
    IfNode,
    LogNode,
    Node,
    SleepNode,
    StepNode,
    SubflowNode,
    WhileNode,
    walk,
)
from cronflow_actors.flow.options import (
    Cache,
    CircuitBreaker,
    Retry,
    bare_number,
    from_mapping,
)
from cronflow_actors.net.durations import parse_duration

if TYPE_CHECKING:
    from cronflow_actors.flow.compiled import CompiledFlow

__all__ = ["Chain"]


class _Closed(list[str]):
    """A registered flow's problems: another is a change to it, refused as any change is (a
    refused call's problem, recorded before it reached its change, stayed, and failed the
    flow's test harness: review h40 F9)."""

    def __init__(self, chain: Chain, problems: list[str]) -> None:
        super().__init__(problems)
        self._chain = chain

    def append(self, problem: str) -> None:
        self._chain._changed()
        super().append(problem)

    def extend(self, problems: Iterable[str]) -> None:
        self._chain._changed()
        super().extend(problems)


class Chain:
    """The recording state of a flow's chain (calls only record; ``build()`` checks)."""

    id: str

    def __init__(self) -> None:
        self._root: list[Node] = []
        self._stack: list[tuple[IfNode, list[Node]]] = []
        self._problems: list[str] = []
        self._compiled: CompiledFlow | None = None
        """The last compilation, dropped by any change to the chain."""
        self._registered = False
        """Registered with a runtime: it cannot change (``_changed``)."""

    def _register(self) -> None:
        """Registered with a runtime: no change from now on (``_changed`` refuses it), nor to
        the flows it runs as subflows, given as objects (a step added to one was taken and
        never ran: review h40 F7)."""
        self._registered = True
        self._problems = _Closed(self, self._problems)
        for node in walk(self._root):
            child = node.flow if isinstance(node, SubflowNode) else None
            if isinstance(child, Chain) and not child._registered:
                child._register()

    def _changed(self) -> None:
        """Called by every method that changes the chain, before it changes anything."""
        if self._registered:  # (taken, it ran in no run, and held waiting runs: devx h40 F7)
            version = getattr(self, "version", "v1")
            raise InvalidWorkflowError(
                self.id,
                [
                    f"flow {self.id!r} version {version!r} is registered with a runtime, so it "
                    "cannot change: its runs go on as registered, and a runtime that registers "
                    "it changed holds the runs waiting in it as edited without a version bump; "
                    f"define the new shape as a new version (cf.define({self.id!r}, "
                    "version='...')) and register that"
                ],
            )
        self._compiled = None

    def _current(self) -> list[Node]:
        return self._stack[-1][1] if self._stack else self._root

    def _add(self, node: Node) -> Self:
        self._changed()
        if not isinstance(node.id, str) or not node.id:
            names = _PUBLIC.get(type(node), ("step",))
            method = " / ".join(f".{name}()" for name in names)
            example = (
                "(Cronflow's humanInTheLoop({...}) is .human_in_the_loop('approve', timeout='1h'))"
                if isinstance(node, HumanNode)
                else f"(.{names[0]}('charge', ...))"
            )
            self._problems.append(
                f"{method}: its id must be a non-empty string, got {type(node.id).__name__} "
                f"{node.id!r}; the id comes first, then the options by name {example}"
            )
        nodes = self._current()
        if nodes and isinstance(nodes[-1], CancelNode):  # (taken: devx h40 F11)
            self._problems.append(
                f"{_describe([node])} follows .cancel(), where the run ends as canceled: it "
                "would never run; put it before the cancel, or end the branch first (.end_if())"
            )
        nodes.append(node)
        return self

    def _count(self) -> int:
        return sum(1 for _ in walk(self._root))

    def _amend(self, what: str, kinds: tuple[type[Node], ...], **change: Any) -> Self:
        nodes = self._current()
        if not nodes or not isinstance(nodes[-1], kinds):
            names = [f".{name}()" for kind in kinds for name in _PUBLIC[kind]]
            allowed = f"one of {', '.join(names)}" if len(names) > 1 else names[0]
            self._problems.append(f".{what}() must follow {allowed}; it follows {_describe(nodes)}")
            return self
        if change:
            self._changed()
            nodes[-1] = msgspec.structs.replace(nodes[-1], **change)
        return self

    def _option(self, value: Any, kind: type, what: str) -> Any:
        if isinstance(value, Mapping) and kind in (Retry, Cache, CircuitBreaker):  # a dict
            value = from_mapping(kind, value, what)
            if isinstance(value, list):
                self._problems.extend(value)
                return None
        if value is not None and not isinstance(value, kind):
            self._problems.append(f"{what} must be a cf.{kind.__name__}(...), got {value!r}")
            return None
        return value

    def _step_node(
        self,
        id: str,
        handler: Any,
        options: Any,
        named: dict[str, Any],
        on_error: Any,
    ) -> StepNode:
        """A step's node from its options: ``named`` (by keyword), with what Cronflow's
        ``options`` dict adds (a key given both ways is a problem, as is an unknown one)."""
        where = f"step {id!r}"
        if options is not None and not isinstance(options, Mapping):
            self._problems.append(
                f"{where}: its third argument is Cronflow's options dict ({{'timeout': '5s', "
                f"'retry': {{...}}}}), got {type(options).__name__} {options!r}; or give the "
                "options by name (timeout=, retry=, cache=, delay=, circuit_breaker=)"
            )
        elif options is not None:
            for key, value in options.items():
                name = _STEP_OPTIONS.get(key) if isinstance(key, str) else None
                if name is None:
                    known = ", ".join(map(repr, _STEP_OPTIONS))
                    self._problems.append(f"{where}: unknown option {key!r} (it takes {known})")
                elif named[name] is not None:
                    self._problems.append(
                        f"{where}: {name} is given twice (by name and in the dict)"
                    )
                elif name in ("timeout", "delay") and (
                    unitless := bare_number(value, f"{where}: {key}")
                ):
                    self._problems.append(unitless)
                else:
                    named[name] = value
        return StepNode(
            id=id,
            handler=handler,
            retry=self._option(named["retry"], Retry, f"{where} retry"),
            timeout=self._seconds(named["timeout"], f"{where} timeout"),
            on_error=() if on_error is None else (on_error,),
            delay=self._seconds(named["delay"], f"{where} delay"),
            cache=self._option(named["cache"], Cache, f"{where} cache"),
            circuit_breaker=self._option(
                named["circuit_breaker"], CircuitBreaker, f"{where} circuit_breaker"
            ),
        )

    def _seconds(
        self,
        value: float | str | None,
        what: str,
        *,
        problems: list[str] | None = None,
        report: bool = True,
    ) -> float | None:
        if value is None:
            return None
        try:
            return parse_duration(value, what)
        except ValueError as error:
            if problems is not None:
                problems.append(str(error))
            elif report:
                self._problems.append(str(error))
            return None


_STEP_OPTIONS = {
    "timeout": "timeout",
    "retry": "retry",
    "cache": "cache",
    "delay": "delay",
    "circuitBreaker": "circuit_breaker",
    "circuit_breaker": "circuit_breaker",
}
"""A step's options in Cronflow's dict (either spelling), by their names here."""

_PUBLIC: dict[type[Node], tuple[str, ...]] = {
    StepNode: ("step",),
    ActionNode: ("action",),
    IfNode: ("if_",),
    GroupNode: ("parallel", "race"),
    WhileNode: ("while_",),
    EachNode: ("for_each", "batch"),
    SleepNode: ("sleep", "delay"),
    EventNode: ("wait_for_event",),
    HumanNode: ("human_in_the_loop", "pause"),
    SubflowNode: ("subflow",),
    CancelNode: ("cancel",),
    LogNode: ("log",),
}
"""The chain's methods that add each kind of node, as a user calls them."""


def _describe(nodes: list[Node]) -> str:
    """The node a chained call follows, named by the method that added it."""
    if not nodes:
        return "nothing"
    return f".{method_of(nodes[-1])}({nodes[-1].id!r})"
