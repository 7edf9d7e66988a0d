"""From a ``Flow`` to a ``NetSpec``: every Cronflow construct as tasks and work items.

- ``step``: a task with one automated work item whose handler wraps the user's with its options
  (``flow/handlers.py``); a ``delay`` is a durable sleep before it;
- ``action``: a detached work item (completed at once; the handler runs on its own);
- ``if_/elif_/else_/end_if``: an XOR-split dummy task whose router evaluates the conditions in
  order, the branches, and an XOR-join dummy task;
- ``while_``: an XOR loop through a dummy task whose router evaluates the condition;
- ``sleep`` / ``delay``: a work item completed by a durable timer; ``wait_for_event``: one
  completed by a matching event; ``human_in_the_loop`` / ``pause``: one completed by
  ``resume(token)`` or its timeout; ``log``: a work item that writes a log line;
- ``parallel``, ``race``, ``for_each``, ``batch`` and ``subflow``: see ``flow/fanout.py``;
- ``cancel``: a work item that cancels the run from a timer job.

An ``on_error`` after a node that is not run by one handler (a ``parallel``, a ``subflow``, ...)
makes its task catch its failure; the task's router then sends the flow to a fallback task
(``<id>:on_error``) whose output stands in for the node's.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from cronflow_actors.errors import InvalidWorkflowError, StepFailedError
from cronflow_actors.flow import fanout
from cronflow_actors.flow import nodes as n
from cronflow_actors.flow.context import FlowContext
from cronflow_actors.flow.handlers import call_user, describe, fall_back, maybe, step_handler
from cronflow_actors.flow.per_item import EMPTY
from cronflow_actors.messages import plain
from cronflow_actors.net import builder as net
from cronflow_actors.net import jobs
from cronflow_actors.net.durations import parse_duration
from cronflow_actors.net.spec import NetSpec, WaitSpec, caught

if TYPE_CHECKING:
    from cronflow_actors.flow.builder import Flow

__all__ = ["END", "LOG_LEVELS", "START", "compile_flow", "timeout_record"]

START, END = ":start", ":end"
"""The compiler's own condition names. Its names all hold ':' (``if:x``, ``end_while:x``), which
step ids may not, so a step named "start", "end" or "if" never meets one of them."""
RESERVED = (":", "#")
SKIP = ":skip"
"""A per-item flow's first task: it ends the flow at once for a payload marked ``EMPTY``."""
LOG_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}

flow_log = logging.getLogger("cronflow_actors.flow.log")
"""Where ``.log(...)`` steps write: one line per log step, with the run, flow and step."""


def timeout_record(seconds: float) -> dict[str, Any]:
    """A human step's output when its pause times out (the resume token is not kept: it is a
    secret, dead or not)."""
    return {
        "approved": False,
        "reason": f"timeout: no response within {seconds:g} s",
        "approved_by": "system",
        "status": "timeout",
        "timed_out": True,
        "payload": None,
    }


def auto_start(ctx: Any) -> None:
    ctx.work_item.start()


