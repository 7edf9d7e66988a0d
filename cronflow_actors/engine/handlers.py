"""Handler actors: where user code runs, one attempt each, away from the instance's turn.

A ``HandlerActor`` is spawned by a ``WorkflowActor`` (as its child) once the start of a work item
is durable. It calls the handler with its ``Context`` through ``calls.call_user``: ``async def``
handlers on the loop, plain ``def`` ones on the blocking pool (pykka ThreadingActors), so a
blocking handler never stalls the loop. Then it tells its parent how it went, in one message,
and stops. If the instance stopped meanwhile, the report is dropped: recovery runs the handler
again.

There are two kinds, which differ only in what they report (and are named apart in the
metrics): ``WorkItemActor`` runs an attempt of an automated work item and reports
``WorkItemFinished`` (the output, or the error with what survives a restart, or a retry);
``ActionActor`` runs a detached action, whose flow has already moved on, and reports
``ActionFinished`` (when it began and ended, and the error if any; never an output).

A failed attempt is logged here, through this module's logger, with the run, step, work item and
attempt it belongs to: at ERROR with the exception's traceback when the item fails (no retry
remains), at WARNING when another attempt follows (the retry a step's policy asks for, whose
cause is the error) or an ``on_error`` answers it, at INFO for a bare ``RetryRequested`` (asked
for, not a failure), at WARNING with its traceback for a detached action (its run goes on: this
is its end). A failure that is not the end of its step is one line: its traceback is added when
this logger is enabled for DEBUG (a retried step's tracebacks filled a log with what it
handles). The report keeps the exception for the hooks; the log gets it now, because nothing
else shows where in user code it was raised.

``handler_context`` builds what a handler gets. ``HandlerTracing`` is how a runtime runs user code
inside a trace span of its own (its OpenTelemetry export does): the WorkflowActor asks it for a
scope when it spawns a handler, and the handler is called inside that scope; without one (the
default) nothing is added to the call.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from traceback import format_exception
from typing import Any, Protocol

import msgspec
import pykka
from mypy_extensions import mypyc_attr

from cronflow_actors.calls import call_user
from cronflow_actors.engine.context import Context
from cronflow_actors.engine.state_access import StateAccess
from cronflow_actors.engine.transaction import Transaction, normalize
from cronflow_actors.errors import (
    INFRASTRUCTURE,
    CancelRunRequested,
    RetryRequested,
    class_name,
    described,
    one_line,
)
from cronflow_actors.kernel import Clock
from cronflow_actors.kernel._actor import (  # (not the package's: mypyc, setup.py)
    ActorHost,
    LoopActor,
)
from cronflow_actors.kernel._eager import EagerTask
from cronflow_actors.messages import (
    Message,
    plain_copy,
    storable_attributes,
    without_secrets,
)
from cronflow_actors.messages.engine import (
    ActionFinished,
    WorkflowRecord,
    WorkItemFinished,
    WorkItemRecord,
)

__all__ = [
    "ActionActor",
    "HandlerActor",
    "HandlerTracing",
    "WorkItemActor",
    "handler_context",
    "in_user_code",
    "journal_outcome",
    "start_handler",
    "storable_attributes",
]

logger = logging.getLogger(__name__)


def journal_outcome(finished: WorkItemFinished) -> str:
    """What the journal calls a handler's outcome."""
    if finished.ok:
        return "completed"
    if finished.cancel_run is not None:
        return "canceled"  # the run, by its handler (ctx.cancel)
    return "retry" if finished.retry_after is not None else "failed"


in_user_code: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "cronflow_in_user_code", default=False
)
"""True in the context a step's or an action's handler runs in: a run started there is never
held back by ``Runtime(max_active_runs=...)`` (``runtime/admission.py``), so a run that starts
another and waits for it cannot wait on a place it holds itself."""


class HandlerTracing(Protocol):
    """Runs handlers inside trace spans (the runtime's OpenTelemetry export is one)."""

    def scope(
        self, instance_id: str, item: WorkItemRecord, attempt: int, what: str
    ) -> AbstractContextManager[object]:
        """The scope to call the handler of ``item`` (its ``attempt``, in the root instance
        ``instance_id``; ``what``: ``"work item"`` or ``"action"``) in. Made on the instance's
        turn when the handler is spawned; entered and exited in the handler's own task, around
        the call, and exited with the exception the handler raised, if it did."""
        ...


