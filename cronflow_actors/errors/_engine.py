"""What the workflow engine refused or could not do, actions included. Nothing was changed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cronflow_actors.errors._base import CronflowError, clipped, did_you_mean


class EngineError(CronflowError):
    """Something the workflow engine refused or could not do. Nothing was changed."""


class RuntimeNotRunningError(EngineError, RuntimeError):
    """A ``Runtime`` was used before ``start()`` (or ``async with``), while it stops or drains,
    after ``stop()``, or after it failed; the message's advice is the one for its state."""

    def __init__(self, operation: str, state: str) -> None:
        self.operation, self.state = operation, state
        advice = _NOT_RUNNING_ADVICE.get(state)
        said = f"cannot {operation}: the runtime is {state}"
        super().__init__(f"{said}; {advice}" if advice else said)


class StartGivenUpError(RuntimeNotRunningError):
    """A stop (``serve``'s SIGTERM: its drain) was asked while the start waited for the
    database: another runtime's lease (``wait_for_lease``), or a database that did not answer
    (a frozen disk: it named another runtime, retest2 h45 N1). Given up, nothing taken."""

    def __init__(self) -> None:
        super().__init__("start", "stopped")
        self.args = (
            "the start was given up: a stop was asked while it waited for the database (another "
            "runtime's lease, or a database that did not answer: the log says which); nothing "
            "of it was taken, nothing run",
        )


_NOT_RUNNING_ADVICE = {
    "new": "start it first: 'async with Runtime(...) as rt' or 'await rt.start()'",
    "running": "it is started already: call start() (or enter 'async with') once",
    "stopping": (
        "it is shutting down and took nothing on: send the call to a running runtime (a "
        "start with the same instance_id is safe to repeat)"
    ),
    "stopped": "a runtime runs once: create a new Runtime(...) and start it",
    "failed": (
        "it lost its store or its database lease (its log says which) and takes nothing on: "
        "start a new one"
    ),
}
"""What to do about a ``RuntimeNotRunningError``, by the runtime's state (a state described in
words, as a cluster's call to another process makes it, carries its own advice)."""


class UnknownWorkflowError(EngineError, LookupError):
    """No registered workflow has that name (or that version)."""

    def __init__(self, name: str, version: str | None, known: list[str]) -> None:
        self.name, self.version, self.known = name, version, known
        what = f"workflow {clipped(name)}" + (f" version {clipped(version)}" if version else "")
        hint = did_you_mean(name, (k.split(" ")[0] for k in known))  # (not of itself: h38 F6)
        super().__init__(  # (a CLI user's too: no rt to call, newcomer h38 F7)
            f"{what} is not registered{hint}; registered: {known}; register it with the "
            "runtime (Runtime(workflows=[...]), rt.register(), or the app serve was given)"
        )


class WorkflowDeprecatedError(EngineError):
    """The workflow version is deprecated: running instances go on, new ones are refused."""

    def __init__(self, name: str, version: str, active: list[str]) -> None:
        self.name, self.version = name, version
        if active:
            deprecated = f"workflow {name!r} version {version!r} is deprecated"
            advice = f"use one of the active versions {active}"
        else:
            deprecated = f"every version of workflow {name!r} is deprecated"
            advice = "register a new version to start new instances"
        super().__init__(f"{deprecated} and starts no new instances; {advice}")


class NotFoundError(EngineError, LookupError):
    """No element of that kind has that id (or name) here."""

    def __init__(self, kind: str, ident: str, where: str = "", *, advice: str = "") -> None:
        self.kind, self.ident = kind, ident
        place = f" in {where}" if where else ""
        if not advice and kind == "flow":  # a name the code gives, not an id the runtime made
            advice = "check the flow's id (cf.define(id)) and that it is registered"
        elif not advice:
            advice = "check the id (ids are returned by the runtime)"
        super().__init__(f"no {kind} {clipped(ident)}{place}; {advice}")


