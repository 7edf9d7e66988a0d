"""From a ``Flow`` to a ``NetSpec``: every Cronflow construct as tasks and work items.

- ``step``: a task with one automated work item whose handler wraps the user's with timeout,
  retry (a failed attempt asks the engine for another one on a durable timer) and ``on_error``;
- ``action``: a detached work item (completed at once; the handler runs on its own);
- ``if_/elif_/else_/end_if``: an XOR-split dummy task whose router evaluates the conditions in
  order, the branches, and an XOR-join dummy task;
- ``parallel`` / ``race``: one task with a work item per function; the output reducer gives the
  results in input order (parallel) or the winner's (race, whose policy completes on the first
  completion and so cancels the rest);
- ``while_``: an XOR loop through a dummy task whose router evaluates the condition;
- ``for_each`` / ``batch``: one task with a work item per item (all at once) or per chunk (the
  next one initialized when the previous completes);
- ``sleep``: a work item completed by a durable timer; ``wait_for_event``: one completed by a
  matching event; ``human_in_the_loop``: one completed by ``resume(token)`` or its timeout;
- ``subflow``: a composite task running the child flow; ``cancel``: a work item that cancels
  the run from a timer job.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cronflow_actors.errors import InvalidWorkflowError, RetryRequested, StepTimeoutError
from cronflow_actors.flow.context import FlowContext, flow_payload
from cronflow_actors.messages import plain
from cronflow_actors.net import builder as net
from cronflow_actors.net import jobs
from cronflow_actors.net.spec import NetSpec, WaitSpec

if TYPE_CHECKING:
    from cronflow_actors.flow.builder import Flow, Node

__all__ = ["END", "START", "compile_flow", "timeout_record"]

START, END = ":start", ":end"
"""The compiler's own condition names. Its names all hold ':' (``if:x``, ``end_while:x``), which
step ids may not, so a step named "start", "end" or "if" never meets one of them."""
RESERVED = (":", "#")

logger = logging.getLogger(__name__)


async def _maybe(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def call_user(
    fn: Callable[..., Any], args: tuple[Any, ...], ectx: Any, limit: float | None, step: str
) -> Any:
    """``fn(*args)``: coroutine functions on the loop, plain ones on the thread pool."""
    if inspect.iscoroutinefunction(fn):
        awaitable: Any = fn(*args)
    elif ectx is not None and ectx.run_blocking is not None:
        awaitable = ectx.run_blocking(fn, *args)
    else:
        awaitable = _maybe(fn(*args))
    if limit is None:
        return await _maybe(await awaitable)
    try:
        result = await asyncio.wait_for(_await(awaitable), limit)
    except TimeoutError:
        raise StepTimeoutError(step, limit) from None
    return await _maybe(result)


async def _await(awaitable: Any) -> Any:
    return await awaitable


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _step_handler(node: Any, step_ids: frozenset[str]) -> Any:
    async def run(ectx: Any) -> Any:
        fctx = FlowContext.of(ectx, step_ids)
        args = (fctx,)
        handler = node.handler
        retry = getattr(node, "retry", None)
        try:
            return await call_user(handler, args, ectx, getattr(node, "timeout", None), node.id)
        except Exception as error:
            attempt = ectx.attempt or 1
            if retry is not None and attempt < retry.attempts and retry.should_retry(error):
                delay = retry.delay_before(attempt)
                if retry.on_retry is not None:
                    await _on_retry(node.id, retry.on_retry, fctx, error, attempt, delay)
                raise RetryRequested(delay, describe(error)) from error
            if not getattr(node, "on_error", ()):
                raise
            failure = error
        return await _fall_back(node, fctx, failure, ectx)

    return run


async def _on_retry(step: str, callback: Any, *args: Any) -> None:
    """The retry's ``on_retry(ctx, error, attempt, delay)``: a callback that raises is logged;
    the retry goes on."""
    try:
        await _maybe(callback(*args))
    except Exception:
        logger.exception("on_retry of step %r raised; retrying anyway", step)


async def _fall_back(node: Any, fctx: FlowContext, error: Exception, ectx: Any) -> Any:
    """The step's ``on_error`` fallbacks in order, each with the error of the one before; the
    first that returns gives the output, the last one's error fails the step."""
    *earlier, last = node.on_error
    for fallback in earlier:
        fctx.error = error
        try:
            return await call_user(fallback, (fctx,), ectx, None, node.id)
        except Exception as failed:
            error = failed
    fctx.error = error
    return await call_user(last, (fctx,), ectx, None, node.id)


