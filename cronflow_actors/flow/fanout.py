"""The constructs that run more than one thing: ``parallel`` and ``race`` (a work item per
function, ``max_concurrency`` at a time, within a ``timeout``), ``for_each`` and ``batch`` (a
work item per item or chunk, or, when the handler builds a flow, a child workflow per item),
``subflow`` (a child workflow of a ``Flow`` or of a registered flow's id), and ``action`` (a
detached function with its own retries and timeout)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cronflow_actors.errors import InvalidWorkflowError
from cronflow_actors.flow import nodes as n
from cronflow_actors.flow.context import FlowContext, flow_payload, unwrap_payload
from cronflow_actors.flow.handlers import call_user, fall_back, maybe, step_handler
from cronflow_actors.flow.per_item import EMPTY
from cronflow_actors.messages.states import WorkflowState, WorkItemState
from cronflow_actors.net import builder as net
from cronflow_actors.net import jobs

if TYPE_CHECKING:
    from cronflow_actors.flow.compile import Compiler

__all__ = ["action_handler", "each", "group", "subflow"]


# -- parallel and race ------------------------------------------------------------------------


def _index(item: Any) -> int:
    return int(item.payload["index"])


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


def group(compiler: Compiler, node: n.GroupNode) -> net.TaskBuilder:
    count = len(node.handlers)
    what = "parallel" if node.mode == "all" else "race"
    if count == 0:
        compiler.problems.append(f"{what} {node.id!r} has no functions")
    limit = node.max_concurrency
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        compiler.problems.append(
            f"{what} {node.id!r}: max_concurrency must be a whole number >= 1, got {limit!r}"
        )
        limit = None
    ids, handlers, arm = compiler.step_ids, node.handlers, _deadline(node, what)
    first = count if limit is None else min(count, limit)

    async def run(ectx: Any) -> Any:
        index = ectx.work_item.payload["index"]
        fctx = FlowContext.of(ectx, ids)
        return await call_user(handlers[index], (fctx,), ectx, None, node.id)

    def start(ctx: Any) -> None:
        for index in range(first):
            ctx.work_item.initialize({"index": index})
        arm(ctx)

    def next_one(ctx: Any) -> None:
        # one finished: the next function starts, keeping max_concurrency running
        if ctx.work_item.next_state == WorkItemState.COMPLETED:
            started = len(ctx.work_item.ids())
            if started < count:
                ctx.work_item.initialize({"index": started})

    kind = "parallel" if node.mode == "all" else "race"
    item = net.work_item(node.id, handler=run, kind=kind, sets_last=False)
    builder = net.task(item).activities(on_enabled=start)
    if first < count:
        builder.activities(on_work_item_state_changed=next_one)
    if node.mode == "all":
        builder.output(lambda items: [i.output for i in sorted(items, key=_index)])
    else:
        builder.policy(_first_wins).output(_winner)
    return builder


# -- for_each and batch -----------------------------------------------------------------------


def each(compiler: Compiler, node: n.EachNode) -> tuple[net.TaskBuilder, bool]:
    """The task of a ``for_each``/``batch``, and whether it is composite (a child workflow per
    item, when the function builds a flow)."""
    ids, size, items_fn = compiler.step_ids, node.size, node.items
    batched = size > 0

    async def items_of(ctx: Any) -> list[Any]:
        items = await maybe(items_fn(FlowContext.of(ctx, ids)))
        if not isinstance(items, list | tuple):
            kind = type(items).__name__
            raise TypeError(f"{node.id!r}: items must return a list, got {kind}")
        items = list(items)
        return [items[i : i + size] for i in range(0, len(items), size)] if batched else items

    if node.inner is not None:
        return _each_flow(compiler, node, items_of), True
    handler = node.handler

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
        return await call_user(handler, (value, FlowContext.of(ectx, ids)), ectx, None, node.id)

    def reduce(items: list[Any]) -> Any:
        real = sorted((i for i in items if not i.payload.get("empty")), key=_index)
        units = [i.payload["items"] if batched else i.payload["item"] for i in real]
        return _results(node, units, [i.output for i in real])

    kind = "batch" if batched else "for_each"
    item = net.work_item(node.id, handler=run, kind=kind, sets_last=False)
    builder = net.task(item).activities(on_enabled=start, on_work_item_state_changed=next_batch)
    return builder.output(reduce), False


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


def _each_flow(compiler: Compiler, node: n.EachNode, items_of: Any) -> net.TaskBuilder:
    """A child workflow of the per-item flow for each item (all at once) or chunk (the next
    one when the previous completes); the child's output is the item's result."""
    batched = node.size > 0
    try:
        child = node.inner.build()
    except InvalidWorkflowError as error:
        compiler.problems.extend(f"{node.id!r}: {p}" for p in error.problems)
        return net.task()

    def unit(payload: Any, rest: list[Any]) -> dict[str, Any]:
        stored = flow_payload(payload, kind="batch" if batched else "for_each")
        if rest:
            stored["rest"] = rest  # the chunks still to run, after this one
        return stored

    async def start(ctx: Any) -> None:
        units = await items_of(ctx)
        if not units:  # a child that ends at once: the task needs one to start and complete
            ctx.workflow.initialize({**unit(None, []), EMPTY: True})
        elif batched:
            ctx.workflow.initialize(unit(units[0], units[1:]))
        else:
            for value in units:
                ctx.workflow.initialize(unit(value, []))

    def next_batch(ctx: Any) -> None:
        changed = ctx.workflow
        if changed.next_state == WorkflowState.COMPLETED and changed.info is not None:
            rest = changed.info.payload.get("rest")
            if rest:
                ctx.workflow.initialize(unit(rest[0], rest[1:]))

    def reduce(children: list[Any]) -> Any:
        real = [c for c in children if not c.payload.get(EMPTY)]
        units = [unwrap_payload(c.payload)[0] for c in real]
        return _results(node, units, [c.output for c in real])

    builder = net.composite_task(child).activities(
        on_enabled=start, on_workflow_state_changed=next_batch
    )
    return builder.output(reduce)


# -- subflow --------------------------------------------------------------------------------


def subflow(compiler: Compiler, node: n.SubflowNode) -> net.TaskBuilder | None:
    """A composite task running the child flow (a ``Flow``, or a registered flow's id)."""
    from cronflow_actors.flow.builder import Flow

    child = node.flow
    if isinstance(child, str):
        found = compiler.resolve(child) if compiler.resolve is not None else None
        if found is None:
            problem = (
                f"subflow {node.id!r}: no flow {child!r} is registered on the runtime; "
                "register it first, or pass the Flow itself"
            )
            compiler.problems.append(problem)
            if compiler.resolve is None:
                compiler.flow.needs_runtime.add(problem)
            return None
        child = found
    if not isinstance(child, Flow):
        return None  # reported by the builder
    try:
        child_spec = child.build(resolve=compiler.resolve)
    except InvalidWorkflowError as error:
        compiler.problems.extend(f"subflow {node.id!r}: {p}" for p in error.problems)
        return None
    ids, make_input = compiler.step_ids, node.input

    async def start(ctx: Any) -> None:
        fctx = FlowContext.of(ctx, ids)
        if make_input is None:
            payload = fctx.last
        elif callable(make_input):
            payload = await maybe(make_input(fctx))
        else:
            payload = make_input
        ctx.workflow.initialize(flow_payload(payload, kind="subflow"))

    return net.composite_task(child_spec).activities(on_enabled=start)


# -- action ---------------------------------------------------------------------------------


def action_handler(node: n.ActionNode, step_ids: frozenset[str], flow_id: str) -> Any:
    """A detached action's function with its ``timeout`` and ``retry``: the flow has moved on,
    so its retries wait here, on the runtime's clock (after a crash a durable action is
    dispatched again, from its first attempt); ``on_error`` runs once attempts are used up."""
    if node.retry is None:
        return step_handler(node, step_ids, flow_id)
    retry, handler = node.retry, node.handler

    async def run(ectx: Any) -> Any:
        fctx = FlowContext.of(ectx, step_ids)
        attempt = 1
        while True:
            try:
                return await call_user(handler, (fctx,), ectx, node.timeout, node.id)
            except Exception as error:
                if attempt < retry.attempts and retry.should_retry(error):
                    await ectx.clock.sleep(retry.delay_before(attempt))
                    attempt += 1
                    continue
                if not node.on_error:
                    raise
                return await fall_back(node, fctx, error, ectx)

    return run