class NoAuditTrailError(NotFoundError):
    """A stored run without an audit trail, so its trace and past states cannot be rebuilt."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            "audit trail of run",
            run_id,
            advice="it ran with the audit off (Runtime(audit=False)) or has not started yet (a "
            "queued run); its trace and its states at past times are rebuilt from that trail, so "
            "run with the audit on to have them (inspect shows what it is now)",
        )


class NotPausedError(NotFoundError):
    """A run that is stored (or queued) waits for no person: it has no open pause."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            "pause of run",
            run_id,
            advice="the run exists but is not paused for a person (it runs, sleeps, waits for "
            "an event, or has ended; or its pause was resumed or timed out): inspect it to see "
            "where it is",
        )


class InstanceExistsError(EngineError):
    """``start_workflow(..., instance_id=...)`` named an instance that already exists."""

    def __init__(self, instance_id: str, *, planned: bool = False) -> None:
        self.instance_id = instance_id
        if planned:  # not stored yet: its id is taken all the same
            super().__init__(
                f"the id {instance_id!r} is taken: a migration under way starts its new run "
                "under it; nothing was started (choose another id)"
            )
            return
        super().__init__(f"a workflow instance {instance_id!r} already exists; nothing was started")


class IdempotencyKeyReusedError(EngineError, ValueError):
    """An idempotency key sent again with another payload: no retry of the request it names,
    whose answer would say it was done while it is lost. Nothing was done."""

    def __init__(self, what: str, key: str) -> None:
        self.key = key
        shown = f"{key[:40]}..." if len(key) > 40 else key
        super().__init__(
            f"{what}'s idempotency key {shown!r} was sent before with another payload: nothing "
            "was done; a retry must send the same payload, another request another key"
        )


class ResumeError(EngineError, LookupError):
    """``resume`` was given a token that is unknown, or whose pause has ended. Nothing changed."""

    def __init__(self, token: str, reason: str, *, ended: bool = False) -> None:
        self.token = token
        self.ended = ended  # the token is known but its pause is over: a conflict, not a miss
        shown = f"{token[:6]}..." if len(token) > 8 else token
        super().__init__(f"cannot resume {shown!r}: {reason}")


class InvalidEventError(EngineError, ValueError):
    """Every flow listening for an event refused its payload: nothing started or woke."""

    def __init__(self, event: str, refused: Sequence[Any]) -> None:
        self.event, self.refused = event, list(refused)
        reasons = "; ".join(f"flow {r.workflow!r}: {r.detail}" for r in self.refused)
        refusal = f"event {event!r} was refused by every flow listening for it"
        advice = "send a payload they take (their schemas match it, their starts do not raise)"
        super().__init__(f"{refusal}, nothing was started: {reasons}; {advice}")


class InstanceBusyError(EngineError, RuntimeError):
    """Another process's transaction kept an instance's row locked past a moment (a process
    paused in the middle of one, on a shared database): nothing was done; ask again shortly
    (the server ends a transaction left idle, ``PostgresStore(idle_transaction_timeout=)``)."""

    def __init__(self, instance_id: str, seconds: float, doing: str = "") -> None:
        self.instance_id = instance_id
        what = f" ({doing})" if doing else ""
        super().__init__(
            f"instance {instance_id!r} is busy{what}: another process's transaction has kept "
            f"its row locked for {seconds:g} s (a process paused in the middle of one?); "
            "nothing was done: try again in a few seconds"
        )


class PublishInterruptedError(EngineError, RuntimeError):
    """The runtime's own trouble (a stop, a store that failed, a lost lease) cut a publish
    after it had started runs of some listening flows, or while it reached the waiting steps:
    ``started`` lists the runs it started, ``delivered`` those whose waiting step heard it,
    ``error`` is the trouble. The flows after them did not start, and no other step heard it."""

    def __init__(
        self,
        event: str,
        started: Sequence[str],
        error: BaseException,
        delivered: Sequence[str] = (),
    ) -> None:
        self.event, self.started, self.error = event, list(started), error
        self.delivered = list(delivered)
        heard = ""
        if self.delivered:
            heard = f" and reached the waiting steps of {len(self.delivered)} run(s) "
            heard += f"({', '.join(self.delivered)})"
        super().__init__(
            f"publishing event {event!r} was cut after it started {len(self.started)} run(s) "
            f"({', '.join(self.started)}){heard}: {error}; the other listening flows did not "
            f"start and no {'other ' if heard else ''}waiting step heard it. Publish it again "
            "to a running runtime; the flows that started will start again (and the steps that "
            "heard it hear it again), unless the publish has an idempotency key: sent again "
            "with the same key, none starts or hears it twice"
        )