def handler_context(
    workflow: WorkflowRecord,
    item: WorkItemRecord,
    *,
    state_access: StateAccess,
    system: ActorHost,
    clock: Clock,
    secrets: Mapping[str, Any],
    answered: bool = False,
    key: str | None = None,
) -> Context:
    """What the handler of ``item`` (in ``workflow``) gets. The handler runs while later
    transactions change the instance, so it gets copies. ``answered``: the item's task catches
    its failure (an ``on_error`` answers it); ``key``: its idempotency key when it is not the
    item's id (a resumed run's step that failed in the run it goes on from keeps that one's)."""
    info = Transaction.work_item_info(item)
    payload = plain_copy(info.payload)  # (stored: plain already)
    if payload is not info.payload:  # (None, a number, a string: itself, nothing to replace)
        info = msgspec.structs.replace(info, payload=payload)
    # made, then initialized by a call of __init__: keywords to a class are a dict, built and
    # unpacked again (CPython 3.11, ~3,000 instructions); to a function they are not
    ctx = Context.__new__(Context)
    Context.__init__(
        ctx,
        where=f"handler of work item {item.name!r}",
        task=Transaction.task_info(workflow, item.task),
        work_item=info,
        parent=Transaction.workflow_info(workflow),
        payload=workflow.payload,
        outputs=dict(workflow.outputs),  # as they are now; values are copied when read
        last=workflow.last,
        attempt=item.attempt,
        idempotency_key=key or item.id,
        redispatches=item.redispatches,
    )
    ctx.state = state_access
    ctx.run_blocking = system.run_blocking
    ctx.admitted = system.wait_admitted
    ctx.clock = clock
    ctx.caught = list(workflow.caught) if workflow.caught is not None else None  # (as now)
    ctx.failure_answered = answered
    if secrets:
        ctx.secrets = secrets.get(workflow.name)
    return ctx


@mypyc_attr(native_class=False)  # its base is not compiled (setup.py)
class HandlerActor(LoopActor):
    """Runs ``handler(ctx)`` once, tells its parent the report its kind makes of the outcome
    (``succeeded`` or ``failed``), and stops."""

    what = "handler"
    """What it runs, for the name of its task."""

    start_at_once = True  # on_start only creates the task that runs the handler

    def __init__(
        self,
        handler: Callable[..., Any],
        ctx: Context,
        item_id: str,
        attempt: int = 0,
        scope: AbstractContextManager[object] | None = None,
        *,
        run_id: str = "",
    ) -> None:
        super().__init__()
        self._attempt_of(handler, ctx, item_id, attempt, scope, run_id)

    def _attempt_of(  # noqa: PLR0917 - __init__'s own arguments, passed on
        self,
        handler: Callable[..., Any],
        ctx: Context,
        item_id: str,
        attempt: int,
        scope: AbstractContextManager[object] | None,
        run_id: str,
    ) -> None:
        """What it runs (``__init__``'s arguments), apart from what makes it an actor."""
        self.handler = handler
        self.ctx = ctx
        self.item_id = item_id
        self.attempt = attempt
        self.scope = scope
        """Where the handler is called (a ``HandlerTracing`` scope), or None. What it runs on
        the thread pool sees the scope's context variables: the pool runs each call in a copy
        of its caller's."""
        self.run_id = run_id
        """The root instance (the run) the item belongs to, for the log of a failure."""
        self._task: asyncio.Task[None] | None = None
        """The task that runs the handler, until it stops the actor."""

    def on_start(self) -> None:
        if self._task is None:
            self._task = self.create_task(self._run(), name=f"{self.what} {self.item_id}")
        else:  # its attempt began before it was spawned (``start_handler``): its task is ours
            self.adopt_task(self._task)

    def on_stop(self) -> None:
        self._task = None  # every stop lets go of it (a cancelled task keeps a frame of ours)

    async def _run(self) -> None:
        self._reported(await self.run_attempt())

    async def run_attempt(self) -> Message:
        """Call the handler once; the report of how it went (``succeeded`` or ``failed``)."""
        in_user_code.set(True)  # a run it starts is never held back (runtime/admission.py)
        system = self.system
        if system.admitted() is not True:  # (the blocking pool asks too, for a plain function)
            await system.wait_admitted()
        began_at = system.clock.now()
        report: Message
        try:
            if self.scope is None:
                output = await call_user(self.handler, self.ctx, run_blocking=system.run_blocking)
            else:
                with self.scope:
                    output = await call_user(
                        self.handler, self.ctx, run_blocking=system.run_blocking
                    )
            report = self.succeeded(output, began_at)
        except Exception as error:
            report = self.failed(error, began_at)
        return report

    def _reported(self, report: Message) -> None:
        """Tell the parent ``report``, and stop."""
        parent = self._parent
        if parent is not None:
            # If the instance stopped meanwhile, recovery runs the handler again. (A try, not
            # contextlib.suppress: three calls less on every step.)
            try:  # noqa: SIM105
                parent.tell(report)
            except pykka.ActorDeadError:
                pass
        # At once, from its own task (no stop message through its inbox): it has nothing left
        # to do (its parent, the instance's actor, learns all it needs from the report). The
        # task given, not looked up; and let go of (no actor <-> task cycle left behind).
        task, self._task = self._task, None
        self.stop_now(task)

    def succeeded(self, output: Any, began_at: float) -> Message:
        """The report of a handler that returned ``output``."""
        raise NotImplementedError

    def failed(self, error: Exception, began_at: float) -> Message:
        """The report of a handler that raised ``error``."""
        raise NotImplementedError

    def log_failure(
        self,
        level: int,
        outcome: str,
        error: BaseException | str,
        *,
        traceback: bool | None = None,
    ) -> None:
        """One record of a failed attempt, naming the run, the step, the work item and the
        attempt (also as ``run_id``, ``workflow`` and ``step`` fields, which the JSON log
        format shows), with ``error``'s traceback when ``traceback`` is True, never when it is
        False, and when None at ERROR, or below it if the logger is enabled for DEBUG. The
        record holds the exception only while it is handled (and kept by handlers that keep
        records, as a test's capture does), so no frame lives on in this actor. ``error`` as
        text: one described already (``Type: message``), with no traceback to give."""
        item = self.ctx.work_item
        step = getattr(item, "task", None) or getattr(item, "name", "?")
        parent = self.ctx.parent
        if isinstance(error, BaseException):
            said, trace = described(error), error
        else:
            said, trace = error, None
        secrets = self.ctx.secrets
        said = one_line(without_secrets(said, secrets))
        if trace is not None and not _with_traceback(level, traceback):
            trace = None
        if trace is not None and secrets:  # the traceback quotes the message: masked too
            written = "".join(format_exception(trace)).rstrip()
            said, trace = f"{said}\n{without_secrets(written, secrets)}", None
        logger.log(
            level,
            "run %s: %s %r (work item %s, attempt %d) %s: %s",
            self.run_id or "?",
            "action" if self.what == "action" else "step",
            step,
            self.item_id,
            self.ctx.attempt or self.attempt,  # an action's own retries count there
            outcome,
            said,
            exc_info=trace,
            extra={
                "run_id": self.run_id or None,
                "workflow": parent.name if parent is not None else None,
                "step": step,
            },
        )


