"""The constructs that wait, as work items: ``sleep`` and ``delay`` (completed by a durable
timer), ``wait_for_event`` (completed by a matching event, or failed by its timeout) and
``human_in_the_loop`` / ``pause`` (completed by ``resume(token)`` or as timed out)."""

from __future__ import annotations

import functools
from typing import Any

from cronflow_actors.calls import settle
from cronflow_actors.errors import StepTimeoutError
from cronflow_actors.flow import nodes as n
from cronflow_actors.flow.context import FlowContext
from cronflow_actors.flow.handlers import describe
from cronflow_actors.messages import plain_copy
from cronflow_actors.net import builder as net
from cronflow_actors.net import jobs
from cronflow_actors.net.durations import parse_duration
from cronflow_actors.net.spec import WaitSpec

__all__ = ["auto_start", "cancel_item", "event_task", "human_task", "sleeper", "timeout_record"]


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


def sleeper(name: str, node: n.SleepNode, step_ids: frozenset[str]) -> net.WorkItemBuilder:
    """A work item completed by a durable timer of ``node.seconds`` or ``duration(ctx)``."""
    seconds, duration = node.seconds, node.duration

    async def wake(ctx: Any) -> None:
        wait = seconds
        if duration is not None:
            try:
                given = await settle(duration(FlowContext.of(ctx, step_ids)))
                wait = parse_duration(given, f"{node.kind} {node.id!r} duration")
            except Exception as error:  # the step fails with it, as a handler's would
                failed = jobs.fail_work_item(ctx.work_item.id, describe(error))
                ctx.register_scheduled(0, failed)
                return
        ctx.register_scheduled(wait or 0.0, jobs.complete_work_item(ctx.work_item.id))

    return net.work_item(name, kind=node.kind, sets_last=False).activities(
        on_initialized=auto_start, on_started=wake
    )


def event_task(node: n.EventNode, step_ids: frozenset[str], problems: list[str]) -> net.TaskBuilder:
    """A work item completed by the first ``publish_event(node.event)`` its filter accepts."""
    timeout, user_filter, validate, retry = node.timeout, node.filter, node.validate, node.retry
    timed_out = StepTimeoutError(node.id, timeout or 0.0)
    try:  # (asked here, once: whether a timed-out wait waits again)
        retried = retry is not None and retry.should_retry(timed_out)
    except Exception as error:  # (a bare TypeError out of validate(): review h40 F6)
        problems.append(
            f"wait_for_event {node.id!r}: its retry_on raised {describe(error)}, asked whether "
            "a wait that timed out waits again; give fn(error) -> bool"
        )
        retried = False

    def arm(ctx: Any) -> None:
        if timeout is None:
            return
        item = ctx.work_item
        if retried and retry is not None and item.info.attempt < retry.attempts:
            ctx.register_scheduled(timeout, jobs.reset_work_item(item.id))  # then waits again
            return
        # (its deadline's class named, as a step's timeout's: conform h35 F2)
        said = f"timed out after {timeout:g} s waiting for event {node.event!r}"
        error = f"{StepTimeoutError.__name__}: {said}"
        ctx.register_scheduled(timeout, jobs.fail_work_item(item.id, error, timed_out=True))

    def again(ctx: Any) -> None:  # its task hears it was reset by its timeout: after the
        # retry's delay, it waits again (a job of the task's: the reset drops the item's own)
        item = ctx.work_item
        if not (item.prev_state == "started" and item.next_state == "initialized"):
            return
        assert retry is not None
        assert item.info is not None
        attempt = item.info.attempt
        delay = retry.delay_before(attempt)
        ctx.register_scheduled(delay, jobs.start_work_item(item.id))
        if retry.on_retry is not None:
            fctx = FlowContext.of(ctx, step_ids)
            ctx.after_commit(functools.partial(retry.on_retry, fctx, timed_out, attempt, delay))

    def accept(ctx: Any, payload: Any) -> Any:
        return user_filter(payload, FlowContext.of(ctx, step_ids))

    async def check(ctx: Any, payload: Any) -> Any:
        verdict = await settle(validate(payload, FlowContext.of(ctx, step_ids)))
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
    task = net.task(item)
    return task.activities(on_work_item_state_changed=again) if retried else task


async def _named(step: str, called: str, fn: Any, *args: Any) -> Any:
    """``fn(*args)``, a pause's callback; its error, its own class kept (review h39 F5), has a
    note naming it and how it is called, which the step's record shows: a ``TypeError`` of an
    ``approval_url`` written ``fn(ctx)`` named neither (conform h39 F6)."""
    try:
        return await settle(fn(*args))
    except Exception as error:
        error.add_note(f"raised by the {called} of pause {step!r}")
        raise


def human_task(node: n.HumanNode, step_ids: frozenset[str]) -> net.TaskBuilder:
    """A manual work item completed by ``resume(token, payload)``, or as timed out."""

    async def details(ctx: Any) -> dict[str, Any]:
        fctx = FlowContext.of(ctx, step_ids)
        description, url = node.description, node.approval_url
        if callable(description):
            description = await _named(node.id, "description(ctx)", description, fctx)
        if callable(url):  # the pause's new token
            url = await _named(node.id, "approval_url(ctx, token)", url, fctx, ctx.work_item.token)
        found = {"description": str(description or ""), "metadata": dict(node.metadata)}
        if url is not None:
            found["approval_url"] = str(url)
        return found

    def pause(ctx: Any) -> None:
        if node.timeout is not None:
            record = timeout_record(node.timeout)
            job = jobs.complete_work_item(ctx.work_item.id, record, timed_out=True)
            ctx.register_scheduled(node.timeout, job)

    def enabled(ctx: Any) -> None:
        # The pause keeps what came before it: on_timeout sees that as ctx.last.
        ctx.work_item.initialize({"paused_after": ctx.last})

    def finished(ctx: Any) -> None:
        output = ctx.work_item.info.output
        if node.on_timeout is not None and isinstance(output, dict) and output.get("timed_out"):
            fctx = FlowContext.of(ctx, step_ids)
            fctx.last = plain_copy((ctx.work_item.payload or {}).get("paused_after"))
            ctx.after_commit(functools.partial(node.on_timeout, fctx))

    def notify(ctx: Any) -> Any:  # at least once (engine/notices.py), with the pause's token
        return node.on_pause(FlowContext.of(ctx, step_ids), ctx.work_item.token)

    on_pause = notify if node.on_pause is not None else None
    wait = WaitSpec(kind="pause", details=details, timeout=node.timeout, notify=on_pause)
    item = net.work_item(node.id, kind=node.kind, wait=wait).activities(
        on_initialized=auto_start, on_started=pause, on_completed=finished
    )
    return net.task(item).activities(on_enabled=enabled)


def cancel_item(node: n.CancelNode) -> net.WorkItemBuilder:
    """A work item that cancels the run from a timer job."""

    def cancel(ctx: Any) -> None:
        root = ctx.parent.id.split(".", 1)[0]
        ctx.register_scheduled(0, jobs.cancel_workflow(root, node.reason))

    return net.work_item(node.id, kind="cancel", sets_last=False).activities(
        on_initialized=auto_start, on_started=cancel
    )
