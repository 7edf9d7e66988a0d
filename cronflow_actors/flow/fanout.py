"""The constructs that run more than one thing: ``parallel`` and ``race`` (a work item per
function, ``max_concurrency`` at a time, within a ``timeout``), ``for_each`` and ``batch`` (a
work item per item or chunk, or, when the handler builds a flow, a child workflow per item),
``subflow`` (a child workflow of a ``Flow`` or of a registered flow's id), and ``action`` (a
detached function with its own retries and timeout).

Each function here builds one node's task; the compiler adds it to the net (and compiles the
child flows first: a per-item flow's or a subflow's net comes in as ``child``)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from cronflow_actors.calls import call_logged, settle
from cronflow_actors.errors import INFRASTRUCTURE
from cronflow_actors.flow import nodes as n
from cronflow_actors.flow.context import FlowContext
from cronflow_actors.flow.envelope import TriggerEnvelope, flow_payload, open_envelope
from cronflow_actors.flow.handlers import again, call_step, fall_back, step_handler
from cronflow_actors.messages.states import WorkflowState, WorkItemState
from cronflow_actors.net import builder as net
from cronflow_actors.net import jobs
from cronflow_actors.net.spec import NetSpec

__all__ = ["action_handler", "each", "each_flow", "group", "subflow"]

logger = logging.getLogger(__name__)

ItemsOf = Callable[[Any], Awaitable[list[Any]]]


# -- parallel and race ------------------------------------------------------------------------


def _index(item: Any) -> int:
    return int(item.payload["index"])


def _function_payloads(handlers: Sequence[Any]) -> list[dict[str, Any]]:
    """The payload of each function's work item: its place, the function's qualified name and
    which of the functions of that name it is (``nth``). A migration or a resume carries a
    completed item's output to the item of the same function (``messages.migrations
    .same_item``): by place, a list reordered between versions gave a function another's output
    and never called it (conform h27 M2). Not the module: a file served as ``app`` and run as
    ``__main__`` is the same flow (the reviewer's h27 H3). Lambdas, and functions one factory
    made, share a name: they are told apart by their order among those of that name."""
    payloads: list[dict[str, Any]] = []
    seen: Counter[str] = Counter()
    for index, fn in enumerate(handlers):
        name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
        payloads.append({"index": index, "fn": name, "nth": seen[name]})
        seen[name] += 1
    return payloads


def _place_of(payloads: list[dict[str, Any]]) -> Callable[[Any], int]:
    """A function's place in this version's list from its work item's payload: where its
    function is now, else where it was (an item of a run from before functions were named,
    ``{"index": i}``, or of a function renamed under the same version)."""
    places = {(p["fn"], p["nth"]): index for index, p in enumerate(payloads)}

    def place(payload: Any) -> int:
        found = places.get((payload.get("fn"), payload.get("nth")))
        return int(payload["index"]) if found is None else found

    return place


def _first_wins(ctx: Any) -> str:
    """A race's policy: the first completion completes the task, the first failure fails it."""
    if ctx.stats.completed:
        return "complete"
    return "fail" if ctx.stats.failed else "continue"


def _winner(items: list[Any]) -> Any:
    return next(i.output for i in items if i.state == WorkItemState.COMPLETED)


def _deadline(node: Any, what: str) -> Any:
    """An activity that arms the node's ``timeout`` for its whole task (a task-owned job,
    dropped when the task finishes in time)."""
    timeout = node.timeout

    def arm(ctx: Any) -> None:
        if timeout is not None:
            error = f"{what} {node.id!r} timed out after {timeout:g} s"
            ctx.register_scheduled(timeout, jobs.fail_task(ctx.parent.id, node.id, error))

    return arm


def group(node: n.GroupNode, ids: frozenset[str], problems: list[str]) -> net.TaskBuilder:
    """A ``parallel`` or ``race``: a work item per function (``ids``: the flow's step ids;
    what is wrong goes to ``problems``)."""
    count = len(node.handlers)
    what = "parallel" if node.mode == "all" else "race"
    if count == 0:
        problems.append(f"{what} {node.id!r} has no functions")
    limit = node.max_concurrency
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        problems.append(
            f"{what} {node.id!r}: max_concurrency must be a whole number >= 1, got {limit!r}"
        )
        limit = None
    handlers, arm = node.handlers, _deadline(node, what)
    first = count if limit is None else min(count, limit)

    payloads = _function_payloads(handlers)
    place = _place_of(payloads)

    async def run(ectx: Any) -> Any:
        fctx = FlowContext.of(ectx, ids)
        return await call_step(ectx, handlers[place(ectx.work_item.payload)], fctx)

    def start(ctx: Any) -> None:
        for index in range(first):
            ctx.work_item.initialize(payloads[index])
        arm(ctx)

    def next_one(ctx: Any) -> None:
        # one finished: the next function starts, keeping max_concurrency running
        if ctx.work_item.next_state == WorkItemState.COMPLETED:
            started = len(ctx.work_item.ids())
            if started < count:
                ctx.work_item.initialize(payloads[started])

    kind = "parallel" if node.mode == "all" else "race"
    item = net.work_item(node.id, handler=run, kind=kind, sets_last=False)
    builder = net.task(item).activities(on_enabled=start)
    if first < count:
        builder.activities(on_work_item_state_changed=next_one)
    if node.mode == "all":
        builder.output(
            lambda items: [i.output for i in sorted(items, key=lambda i: place(i.payload))]
        )
    else:
        builder.policy(_first_wins).output(_winner)
    return builder


# -- for_each and batch -----------------------------------------------------------------------


def _items(node: n.EachNode, ids: frozenset[str]) -> ItemsOf:
    """``items(ctx)`` checked, in chunks of ``node.size`` for a batch."""
    size, items_fn = node.size, node.items

    async def items_of(ctx: Any) -> list[Any]:
        items = await settle(items_fn(FlowContext.of(ctx, ids)))
        if not isinstance(items, list | tuple):
            kind = type(items).__name__
            raise TypeError(f"{node.id!r}: items must return a list, got {kind}")
        items = list(items)
        if len(items) > node.max_items:
            raise ValueError(
                f"{node.id!r}: items gave {len(items)} items, more than max_items="
                f"{node.max_items}: every item is kept in the run's state, which each item's "
                "end writes again (a list costs the square of its length); pass a larger "
                "max_items= to the construct, or split the list over runs or subflows"
            )
        return [items[i : i + size] for i in range(0, len(items), size)] if size > 0 else items

    return items_of


def each(node: n.EachNode, ids: frozenset[str]) -> net.TaskBuilder:
    """The task of a ``for_each``/``batch`` whose function takes an item (or chunk)."""
    items_of, batched, handler = _items(node, ids), node.size > 0, node.handler

    async def start(ctx: Any) -> None:
        units = await items_of(ctx)
        if not units:
            ctx.work_item.initialize({"empty": True})
        elif batched:
            ctx.work_item.initialize({"items": units[0], "index": 0, "rest": units[1:]})
        else:
            for index, value in enumerate(units):
                ctx.work_item.initialize({"item": value, "index": index})

    def next_batch(ctx: Any) -> None:
        if not batched or ctx.work_item.next_state != WorkItemState.COMPLETED:
            return
        payload = ctx.work_item.info.payload
        if payload.get("rest"):
            rest = payload["rest"]
            following = {"items": rest[0], "index": payload["index"] + 1, "rest": rest[1:]}
            ctx.work_item.initialize(following)

    async def run(ectx: Any) -> Any:
        payload = ectx.work_item.payload
        if payload.get("empty"):
            return None
        value = payload["items"] if batched else payload["item"]
        return await call_step(ectx, handler, value, FlowContext.of(ectx, ids))

    def reduce(items: list[Any]) -> Any:
        real = sorted((i for i in items if not i.payload.get("empty")), key=_index)
        units = [i.payload["items"] if batched else i.payload["item"] for i in real]
        return _results(node, units, [i.output for i in real])

    kind = "batch" if batched else "for_each"
    item = net.work_item(node.id, handler=run, kind=kind, sets_last=False)
    builder = net.task(item).activities(on_enabled=start, on_work_item_state_changed=next_batch)
    return builder.output(reduce)


def _results(node: n.EachNode, units: list[Any], outputs: list[Any]) -> dict[str, Any]:
    if node.size > 0:
        batches = [
            {"batch_index": index, "items": unit, "result": output, "size": len(unit)}
            for index, (unit, output) in enumerate(zip(units, outputs, strict=True))
        ]
        return {
            "type": "batch",
            "name": node.id,
            "results": batches,
            "total_batches": len(batches),
            "total_items": sum(b["size"] for b in batches),
        }
    results = [
        {"item": unit, "result": output, "index": index}
        for index, (unit, output) in enumerate(zip(units, outputs, strict=True))
    ]
    return {"type": "forEach", "name": node.id, "results": results, "total_items": len(results)}


def each_flow(node: n.EachNode, ids: frozenset[str], child: NetSpec) -> net.TaskBuilder:
    """The composite task of a ``for_each``/``batch`` whose function builds a flow: a child
    workflow of ``child`` (the per-item flow's net) for each item (all at once) or chunk (the
    next one when the previous completes); the child's output is the item's result."""
    items_of, batched = _items(node, ids), node.size > 0
    kind = "batch" if batched else "for_each"

    def unit(payload: Any, rest: list[Any]) -> TriggerEnvelope:
        # with the chunks still to run after this one
        return msgspec.structs.replace(flow_payload(payload, kind=kind), rest=rest or None)

    async def start(ctx: Any) -> None:
        units = await items_of(ctx)
        if not units:  # a child that ends at once: the task needs one to start and complete
            ctx.workflow.initialize(msgspec.structs.replace(unit(None, []), empty=True))
        elif batched:
            ctx.workflow.initialize(unit(units[0], units[1:]))
        else:
            for value in units:
                ctx.workflow.initialize(unit(value, []))

    def next_batch(ctx: Any) -> None:
        changed = ctx.workflow
        if changed.next_state == WorkflowState.COMPLETED and changed.info is not None:
            rest = open_envelope(changed.info.payload).rest
            if rest:
                ctx.workflow.initialize(unit(rest[0], rest[1:]))

    def reduce(children: list[Any]) -> Any:
        real = [(c, open_envelope(c.payload)) for c in children]
        real = [(c, envelope) for c, envelope in real if not envelope.empty]
        units = [envelope.payload for _c, envelope in real]
        return _results(node, units, [c.output for c, _envelope in real])

    builder = net.composite_task(child).activities(
        on_enabled=start, on_workflow_state_changed=next_batch
    )
    return builder.output(reduce)


def subflow(node: n.SubflowNode, ids: frozenset[str], child: NetSpec) -> net.TaskBuilder:
    """A composite task running ``child`` (the subflow's net), started with ``input(ctx)``,
    ``input`` itself, or ``ctx.last``."""
    make_input = node.input

    async def start(ctx: Any) -> None:
        fctx = FlowContext.of(ctx, ids)
        if make_input is None:
            payload = fctx.last
        elif callable(make_input):
            payload = await settle(make_input(fctx))
        else:
            payload = make_input
        ctx.workflow.initialize(flow_payload(payload, kind="subflow"))

    return net.composite_task(child).activities(on_enabled=start)


# -- action ---------------------------------------------------------------------------------


def action_handler(node: n.ActionNode, step_ids: frozenset[str], flow_id: str) -> Any:
    """A detached action's function with its ``timeout`` and ``retry``: the flow has moved on,
    so its retries wait here, on the runtime's clock (after a crash a durable action is
    dispatched again, with its retries from the first); ``on_error`` runs once attempts are used
    up. ``ctx.attempt`` counts every call, across dispatches (1, 2, ...); the engine's context
    follows it, so the action's record and its log lines name the call that ended it, and a
    failed call that another follows is logged as a step's is."""
    if node.retry is None:
        return step_handler(node, step_ids, flow_id)
    retry, handler = node.retry, node.handler

    async def run(ectx: Any) -> Any:
        fctx = FlowContext.of(ectx, step_ids)
        first = fctx.attempt  # its dispatch's: 2 and more after a restart
        attempt = 1
        while True:
            fctx.attempt = ectx.attempt = first + attempt - 1
            try:
                return await call_step(ectx, handler, fctx, limit=node.timeout, step=node.id)
            except Exception as error:
                if isinstance(error, INFRASTRUCTURE):  # the runtime's own failure: no retry
                    raise
                more = attempt < retry.attempts
                if more:  # its retry_on is user code (review h41 F2)
                    await again(ectx)
                if more and retry.should_retry(error):
                    delay = retry.delay_before(attempt)
                    logger.warning(
                        "run %s: action %r (attempt %d) failed; another attempt follows in %g "
                        "s: %s: %s",
                        fctx.run.id,
                        node.id,
                        fctx.attempt,
                        delay,
                        type(error).__name__,
                        error,
                        # one line: its traceback at DEBUG (the last attempt's is logged whole)
                        exc_info=error if logger.isEnabledFor(logging.DEBUG) else None,
                        extra={"run_id": fctx.run.id, "workflow": flow_id, "step": node.id},
                    )
                    if retry.on_retry is not None:  # one that raises is logged; retries go on
                        what = f"on_retry of action {node.id!r}"
                        tried = fctx.attempt  # as ctx.attempt counts, across dispatches
                        asked = await call_logged(
                            retry.on_retry, fctx, error, tried, delay, what=what
                        )
                        if asked is not None:  # ctx.cancel(): the action's failure, no retry
                            raise asked from error
                    await ectx.clock.sleep(delay)
                    await again(ectx)
                    attempt += 1
                    continue
                if not node.on_error:
                    raise
                return await fall_back(node, fctx, error, ectx)

    return run
