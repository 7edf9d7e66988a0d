"""The control-flow methods of a ``cf.define(...)`` chain: ``if_``/``elif_``/``else_``/``end_if``
blocks, ``parallel`` and ``race``, ``while_`` loops, ``for_each`` and ``batch``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Self

from cronflow_actors.flow.chain import Chain
from cronflow_actors.flow.nodes import Branch, EachNode, GroupNode, IfNode, WhileNode
from cronflow_actors.flow.per_item import builds_a_flow, per_item_flow

__all__ = ["MAX_ITEMS", "ControlFlowMethods"]

MAX_ITEMS = 1000
"""The most items a ``for_each`` or ``batch`` takes from a run unless given ``max_items=``."""

Fn = Callable[..., Any]


class ControlFlowMethods(Chain):
    """Branches, groups, loops and fan-outs of ``Flow`` (which inherits them)."""

    def if_(self, name: str, condition: Fn) -> Self:
        """Start a branch: the steps until ``elif_``/``else_``/``end_if`` run if ``condition(ctx)``
        (plain or async) is true. Exactly one branch of the block runs."""
        node = IfNode(id=name, branches=[Branch(name=name, condition=condition)])
        self._add(node)
        self._stack.append((node, node.branches[0].nodes))
        return self

    def elif_(self, name: str, condition: Fn) -> Self:
        self._changed()
        if not self._stack:
            self._problems.append(f"elif_({name!r}) without an if_ before it")
            return self
        node = self._stack[-1][0]
        if node.branches[-1].condition is None:
            self._problems.append(f"elif_({name!r}) after else_() in if_({node.id!r})")
        node.branches.append(Branch(name=name, condition=condition))
        self._stack[-1] = (node, node.branches[-1].nodes)
        return self

    def else_(self) -> Self:
        self._changed()
        if not self._stack:
            self._problems.append("else_() without an if_ before it")
            return self
        node = self._stack[-1][0]
        if node.branches[-1].condition is None:
            self._problems.append(f"if_({node.id!r}) has two else_()")
        node.branches.append(Branch(name=f"{node.id}:else", condition=None))
        self._stack[-1] = (node, node.branches[-1].nodes)
        return self

    def end_if(self) -> Self:
        self._changed()
        if not self._stack:
            self._problems.append("end_if() without an if_ before it")
            return self
        self._stack.pop()
        return self

    def parallel(
        self,
        id: str,
        handlers: Sequence[Fn],
        *,
        max_concurrency: int | None = None,
        timeout: float | str | None = None,
    ) -> Self:
        """Run ``handlers`` (at most ``max_concurrency`` at a time); the output is their results
        in input order. The first failure, or ``timeout`` passing, fails the step (and cancels
        the others)."""
        return self._add(self._group(id, handlers, "all", max_concurrency, timeout))

    def race(
        self,
        id: str,
        handlers: Sequence[Fn],
        *,
        max_concurrency: int | None = None,
        timeout: float | str | None = None,
    ) -> Self:
        """Run ``handlers`` at once; the first to finish gives the output, the rest are
        canceled. If the first to finish fails, or ``timeout`` passes first, the step fails."""
        return self._add(self._group(id, handlers, "first", max_concurrency, timeout))

    def while_(self, name: str, condition: Fn, handler: Fn, *, max_iterations: int = 1000) -> Self:
        """Run ``handler(ctx)`` while ``condition(ctx)`` is true, each iteration durable; more
        than ``max_iterations`` fails the step. The output is the last iteration's."""
        limit = max_iterations
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            self._problems.append(
                f"while_ {name!r}: max_iterations must be a whole number >= 1, got {limit!r}"
            )
            max_iterations = 1
        return self._add(
            WhileNode(id=name, condition=condition, handler=handler, max_iterations=max_iterations)
        )

    def for_each(self, name: str, items: Fn, handler: Fn, *, max_items: int = MAX_ITEMS) -> Self:
        """``handler(item, ctx)`` for every item of ``items(ctx)``, all at once; or, when the
        handler's second parameter is named ``flow`` (``lambda item, flow: flow.step(...)``),
        a flow per item, run as a child workflow whose payload is the item. The output is
        ``{"type": "forEach", "name", "results": [{"item", "result", "index"}], "total_items"}``
        (a flow's result: its output).

        ``max_items`` (1,000): the most items a run may give it; more fails it before any item
        runs. Every item is kept in the run's state, which each item's end writes again: the
        cost of a list grows with its square (2,000 items: some 13 s here)."""
        return self._add(self._each(name, items, handler, 0, max_items))

    def batch(
        self, name: str, items: Fn, size: int, handler: Fn, *, max_items: int = MAX_ITEMS
    ) -> Self:
        """``handler(batch, ctx)`` (or a flow per batch, as ``for_each``) for the chunks of
        ``size`` items, one after another. The output is ``{"type": "batch", "name",
        "results": [{"batch_index", "items", "result", "size"}], "total_batches",
        "total_items"}``. ``max_items``: as ``for_each``'s, counting items, not chunks."""
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            self._problems.append(f"batch {name!r}: size must be a whole number >= 1, got {size!r}")
            size = 1
        return self._add(self._each(name, items, handler, size, max_items))

    # -- internals --------------------------------------------------------------------------------

    def _group(
        self,
        id: str,
        handlers: Sequence[Fn],
        mode: str,
        max_concurrency: int | None,
        timeout: float | str | None,
    ) -> GroupNode:
        what = "parallel" if mode == "all" else "race"
        if not isinstance(handlers, list | tuple):
            self._problems.append(
                f"{what} {id!r}: expected a list of functions, got {type(handlers).__name__} "
                f"{handlers!r} (.{what}(id, [f, g]))"
            )
            handlers = ()
        return GroupNode(
            id=id,
            handlers=tuple(handlers),
            mode=mode,
            max_concurrency=max_concurrency,
            timeout=self._seconds(timeout, f"{what} {id!r} timeout"),
        )

    def _each(self, name: str, items: Fn, handler: Fn, size: int, max_items: int) -> EachNode:
        if not isinstance(max_items, int) or isinstance(max_items, bool) or max_items < 1:
            what = "batch" if size else "for_each"
            self._problems.append(
                f"{what} {name!r}: max_items must be a whole number >= 1, got {max_items!r}"
            )
            max_items = MAX_ITEMS
        inner = None
        if callable(handler) and builds_a_flow(handler):
            inner = per_item_flow(handler, f"{self.id}.{name}", self._problems, type(self))
        return EachNode(
            id=name, items=items, handler=handler, size=size, max_items=max_items, inner=inner
        )