def _index(item: Any) -> int:
    return int(item.payload["index"])


def _first_wins(ctx: Any) -> str:
    """A race's policy: the first completion completes the task, the first failure fails it."""
    if ctx.stats.completed:
        return "complete"
    return "fail" if ctx.stats.failed else "continue"


def _winner(items: list[Any]) -> Any:
    return next(i.output for i in items if i.state == "completed")


def timeout_record(token: str, seconds: float) -> dict[str, Any]:
    return {
        "approved": False,
        "reason": f"timeout: no response within {seconds:g} s",
        "approved_by": "system",
        "status": "timeout",
        "timed_out": True,
        "payload": None,
        "token": token,
    }


def _auto_start(ctx: Any) -> None:
    ctx.work_item.start()


class Compiler:
    def __init__(
        self,
        builder: net.WorkflowBuilder,
        step_ids: frozenset[str],
        problems: list[str],
    ) -> None:
        self.builder = builder
        self.step_ids = step_ids
        self.problems = problems
        self.waits: dict[str, Any] = {}
        self.humans: dict[str, Any] = {}

    def link(self, previous: str | None, first: str) -> None:
        if previous is None:
            self.builder.connect_condition(START, first)
        else:
            self.builder.connect_task(previous, first)

    def sequence(self, nodes: list[Node], previous: str | None) -> tuple[str | None, str | None]:
        first = None
        for node in nodes:
            head, tail = self.node(node)
            self.link(previous, head)
            first = first or head
            previous = tail
        return first, previous

    def node(self, node: Node) -> tuple[str, str]:
        from cronflow_actors.flow import builder as b

        ids = self.step_ids
        task = self.builder.task
        if isinstance(node, b.StepNode):
            item = net.work_item(node.id, handler=_step_handler(node, ids), kind="step")
            task(node.id, net.task(item))
            return node.id, node.id
        if isinstance(node, b.ActionNode):
            handler = _step_handler(node, ids)
            item = net.work_item(
                node.id,
                handler=handler,
                kind="action",
                sets_last=False,
                detached=True,
                durable=node.durable,
            )
            task(node.id, net.task(item))
            return node.id, node.id
        if isinstance(node, b.SleepNode):
            seconds = node.seconds

            def wake(ctx: Any) -> None:
                ctx.register_scheduled(seconds, jobs.complete_work_item(ctx.work_item.id))

            item = net.work_item(node.id, kind="sleep", sets_last=False).activities(
                on_initialized=_auto_start, on_started=wake
            )
            task(node.id, net.task(item))
            return node.id, node.id
        if isinstance(node, b.EventNode):
            return self.event(node)
        if isinstance(node, b.HumanNode):
            return self.human(node)
        if isinstance(node, b.CancelNode):

            def cancel(ctx: Any) -> None:
                ctx.register_scheduled(0, jobs.cancel_workflow(ctx.parent.id.split(".", 1)[0]))

            item = net.work_item(node.id, kind="cancel", sets_last=False).activities(
                on_initialized=_auto_start, on_started=cancel
            )
            task(node.id, net.task(item))
            return node.id, node.id
        if isinstance(node, b.IfNode):
            return self.branches(node)
        if isinstance(node, b.GroupNode):
            return self.group(node)
        if isinstance(node, b.WhileNode):
            return self.loop(node)
        if isinstance(node, b.EachNode):
            return self.each(node)
        if isinstance(node, b.SubflowNode):
            return self.subflow(node)
        raise TypeError(f"cannot compile {node!r}")

    def event(self, node: Any) -> tuple[str, str]:
        timeout = node.timeout
        ids, user_filter = self.step_ids, node.filter

        def arm(ctx: Any) -> None:
            if timeout is not None:
                error = f"timed out after {timeout:g} s waiting for event {node.event!r}"
                ctx.register_scheduled(timeout, jobs.fail_work_item(ctx.work_item.id, error))

        def accept(ctx: Any, payload: Any) -> Any:
            return user_filter(payload, FlowContext.of(ctx, ids))

        wait = WaitSpec(
            kind="event",
            event=node.event,
            accept=accept if user_filter is not None else None,
            timeout=timeout,
        )
        item = net.work_item(node.id, kind="event", wait=wait)
        item.activities(on_initialized=_auto_start, on_started=arm)
        self.builder.task(node.id, net.task(item))
        self.waits[node.id] = node
        return node.id, node.id

    def human(self, node: Any) -> tuple[str, str]:
        ids = self.step_ids

        def details(_ctx: Any) -> dict[str, Any]:
            return {"description": node.description, "metadata": dict(node.metadata)}

        def pause(ctx: Any) -> None:
            token = ctx.work_item.info.token
            if node.timeout is not None:
                record = timeout_record(token, node.timeout)
                job = jobs.complete_work_item(ctx.work_item.id, record)
                ctx.register_scheduled(node.timeout, job)
            if node.on_pause is not None:
                fctx = FlowContext.of(ctx, ids)
                ctx.after_commit(lambda: node.on_pause(fctx, token))

        def enabled(ctx: Any) -> None:
            # The pause keeps what came before it: on_timeout sees that as ctx.last.
            ctx.work_item.initialize({"paused_after": ctx.last})

        def finished(ctx: Any) -> None:
            output = ctx.work_item.info.output
            if node.on_timeout is not None and isinstance(output, dict) and output.get("timed_out"):
                fctx = FlowContext.of(ctx, ids)
                fctx.last = plain((ctx.work_item.payload or {}).get("paused_after"))
                ctx.after_commit(lambda: node.on_timeout(fctx))

        wait = WaitSpec(kind="pause", details=details, timeout=node.timeout)
        item = net.work_item(node.id, kind="human", wait=wait).activities(
            on_initialized=_auto_start, on_started=pause, on_completed=finished
        )
        self.builder.task(node.id, net.task(item).activities(on_enabled=enabled))
        self.humans[node.id] = node
        return node.id, node.id

    def branches(self, node: Any) -> tuple[str, str]:
        split, join = f"if:{node.id}", f"end_if:{node.id}"
        ids = self.step_ids
        targets: list[str] = []
        direct = False
        for branch in node.branches:
            first, last = self.sequence(branch.nodes, split)
            if first is None or last is None:
                targets.append(join)
                direct = True
            else:
                targets.append(first)
                self.builder.connect_task(last, join)
        has_else = any(branch.condition is None for branch in node.branches)
        if not has_else:
            direct = True
        if direct:
            self.builder.connect_task(split, join)
        conditions = [branch.condition for branch in node.branches]

        async def route(ctx: Any) -> Any:
            fctx = FlowContext.of(ctx, ids)
            for condition, target in zip(conditions, targets, strict=True):
                if condition is None or await _maybe(condition(fctx)):
                    return ctx.route.to_task(target)
            return ctx.route.to_task(join)

        self.builder.dummy_task(split, net.dummy_task().split("xor").route(route))
        self.builder.dummy_task(join, net.dummy_task().join("xor"))
        return split, join

    def group(self, node: Any) -> tuple[str, str]:
        count = len(node.handlers)
        if count == 0:
            what = "parallel" if node.mode == "all" else "race"
            self.problems.append(f"{what} {node.id!r} has no functions")
        ids = self.step_ids
        handlers = node.handlers

        async def run(ectx: Any) -> Any:
            index = ectx.work_item.payload["index"]
            fctx = FlowContext.of(ectx, ids)
            return await call_user(handlers[index], (fctx,), ectx, None, node.id)

        def start(ctx: Any) -> None:
            for index in range(count):
                ctx.work_item.initialize({"index": index})

        kind = "parallel" if node.mode == "all" else "race"
        item = net.work_item(node.id, handler=run, kind=kind, sets_last=False)
        builder = net.task(item).activities(on_enabled=start)
        if node.mode == "all":
            builder.output(lambda items: [i.output for i in sorted(items, key=_index)])
        else:
            builder.policy(_first_wins).output(_winner)
        self.builder.task(node.id, builder)
        return node.id, node.id

    def loop(self, node: Any) -> tuple[str, str]:
        head, done = f"while:{node.id}", f"end_while:{node.id}"
        ids, limit, condition = self.step_ids, node.max_iterations, node.condition

        async def route(ctx: Any) -> Any:
            if ctx.task.generation > limit:
                raise RuntimeError(f"while_ {node.id!r} exceeded {limit} iterations")
            if await _maybe(condition(FlowContext.of(ctx, ids))):
                return ctx.route.to_task(node.id)
            return ctx.route.to_task(done)

        self.builder.dummy_task(head, net.dummy_task().join("xor").split("xor").route(route))
        item = net.work_item(node.id, handler=_step_handler(node, ids), kind="while")
        self.builder.task(node.id, net.task(item))
        self.builder.dummy_task(done, net.dummy_task())
        self.builder.connect_task(head, node.id, done)
        self.builder.connect_task(node.id, head)
        return head, done

    def each(self, node: Any) -> tuple[str, str]:
        ids, size, items_fn = self.step_ids, node.size, node.items
        batched = size > 0

        async def start(ctx: Any) -> None:
            items = await _maybe(items_fn(FlowContext.of(ctx, ids)))
            if not isinstance(items, list | tuple):
                kind = type(items).__name__
                raise TypeError(f"{node.id!r}: items must return a list, got {kind}")
            items = list(items)
            if not items:
                ctx.work_item.initialize({"empty": True})
            elif batched:
                chunks = [items[i : i + size] for i in range(0, len(items), size)]
                ctx.work_item.initialize({"items": chunks[0], "index": 0, "rest": chunks[1:]})
            else:
                for index, value in enumerate(items):
                    ctx.work_item.initialize({"item": value, "index": index})

        def next_batch(ctx: Any) -> None:
            if not batched or ctx.work_item.next_state != "completed":
                return
            payload = ctx.work_item.info.payload
            if payload.get("rest"):
                rest = payload["rest"]
                following = {"items": rest[0], "index": payload["index"] + 1, "rest": rest[1:]}
                ctx.work_item.initialize(following)

        handler = node.handler

        async def run(ectx: Any) -> Any:
            payload = ectx.work_item.payload
            if payload.get("empty"):
                return None
            value = payload["items"] if batched else payload["item"]
            return await call_user(handler, (value, FlowContext.of(ectx, ids)), ectx, None, node.id)

        def reduce(items: list[Any]) -> Any:
            real = sorted((i for i in items if not i.payload.get("empty")), key=_index)
            if batched:
                batches = [
                    {
                        "batch_index": i.payload["index"],
                        "items": i.payload["items"],
                        "result": i.output,
                        "size": len(i.payload["items"]),
                    }
                    for i in real
                ]
                return {
                    "type": "batch",
                    "name": node.id,
                    "results": batches,
                    "total_batches": len(batches),
                    "total_items": sum(b["size"] for b in batches),
                }
            results = [
                {"item": i.payload["item"], "result": i.output, "index": i.payload["index"]}
                for i in real
            ]
            return {
                "type": "forEach",
                "name": node.id,
                "results": results,
                "total_items": len(results),
            }

        kind = "batch" if batched else "for_each"
        item = net.work_item(node.id, handler=run, kind=kind, sets_last=False)
        builder = net.task(item).activities(on_enabled=start, on_work_item_state_changed=next_batch)
        builder.output(reduce)
        self.builder.task(node.id, builder)
        return node.id, node.id

    def subflow(self, node: Any) -> tuple[str, str]:
        child = node.flow
        try:
            child_spec = child.build()
        except InvalidWorkflowError as error:
            self.problems.extend(f"subflow {node.id!r}: {p}" for p in error.problems)
            child_spec = None
        except AttributeError:
            return node.id, node.id
        ids, make_input = self.step_ids, node.input

        async def start(ctx: Any) -> None:
            fctx = FlowContext.of(ctx, ids)
            payload = fctx.last if make_input is None else await _maybe(make_input(fctx))
            ctx.workflow.initialize(flow_payload(payload, kind="subflow"))

        if child_spec is not None:
            composite = net.composite_task(child_spec).activities(on_enabled=start)
            self.builder.composite_task(node.id, composite)
        return node.id, node.id