class RunFailedError(EngineError):
    """A run's failure as its record keeps it (``type``, ``attributes`` read as attributes)."""

    def __init__(
        self, message: str, *, type: str | None = None, attributes: dict[str, object] | None = None
    ) -> None:
        self.type, self.attributes = type, dict(attributes or {})
        super().__init__(message)

    def __getattr__(self, name: str) -> object:
        attributes = self.__dict__.get("attributes") or {}
        if name in attributes:
            return attributes[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


class CancelRunRequested(EngineError):
    """A step asked to end its run as canceled (``ctx.cancel(reason)``; a handler of a net's
    work item may raise it too). Raised out of the step's handler it is no failure: no retry,
    no fallback, no failure logged; the run's root workflow is canceled with ``reason`` as its
    error, in the transaction that would have recorded the step's outcome."""

    def __init__(self, reason: str = "") -> None:
        self.reason = reason
        said = "the step canceled its run"
        super().__init__(f"{said}: {reason}" if reason else said)


class StepFailedError(RunFailedError):
    """A caught step's failure as its record keeps it (``ctx.error`` in ``on_error``)."""


class MockLostError(EngineError):
    """A mocked step of a replay had to run after a restart, and its mock was gone."""

    def __init__(self, run_id: str, step: str) -> None:
        self.run_id, self.step = run_id, step
        super().__init__(
            f"step {step!r} of replay {run_id!r} was mocked, and its mock was lost when the "
            "runtime that started the replay stopped (mocks are never stored); the real "
            "handler was not run. Replay the original run again"
        )


class NotReplayableError(EngineError):
    """A run that cannot be replayed: an instance of a net workflow, which has no recorded
    trigger to start again."""

    def __init__(self, run_id: str, workflow: str) -> None:
        self.run_id, self.workflow = run_id, workflow
        super().__init__(
            f"run {run_id!r} is an instance of net workflow {workflow!r}, which has no "
            "recorded trigger to start again: only a flow's runs are replayed; start a new "
            "instance with Runtime.start_workflow (POST /workflows)"
        )


class InstanceBlockedError(EngineError):
    """A held instance (status ``blocked``: its definition changed under its version since it
    started) was addressed; nothing changed. ``reason`` says how, and what to do."""

    def __init__(self, instance_id: str, reason: str, operation: str = "") -> None:
        self.instance_id, self.reason, self.operation = instance_id, reason, operation
        super().__init__(f"cannot {operation}: {reason}" if operation else reason)


class InvalidStateTransitionError(EngineError):
    """An element was asked to move to a state its current state does not lead to."""

    def __init__(
        self,
        kind: str,
        ident: str,
        current: str,
        requested: str,
        allowed: list[str],
        *,
        only_while: bool = False,
        advice: str = "",
    ) -> None:
        """``allowed``: the states ``current`` can become; with ``only_while``, ``requested`` is
        something the element does (``"initialize a work item"``) only in the ``allowed``
        states. ``advice``: where to go instead (an element that ended: its work moved on)."""
        self.kind, self.ident, self.current, self.requested = kind, ident, current, requested
        self.allowed = allowed
        if advice:
            super().__init__(
                f"{kind} {ident!r} is {current!r} and cannot become {requested!r}: {advice}"
                if current != requested
                else f"{kind} {ident!r} is {current!r} already: {advice}"
            )
            return
        if only_while:  # not a state it moves to: where it has to be for it
            super().__init__(
                f"{kind} {ident!r} is {current!r} and cannot {requested}: it does that only "
                f"while {' or '.join(repr(state) for state in allowed)}"
            )
            return
        refused = f"{kind} {ident!r} is {current!r} and cannot become {requested!r}"
        if current == requested:  # ("'canceled' cannot become 'canceled'": chaos h32 F3)
            refused = f"{kind} {ident!r} is {current!r} already"
        if not allowed:  # a final state (a run that ended, say): nothing moves it on
            super().__init__(f"{refused}: it has ended, and nothing changes it any more")
            return
        super().__init__(f"{refused}; from {current!r} it can become {allowed}")


class ReentrantCallError(EngineError, RuntimeError):
    """Code running inside an instance's transaction (an activity, a callback, a policy, a
    router, a migration's initializer) called the runtime's API on that same instance: the call
    would wait for the transaction it runs in, for ever. Refused at once, changing nothing."""

    def __init__(self, instance_id: str, operation: str, through: list[str] | None = None) -> None:
        self.instance_id = instance_id
        where = "that same instance"
        if through is not None and len(through) > 1:  # a cycle of calls between instances
            chain = " -> ".join(map(repr, through))
            where = f"instance {through[-1]!r}, which that call would wait for ({chain})"
        super().__init__(
            f"{operation} of instance {instance_id!r} was called from code running inside a "
            f"transaction of {where} (an activity, callback, policy, router or migration "
            "function), and would wait for that transaction for ever; nothing was done. Change "
            "the instance through ctx (ctx.work_item.initialize(), ctx.workflow.cancel(), ...), "
            "or make the call from a work item's handler or a detached action, which run "
            "outside its transactions"
        )


class EndlessChainError(EngineError, RuntimeError):
    """Tasks completed one after another in one turn without end, nothing to wait for between
    them: a loop of tasks that never waits. Nothing of the turn is kept (a call is refused)."""

    def __init__(self, workflow: str, task: str, limit: int, root: str = "") -> None:
        self.workflow, self.task = workflow, task
        where = f"workflow {workflow!r}"
        if root and root != workflow:  # a child net's (a composite task's loop, say)
            where += f" (in an instance of {root!r})"
        super().__init__(
            f"{where}: more than {limit:,} tasks were enabled in one go, with "
            f"nothing to wait for between them (task {task!r} came next): a "
            "loop of tasks that never waits, such as a router that always routes back or a "
            "migrator that fast-forwards a task of a loop every time; give the loop something "
            "to wait for, or a way out"
        )


class WorkItemLimitError(EngineError):
    """An outside caller's initialize of a work item (or a composite task's child workflow)
    past its task's ``max_work_items`` in one generation (every item and child is kept in the
    instance's state, which each change writes)."""

    def __init__(
        self, workflow: str, task: str, most: int, *, composite: bool = False, has: int = 0
    ) -> None:
        self.workflow, self.task, self.most = workflow, task, most
        what, builder = ("child workflow", "composite_task") if composite else ("work item", "task")
        many = max(has, most)
        what += "" if many == 1 else "s"  # ("has 1 child workflows": this stop's own test)
        count = f"{many:,}" + (f" (at most {most:,})" if has > most else "")
        super().__init__(  # (its count, past the bound by the net's own: retest h38 R7)
            f"task {task!r} of {workflow!r} has {count} {what} in this generation "
            "(open, completed and canceled alike), the most outside callers may bring it to: "
            "each is kept in the instance's state, which every change writes again; the "
            "task's next generation starts with none, or declare a higher bound with "
            f"net.{builder}(...).max_work_items(n)"
        )


class InstanceTooLargeError(EngineError):
    """An outside caller's call that would leave a workflow instance's state over the most
    an outside call may bring it to: every change writes the whole state again (hostile h39
    F4: 150 calls of 900 KB made each change 1.6 s, and listings seconds)."""

    def __init__(self, instance_id: str, size: int, most: int) -> None:
        self.instance_id, self.size, self.most = instance_id, size, most
        mib = 1024 * 1024
        super().__init__(
            f"this call would leave workflow instance {instance_id!r} with {size / mib:.1f} MiB "
            f"of state, over the {most // mib} MiB an outside caller's call may bring it to: "
            "every change writes the whole state again. Keep large data elsewhere (a blob "
            "store, a file) and pass a reference to it; the net's own code is not bounded"
        )


class MigrationError(EngineError, ValueError):
    """A migration that cannot be defined, registered or run (the message says why)."""


class ReplayRefusedError(MigrationError):
    """A replay or a resume refused for where its run stands (a resume of a completed run, a
    replay of a run a migration went on from). A ``MigrationError`` still, as it was raised
    before it had a class of its own (devx h40 F10)."""


class InvalidPolicyResultError(EngineError, ValueError):
    """A completion policy returned something other than "complete", "fail" or "continue"."""

    def __init__(self, workflow: str, task: str, result: object) -> None:
        self.workflow, self.task, self.result = workflow, task, result
        policy = f"the policy of task {task!r} in workflow {workflow!r}"
        returns = "a policy returns 'complete', 'fail' or 'continue'"
        super().__init__(f"{policy} returned {result!r}; {returns}")


class AutoTriggerAlreadySetError(EngineError):
    """An activity set a second auto-trigger (start/complete/fail/cancel) on one work item."""

    def __init__(self, work_item: str, first: str, second: str) -> None:
        self.work_item = work_item
        has = f"work item {work_item!r} already has the auto-trigger {first!r}"
        super().__init__(f"{has}; cannot also set {second!r} in the same activity")


class SchedulingNotAllowedError(EngineError):
    """``register_scheduled`` was called where no element's active life can own the job (or,
    with ``detail``, an auto-trigger where none may be set)."""

    def __init__(self, where: str, detail: str | None = None) -> None:
        self.where = where
        super().__init__(
            detail
            or f"register_scheduled is not available in {where}; use it in on_initialized/"
            "on_started (workflows, work items), on_enabled/on_started/on_*_state_changed (tasks)"
        )


class ActionError(EngineError):
    """An action call was refused before anything changed (``element``, ``action``)."""

    def _refuse(self, element: str, action: str, message: str) -> None:
        self.element, self.action = element, action
        super().__init__(message)


class InternalOnlyActionError(ActionError, PermissionError):
    """An external caller used an action that has no custom definition (internal-only)."""

    def __init__(self, element: str, action: str, *, advice: str = "") -> None:
        if not advice:
            declare = "declare it with net.action(schema, policy=...) to allow external callers"
            advice = f"{declare}, or call it internally (principal=None)"
        self._refuse(element, action, f"action {action!r} of {element} is internal-only: {advice}")


class InvalidPayloadError(ActionError, ValueError):
    """The payload of an action does not match the action's schema."""

    def __init__(self, element: str, action: str, reason: str, path: str | None = None) -> None:
        self.reason = reason
        self.path = path
        """The JSON path of the field the action's schema refused, if one did."""
        message = f"invalid payload for action {action!r} of {element}: {reason}"
        self._refuse(element, action, message)


class AuthenticationRequiredError(ActionError, PermissionError):
    """An external call came without an identity (a principal with no id)."""

    def __init__(self, element: str, action: str) -> None:
        needs = (
            "needs an authenticated caller: in Python pass a principal with an id "
            "(principal=cf.Principal(id=...)); over HTTP send a bearer token of the server's "
            "[tokens] (a server with none configured cannot run a net action for a caller)"
        )
        self._refuse(element, action, f"action {action!r} of {element} {needs}")


class ActionDeniedError(ActionError, PermissionError):
    """The action's authorization policy denied the caller."""

    def __init__(
        self, element: str, action: str, principal: str, policy: str = "", answer: object = False
    ) -> None:
        self.principal = principal
        named = f" {policy}" if policy else ""
        denied = f"may not run action {action!r} of {element}: its policy{named} denied it"
        if answer is not False:  # not a bool: taken as a denial, never as an allow
            denied += f" (it answered {answer!r}, not True or False; a policy returns a bool)"
        self._refuse(element, action, f"caller {principal!r} {denied}")