class Compiler:
    def __init__(
        self,
        flow: Flow,
        builder: net.WorkflowBuilder,
        step_ids: frozenset[str],
        problems: list[str],
        resolve: Any = None,
    ) -> None:
        self.flow = flow
        self.builder = builder
        self.step_ids = step_ids
        self.problems = problems
        self.resolve = resolve
        """``resolve(flow_id) -> Flow | None``: the runtime's registered flows (subflows by id)."""
        self.waits: dict[str, Any] = {}
        self.humans: dict[str, Any] = {}

    def link(self, previous: str | None, first: str) -> None:
        if previous is None:
            self.builder.connect_condition(START, first)
        else:
            self.builder.connect_task(previous, first)

    def sequence(self, nodes: list[n.Node], previous: str | None) -> tuple[str | None, str | None]:
        first = None
        for node in nodes:
            head, tail = self.node(node)
            self.link(previous, head)
            first = first or head
            previous = tail
        return first, previous

    def node(self, node: n.Node) -> tuple[str, str]:
        if isinstance(node, n.StepNode):
            return self.step(node)
        if isinstance(node, n.IfNode):
            return self.branches(node)
        if isinstance(node, n.WhileNode):
            return self.loop(node)
        if isinstance(node, n.ActionNode):
            item = net.work_item(
                node.id,
                handler=fanout.action_handler(node, self.step_ids, self.flow.id),
                kind="action",
                sets_last=False,
                detached=True,
                durable=node.durable,
            )
            self.builder.task(node.id, net.task(item))
            return node.id, node.id
        if isinstance(node, n.SleepNode):
            self.builder.task(node.id, net.task(self.sleeper(node.id, node)))
            return node.id, node.id
        if isinstance(node, n.LogNode):
            item = net.work_item(node.id, handler=self.logger(node), kind="log", sets_last=False)
            self.builder.task(node.id, net.task(item))
            return node.id, node.id
        if isinstance(node, n.HumanNode):
            return self.human(node)
        if isinstance(node, n.CancelNode):

            def cancel(ctx: Any) -> None:
                ctx.register_scheduled(0, jobs.cancel_workflow(ctx.parent.id.split(".", 1)[0]))

            item = net.work_item(node.id, kind="cancel", sets_last=False).activities(
                on_initialized=auto_start, on_started=cancel
            )
            self.builder.task(node.id, net.task(item))
            return node.id, node.id
        composite = False
        if isinstance(node, n.EventNode):
            task = self.event(node)
        elif isinstance(node, n.GroupNode):
            task = fanout.group(self, node)
        elif isinstance(node, n.EachNode):
            task, composite = fanout.each(self, node)
        elif isinstance(node, n.SubflowNode):
            found = fanout.subflow(self, node)
            if found is None:
                return node.id, node.id  # its problems are reported
            task, composite = found, True
        else:
            raise TypeError(f"cannot compile {node!r}")
        tail = self.add_catching(node, task)
        add = self.builder.composite_task if composite else self.builder.task
        add(node.id, task)
        return node.id, tail

    # -- steps and waits ----------------------------------------------------------------------

    def step(self, node: n.StepNode) -> tuple[str, str]:
        item = net.work_item(
            node.id, handler=step_handler(node, self.step_ids, self.flow.id), kind="step"
        )
        self.builder.task(node.id, net.task(item))
        if node.delay is None:
            return node.id, node.id
        wait = f"delay:{node.id}"
        self.builder.task(
            wait, net.task(self.sleeper(wait, n.SleepNode(id=wait, seconds=node.delay)))
        )
        self.builder.connect_task(wait, node.id)
        return wait, node.id

    def sleeper(self, name: str, node: n.SleepNode) -> net.WorkItemBuilder:
        """A work item completed by a durable timer of ``node.seconds`` or ``duration(ctx)``."""
        seconds, duration, ids = node.seconds, node.duration, self.step_ids

        async def wake(ctx: Any) -> None:
            wait = seconds
            if duration is not None:
                try:
                    given = await maybe(duration(FlowContext.of(ctx, ids)))
                    wait = parse_duration(given, f"{node.kind} {node.id!r} duration")
                except Exception as error:  # the step fails with it, as a handler's would
                    failed = jobs.fail_work_item(ctx.work_item.id, describe(error))
                    ctx.register_scheduled(0, failed)
                    return
            ctx.register_scheduled(wait or 0.0, jobs.complete_work_item(ctx.work_item.id))

        return net.work_item(name, kind=node.kind, sets_last=False).activities(
            on_initialized=auto_start, on_started=wake
        )

    def logger(self, node: n.LogNode) -> Any:
        ids, message, level = self.step_ids, node.message, LOG_LEVELS.get(node.level, 20)

        async def write(ectx: Any) -> None:
            fctx = FlowContext.of(ectx, ids)
            text = message
            if callable(message):
                text = await call_user(message, (fctx,), ectx, None, node.id)
            context = {"run_id": fctx.run.id, "workflow": fctx.run.workflow_id, "step": node.id}
            flow_log.log(level, "%s (run %s, step %s)", text, fctx.run.id, node.id, extra=context)

        return write

    def event(self, node: n.EventNode) -> net.TaskBuilder:
        timeout = node.timeout
        ids, user_filter, validate = self.step_ids, node.filter, node.validate

        def arm(ctx: Any) -> None:
            if timeout is not None:
                error = f"timed out after {timeout:g} s waiting for event {node.event!r}"
                ctx.register_scheduled(timeout, jobs.fail_work_item(ctx.work_item.id, error))

        def accept(ctx: Any, payload: Any) -> Any:
            return user_filter(payload, FlowContext.of(ctx, ids))

        async def check(ctx: Any, payload: Any) -> Any:
            verdict = await maybe(validate(payload, FlowContext.of(ctx, ids)))
            if verdict is True:
                return True
            return verdict if isinstance(verdict, str) and verdict else "refused by validate()"

        wait = WaitSpec(
            kind="event",
            event=node.event,
            accept=accept if user_filter is not None else None,
            check=check if validate is not None else None,
            timeout=timeout,
        )
        item = net.work_item(node.id, kind="event", wait=wait)
        item.activities(on_initialized=auto_start, on_started=arm)
        self.waits[node.id] = node
        return net.task(item)

    def human(self, node: n.HumanNode) -> tuple[str, str]:
        ids = self.step_ids

        async def details(ctx: Any) -> dict[str, Any]:
            fctx = FlowContext.of(ctx, ids)
            description, url = node.description, node.approval_url
            if callable(description):
                description = await maybe(description(fctx))
            if callable(url):
                url = await maybe(url(fctx, ctx.work_item.token))  # the pause's new token
            found = {"description": str(description or ""), "metadata": dict(node.metadata)}
            if url is not None:
                found["approval_url"] = str(url)
            return found

        def pause(ctx: Any) -> None:
            token = ctx.work_item.info.token
            if node.timeout is not None:
                record = timeout_record(node.timeout)
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
        item = net.work_item(node.id, kind=node.kind, wait=wait).activities(
            on_initialized=auto_start, on_started=pause, on_completed=finished
        )
        self.builder.task(node.id, net.task(item).activities(on_enabled=enabled))
        self.humans[node.id] = node
        return node.id, node.id

    # -- control flow -------------------------------------------------------------------------

    def branches(self, node: n.IfNode) -> tuple[str, str]:
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
                if condition is None or await maybe(condition(fctx)):
                    return ctx.route.to_task(target)
            return ctx.route.to_task(join)

        self.builder.dummy_task(split, net.dummy_task().split("xor").route(route))
        self.builder.dummy_task(join, net.dummy_task().join("xor"))
        return split, join

    def loop(self, node: n.WhileNode) -> tuple[str, str]:
        head, done = f"while:{node.id}", f"end_while:{node.id}"
        ids, limit, condition = self.step_ids, node.max_iterations, node.condition

        async def route(ctx: Any) -> Any:
            if ctx.task.generation > limit:
                raise RuntimeError(f"while_ {node.id!r} exceeded {limit} iterations")
            if await maybe(condition(FlowContext.of(ctx, ids))):
                return ctx.route.to_task(node.id)
            return ctx.route.to_task(done)

        self.builder.dummy_task(head, net.dummy_task().join("xor").split("xor").route(route))
        handler = step_handler(node, ids, self.flow.id)
        self.builder.task(node.id, net.task(net.work_item(node.id, handler=handler, kind="while")))
        self.builder.dummy_task(done, net.dummy_task())
        self.builder.connect_task(head, node.id, done)
        self.builder.connect_task(node.id, head)
        return head, done

    def add_catching(self, node: n.Node, task: net.TaskBuilder) -> str:
        """A node's task with its ``on_error`` fallbacks: the task catches its failure and
        routes to ``<id>:on_error`` (whose output stands in for the node's) or past it;
        returns the node's last task."""
        if not node.on_error:
            return node.id
        recover, done = f"{node.id}:on_error", f"{node.id}:done"
        ids = self.step_ids

        async def fallback(ectx: Any) -> Any:
            failure = caught(ectx.outputs.get(node.id))
            assert failure is not None  # routed here only after a caught failure
            error = StepFailedError(
                failure.error, type=failure.error_type, attributes=failure.error_data
            )
            return await fall_back(node, FlowContext.of(ectx, ids), error, ectx)

        def route(ctx: Any) -> Any:
            return ctx.route.to_task(recover if caught(ctx.output) is not None else done)

        task.catch().split("xor").route(route)
        item = net.work_item(recover, handler=fallback, kind="fallback", records_as=node.id)
        self.builder.task(recover, net.task(item))
        self.builder.dummy_task(done, net.dummy_task().join("xor"))
        self.builder.connect_task(node.id, recover, done)
        self.builder.connect_task(recover, done)
        return done