@mypyc_attr(native_class=False)  # its base is not compiled (setup.py)
class WorkItemActor(HandlerActor):
    """Runs one attempt of a work item's handler and reports ``WorkItemFinished``."""

    what = "work item"

    def succeeded(self, output: Any, began_at: float) -> WorkItemFinished:
        answered = self.ctx.answered_error
        if answered is not None and not self.ctx.answered_told:  # its handler's error,
            # answered within it (hostile h34 L2: a step's on_error answered, nothing logged)
            self.log_failure(logging.WARNING, "failed; its on_error answers it", answered)
        try:
            stored = normalize(output)
        except TypeError as refused:
            coroutine = _coroutine_in(output)
            if coroutine is None:  # (msgspec's words alone said not what to: h42 F10)
                raise TypeError(
                    f"{refused}: a handler's output is recorded as plain data (dicts, lists, "
                    "strings, numbers, booleans, None, bytes, dates, a dataclass or a "
                    "msgspec.Struct): return one, as dataclasses.asdict(...) or a dict of its "
                    "fields"
                ) from None
            coroutine.close()  # (never awaited: no warning of its own on top)
            raise TypeError(
                f"the handler's output holds a coroutine ({coroutine.__qualname__}) that "
                "nothing awaited: await it (in an async def step, ctx.state's calls are awaited)"
            ) from None
        return WorkItemFinished(
            work_item_id=self.item_id,
            attempt=self.attempt,
            ok=True,
            output=stored,
            error=without_secrets(answered, self.ctx.secrets),
            error_type=self.ctx.answered_type,
            began_at=began_at,
        )

    def failed(self, error: Exception, began_at: float) -> WorkItemFinished:
        if isinstance(error, CancelRunRequested):  # no failure: the step ends its run
            self.log_failure(logging.INFO, "canceled its run", error, traceback=False)
            return WorkItemFinished(
                work_item_id=self.item_id,
                attempt=self.attempt,
                ok=False,
                cancel_run=error.reason,
                began_at=began_at,
            )
        if isinstance(error, RetryRequested):
            cause = error.__cause__
            delay = f"another attempt follows in {error.delay:g} s"
            if isinstance(cause, Exception):  # a step's retry policy, after this error
                self.log_failure(logging.WARNING, f"failed; {delay}", cause)
            else:  # asked for by the handler itself: not a failure to explain
                asked = f"asked for a retry; {delay}"
                self.log_failure(logging.INFO, asked, error, traceback=False)
            return WorkItemFinished(
                work_item_id=self.item_id,
                attempt=self.attempt,
                ok=False,
                error=without_secrets(error.error, self.ctx.secrets),
                retry_after=error.delay,
                began_at=began_at,
            )
        if isinstance(error, INFRASTRUCTURE):  # the runtime's own trouble, met in its call
            # (ctx.state on a full disk): no failure of the step's, and none recorded, the
            # report failing as the call did (crash h41 F2: "failed, and no retry remains")
            cut = "was cut by the runtime's own failure; the next start runs it again"
            self.log_failure(logging.WARNING, cut, error, traceback=False)
        elif self.ctx.failure_answered:  # not the run's failure: an on_error answers it
            self.log_failure(logging.WARNING, "failed; its on_error answers it", error)
        else:
            self.log_failure(logging.ERROR, "failed, and no retry remains", error)
        said = described(error)
        answered = self.ctx.answered_error  # an on_error that raised: what it answered
        secrets = self.ctx.secrets  # (none of them stored, as the README says: hostile h39 F3)
        said = f"its on_error raised {said}, answering {answered}" if answered else said
        return WorkItemFinished(
            work_item_id=self.item_id,
            attempt=self.attempt,
            ok=False,
            error=without_secrets(said, secrets),
            error_type=class_name(error),
            error_data=without_secrets(storable_attributes(error), secrets),
            exception=error,
            began_at=began_at,
        )