def _node_problems(node: Node) -> list[str]:
    """What is wrong with one node's own options (functions, retry)."""
    found = []
    where = f"{type(node).__name__.removesuffix('Node').lower()} {node.id!r}"
    for field in ("handler", "condition", "items", "filter", "on_pause", "on_timeout"):
        value = getattr(node, field, None)
        if value is not None and not callable(value):
            found.append(f"{where}: {field} must be a function, got {value!r}")
    for fallback in getattr(node, "on_error", ()):
        if not callable(fallback):
            found.append(f"{where}: on_error must be a function, got {fallback!r}")
    for handler in getattr(node, "handlers", ()):
        if not callable(handler):
            found.append(f"{where}: every function must be callable, got {handler!r}")
    for branch in getattr(node, "branches", ()):
        if branch.condition is not None and not callable(branch.condition):
            found.append(f"{where}: the condition of {branch.name!r} must be a function")
    retry = getattr(node, "retry", None)
    if retry is not None:
        found.extend(retry.problems(where))
    return found


def compile_flow(flow: Flow, nodes: list[Node], problems: list[str]) -> NetSpec | None:
    from cronflow_actors.flow import builder as b
    from cronflow_actors.flow.builder import walk

    seen: set[str] = set()
    for node in walk(nodes):
        if node.id in seen:
            problems.append(f"step id {node.id!r} is used twice; step ids must be unique")
        named_by_user = not isinstance(node, b.CancelNode)  # a cancel's id is the builder's
        if named_by_user and isinstance(node.id, str) and any(m in node.id for m in RESERVED):
            problems.append(
                f"step id {node.id!r} holds ':' or '#', which are kept for the engine's own "
                "names; use letters, digits, '-', '_' or '.'"
            )
        seen.add(node.id)
        problems.extend(_node_problems(node))
    builder = (
        net.workflow(flow.id, version=flow.version)
        .start_condition(START)
        .end_condition(END)
        .output("last")  # a run's output: the last step's that ran (ctx.last), whatever ends it
    )
    compiler = Compiler(builder, frozenset(seen), problems)
    if not nodes:
        return None
    _first, last = compiler.sequence(nodes, None)
    if last is not None:
        builder.connect_task(last, END)
    timeout, on_start = flow.timeout, flow.hooks.on_start
    if timeout is not None or on_start is not None:

        def initialized(ctx: Any) -> None:
            if timeout is not None:
                error = f"run timed out after {timeout:g} s"
                ctx.register_scheduled(timeout, jobs.fail_workflow(ctx.workflow.id, error))
            if on_start is not None and ctx.workflow.parent_id is None:  # runs, not subflows
                fctx = FlowContext.of_run(ctx)
                ctx.after_commit(lambda: call_user(on_start, (fctx,), None, None, "on_start"))

        builder.activities(on_initialized=initialized)
    if problems:
        return None
    try:
        spec = builder.build()
    except InvalidWorkflowError as error:
        problems.extend(error.problems)
        return None
    flow.waits = compiler.waits
    flow.humans = compiler.humans
    return spec