# -- checks ---------------------------------------------------------------------------------------


def _node_problems(node: n.Node) -> list[str]:
    """What is wrong with one node's own options (functions, retry, cache, breaker)."""
    found = []
    where = f"{type(node).__name__.removesuffix('Node').lower()} {node.id!r}"
    for field in ("handler", "condition", "items", "filter", "validate", "on_pause", "on_timeout"):
        value = getattr(node, field, None)
        if value is not None and not callable(value):
            found.append(f"{where}: {field} must be a function, got {value!r}")
    for field in ("message", "description", "approval_url", "duration"):
        value = getattr(node, field, None)
        if value is not None and not (callable(value) or isinstance(value, str)):
            found.append(f"{where}: {field} must be a string or a function, got {value!r}")
    for fallback in node.on_error:
        if not callable(fallback):
            found.append(f"{where}: on_error must be a function, got {fallback!r}")
    for handler in getattr(node, "handlers", ()):
        if not callable(handler):
            found.append(f"{where}: every function must be callable, got {handler!r}")
    for branch in getattr(node, "branches", ()):
        if branch.condition is not None and not callable(branch.condition):
            found.append(f"{where}: the condition of {branch.name!r} must be a function")
    for option in ("retry", "cache", "circuit_breaker"):
        value = getattr(node, option, None)
        if value is not None:
            found.extend(value.problems(where))
    if isinstance(node, n.LogNode) and node.level not in LOG_LEVELS:
        found.append(f"{where}: level must be one of {list(LOG_LEVELS)}, got {node.level!r}")
    return found


def compile_flow(
    flow: Flow, nodes: list[n.Node], problems: list[str], resolve: Any = None
) -> NetSpec | None:
    seen: set[str] = set()
    for node in n.walk(nodes):
        if node.id in seen:
            problems.append(f"step id {node.id!r} is used twice; step ids must be unique")
        # the ids of cancel and log nodes are the builder's
        named_by_user = not isinstance(node, n.CancelNode | n.LogNode)
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
    compiler = Compiler(flow, builder, frozenset(seen), problems, resolve)
    if not nodes:
        return None
    if flow.skip_when_empty:
        # a per-item flow started for an empty list (its task needs a child to run): it ends
        # at once, without running a step
        _first, last = compiler.sequence(nodes, SKIP)

        def route(ctx: Any) -> Any:
            empty = isinstance(ctx.payload, dict) and ctx.payload.get(EMPTY)
            return ctx.route.to_condition(END) if empty else ctx.route.to_task(_first)

        builder.dummy_task(SKIP, net.dummy_task().split("xor").route(route))
        builder.connect_condition(START, SKIP)
        builder.connect_task(SKIP, END)
    else:
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