def start_handler(  # noqa: PLR0917 - a HandlerActor's arguments, passed on
    host: ActorHost,
    parent: pykka.ActorRef[Any],
    kind: type[HandlerActor],
    handler: Callable[..., Any],
    ctx: Context,
    item_id: str,
    attempt: int = 0,
    scope: AbstractContextManager[object] | None = None,
    *,
    run_id: str = "",
) -> pykka.ActorRef[Any] | None:
    """Begin the attempt a ``kind`` of ``HandlerActor`` made of the same arguments would run,
    at once, in a task of its own (``EagerTask``: the task the handler sees as current, whose
    context it runs in). A handler that returns without ever waiting (a step that computes)
    has its report told to ``parent`` now, and never becomes an actor: None (no actor made,
    spawned or stopped, and no round of the loop for its task or its report). One that waits
    goes on in that task, which the actor, made and spawned now as ``parent``'s child, takes
    over: its ref. ``host`` must be running (it spawns)."""
    # the object without what makes it an actor (a URN, an inbox and its cycle, a ref), until
    # it waits: most attempts never do
    actor = kind.__new__(kind)
    actor.system = host
    actor._attempt_of(handler, ctx, item_id, attempt, scope, run_id)
    run = EagerTask(host.work, actor.run_attempt(), f"{kind.what} {item_id}")
    if run.done:
        parent.tell(run.result)
        return None
    LoopActor.__init__(actor)
    actor._task = run.task
    run.then = actor._reported
    try:
        return host.spawn_made(actor, parent=parent)
    except BaseException:
        run.task.cancel()
        raise


def _with_traceback(level: int, asked: bool | None) -> bool:
    if asked is not None:
        return asked
    return level >= logging.ERROR or logger.isEnabledFor(logging.DEBUG)


@mypyc_attr(native_class=False)  # its base is not compiled (setup.py)
class ActionActor(HandlerActor):
    """Runs a detached action's handler and reports ``ActionFinished``; the WorkflowActor records
    it in the action's record: never as output, and never failing the run."""

    what = "action"

    def succeeded(self, output: Any, began_at: float) -> ActionFinished:
        answered = self.ctx.answered_error  # what an on_error answered, if one did
        if answered is not None:
            self.log_failure(logging.WARNING, "failed; its on_error answers it", answered)
        return ActionFinished(
            work_item_id=self.item_id,
            ok=True,
            error=answered,
            error_type=self.ctx.answered_type,
            attempt=self.attempt,
            started_at=began_at,
            finished_at=self.system.clock.now(),
            tried=self.ctx.attempt,
        )

    def failed(self, error: Exception, began_at: float) -> ActionFinished:
        # its run goes on (an action's failure is recorded, never the run's): a warning
        # the action's end: its traceback is the only place its failure is explained
        self.log_failure(logging.WARNING, "failed (the run goes on)", error, traceback=True)
        return ActionFinished(
            work_item_id=self.item_id,
            ok=False,
            error=without_secrets(described(error), self.ctx.secrets),  # (retest h39 R3)
            error_type=class_name(error),
            attempt=self.attempt,
            started_at=began_at,
            finished_at=self.system.clock.now(),
            tried=self.ctx.attempt,
        )


def _coroutine_in(value: Any, depth: int = 4) -> Any:
    """A coroutine ``value`` is, or holds in its lists and dicts (``depth`` levels down); None
    if none: what makes a handler's output unstorable when it forgot an ``await``."""
    if inspect.iscoroutine(value):
        return value
    if depth and isinstance(value, dict | list | tuple):
        for item in value.values() if isinstance(value, dict) else value:
            found = _coroutine_in(item, depth - 1)
            if found is not None:
                return found
    return None
