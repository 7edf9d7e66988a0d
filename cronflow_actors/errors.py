"""Every error cronflow-actors raises, in one tree.

    CronflowError
    ├── ConfigurationError            a setting has a value that cannot be used
    │   └── MissingSecretError           a flow's secret names an environment variable that is unset
    ├── ActorSystemError
    │   ├── ActorSystemNotRunningError   spawn or lookup on a system that is not running
    │   ├── ActorNameTakenError          an actor was spawned with a name already in use
    │   └── WouldBlockLoopError          a blocking wait was attempted on the event loop thread
    ├── WorkflowDefinitionError
    │   └── InvalidWorkflowError        a workflow definition has problems (all listed at once)
    ├── InvalidRouteError               a router returned a route the task cannot take
    ├── RetryRequested                  a handler wrapper asks for another attempt later
    ├── StepTimeoutError                a step's handler ran longer than its timeout
    ├── CircuitOpenError                a step's circuit breaker is open; the attempt did not run
    ├── EngineError
    │   ├── RuntimeNotRunningError       a Runtime call before start() or after stop()
    │   ├── UnknownWorkflowError         no registered workflow (version) has that name
    │   ├── WorkflowDeprecatedError      the version refuses new instances
    │   ├── NotFoundError                no workflow instance / work item / task with that id
    │   ├── InstanceExistsError          an instance id that is already taken was started again
    │   ├── ResumeError                  a resume token that is unknown, or whose pause ended
    │   ├── InvalidEventError            every flow listening for an event refused its payload
    │   ├── RunFailedError               how a run failed, when its step's exception is not at hand
    │   │   └── StepFailedError             how a caught step failed, read in its on_error fallback
    │   ├── MockLostError                a replay's mocked step ran after a restart lost its mock
    │   ├── MigrationError               a migration that cannot be defined, registered or run
    │   ├── InstanceBlockedError         an instance whose definition changed under its version
    │   ├── InvalidStateTransitionError  an element cannot go from its state to the requested one
    │   ├── InvalidPolicyResultError     a completion policy returned something else
    │   ├── AutoTriggerAlreadySetError   an activity set a second auto-trigger on one work item
    │   ├── SchedulingNotAllowedError    register_scheduled outside an active-lifecycle activity
    │   └── ActionError                  an action call was refused; nothing changed
    │       ├── InternalOnlyActionError     an external caller used an action with no definition
    │       ├── InvalidPayloadError         the payload does not match the action's schema
    │       ├── AuthenticationRequiredError an external caller without identity
    │       └── ActionDeniedError           the action's policy denied the caller
    ├── StoreError
    │   ├── StoreClosedError             the store was used before open() or after close()
    │   ├── SchemaVersionError           the database was written by a newer cronflow-actors
    │   ├── MutationRejectedError        a mutation broke a constraint (nothing of it was written)
    │   │   ├── DuplicateInstanceError      the first snapshot of an id that is already stored
    │   │   └── RevisionConflictError       a snapshot not based on the stored revision
    │   ├── LeaseError
    │   │   ├── LeaseHeldError              another runtime owns the database
    │   │   └── LeaseLostError              this runtime's ownership of the database was taken
    │   ├── StoreFailedError             the store's writer failed; nothing more is accepted
    │   └── StateValueError              a key-value operation does not fit the stored value
    └── ApiError                        the CLI's call to a running server was refused or failed
    ExpectationError (an AssertionError)  a flow test's run did not meet its expectations
    Problem                             an HTTP route answers with an RFC 9457 problem

Every error says what was wrong, on which element, and what to do about it. pykka's own errors
(``ActorDeadError``, ``Timeout``) pass through unchanged; signals private to one module that never
reach a caller (the SQLite writer's refused statement, say) stay in that module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class CronflowError(Exception):
    """Base of every error raised by cronflow-actors."""


class ConfigurationError(CronflowError, ValueError):
    """A store, runtime or actor system was given an option it cannot use."""

    def __init__(self, setting: str, value: object, expected: str) -> None:
        self.setting, self.value, self.expected = setting, value, expected
        super().__init__(f"setting {setting!r} has the value {value!r}; expected {expected}")


class MissingSecretError(ConfigurationError, LookupError):
    """A flow's secret reads an unset environment variable (at ``register`` or in a step)."""

    def __init__(self, workflow: str, missing: list[tuple[str, str]]) -> None:
        self.workflow, self.missing = workflow, list(missing)  # (secret key, variable) pairs
        names = ", ".join(f"{key!r} (${variable})" for key, variable in self.missing)
        CronflowError.__init__(
            self,
            f"flow {workflow!r}: the secrets {names} read environment variables that are not "
            "set; set them in the runtime's environment and register the flow again",
        )
        self.setting, self.expected = "secrets", "environment variables that are set"
        self.value = [key for key, _ in self.missing]


class ActorSystemError(CronflowError):
    """Something went wrong in the actor kernel."""


class ActorSystemNotRunningError(ActorSystemError, RuntimeError):
    """An actor was spawned or looked up on an actor system that is not running."""

    def __init__(self, system: str, state: str, operation: str) -> None:
        self.system, self.state, self.operation = system, state, operation
        start = "start it with 'async with ActorSystem()' or system.start() inside a running loop"
        super().__init__(f"cannot {operation}: actor system {system!r} is {state}; {start}")


class ActorNameTakenError(ActorSystemError, ValueError):
    """An actor was spawned with a name a live actor of the same system already has."""

    def __init__(self, system: str, name: str) -> None:
        self.system, self.name = system, name
        advice = "choose another name or stop that actor first"
        taken = f"actor system {system!r} already has a live actor named {name!r}"
        super().__init__(f"{taken}; {advice}")


class WouldBlockLoopError(ActorSystemError, RuntimeError):
    """A blocking wait on a future was attempted on a thread that runs an event loop."""

    def __init__(self, what: str) -> None:
        self.what = what
        advice = "await it instead of calling .get()"
        super().__init__(f"{what} would block the running event loop; {advice}")


class StoreError(CronflowError):
    """Something went wrong in the persistence layer."""


class StoreClosedError(StoreError, RuntimeError):
    """The store was used before ``open()`` or after ``close()``."""

    def __init__(self, store: str, operation: str) -> None:
        self.store, self.operation = store, operation
        advice = "call 'await store.open()'"
        super().__init__(f"cannot {operation}: store {store} is not open; {advice}")


class SchemaVersionError(StoreError):
    """The database file has a schema newer than this cronflow-actors knows; nothing changed."""

    def __init__(self, path: str, found: int, known: int) -> None:
        self.path, self.found, self.known = path, found, known
        advice = "upgrade cronflow-actors or use another database file"
        at = f"database {path!r} is at schema version {found}"
        super().__init__(f"{at}, but this cronflow-actors knows versions up to {known}; {advice}")


class StateValueError(StoreError, TypeError):
    """A key-value operation does not fit the stored value (``incr`` of a string)."""

    def __init__(self, namespace: str, key: str, operation: str, value: object) -> None:
        self.namespace, self.key, self.operation, self.value = namespace, key, operation, value
        holds = f"it holds {type(value).__name__} {value!r}, not a number"
        advice = "delete or set the key first"
        where = f"key {key!r} in namespace {namespace!r}"
        super().__init__(f"cannot {operation} {where}: {holds}; {advice}")


_SNAPSHOT_FIRST = "write the instance's snapshot before its journal and timers"


class MutationRejectedError(StoreError):
    """A mutation breaks a constraint of the store; nothing of it was written."""

    def __init__(self, instance_id: str, reason: str, hint: str = _SNAPSHOT_FIRST) -> None:
        self.instance_id, self.reason = instance_id, reason
        rejected = f"the mutation for instance {instance_id!r} was rejected"
        super().__init__(f"{rejected} and nothing of it was written: {reason}; {hint}")


class DuplicateInstanceError(MutationRejectedError):
    """The first snapshot of an instance names an id the store already holds."""

    def __init__(self, instance_id: str) -> None:
        reason = "an instance with this id is already stored (or queued)"
        super().__init__(instance_id, reason, "start it under another id")


_RELOAD = "another writer changed the instance: reload it from the store"


class RevisionConflictError(MutationRejectedError):
    """A snapshot was not based on the stored revision: another writer got there first."""

    def __init__(self, instance_id: str, expected: int, found: int | None) -> None:
        self.expected, self.found = expected, found
        stored = "no stored snapshot" if found is None else f"stored revision {found}"
        reason = f"it was based on revision {expected}, but the store has {stored}"
        super().__init__(instance_id, reason, _RELOAD)


class LeaseError(StoreError):
    """Ownership of a database by one runtime process."""


class LeaseHeldError(LeaseError):
    """Another runtime owns the database (its lease has not expired); this one did not start."""

    def __init__(self, database: str, owner: str, host: str, pid: int, expires_in: float) -> None:
        self.database, self.owner, self.host, self.pid = database, owner, host, pid
        self.expires_in = expires_in
        super().__init__(
            f"database {database} is owned by runtime {owner} (pid {pid} on {host}); its lease "
            f"expires in {expires_in:.1f} s unless that runtime renews it. Stop that runtime, or "
            f"start this one with --wait-for-lease to take over once the lease expires"
        )


class LeaseLostError(LeaseError):
    """This runtime's lease was taken by another runtime: it stops writing at once."""

    def __init__(self, database: str, owner: str, holder: str | None) -> None:
        self.database, self.owner, self.holder = database, owner, holder
        now = f"runtime {holder} holds it now" if holder else "no runtime holds it now"
        advice = "restart it once the other runtime has stopped"
        lost = f"runtime {owner} lost its lease on database {database} ({now})"
        super().__init__(f"{lost}; it writes nothing more; {advice}")


class StoreFailedError(StoreError, RuntimeError):
    """The store's writer failed (file gone, disk full, lease lost): nothing more is accepted."""

    def __init__(self, store: str, reason: str) -> None:
        self.store, self.reason = store, reason
        advice = "check the database file and the disk, then restart the runtime"
        super().__init__(f"store {store} has failed and accepts no more writes: {reason}; {advice}")


class WorkflowDefinitionError(CronflowError, ValueError):
    """A workflow definition cannot be built."""


class InvalidWorkflowError(WorkflowDefinitionError):
    """A workflow definition has problems, every one listed; nothing was registered."""

    def __init__(self, workflow: str, problems: list[str]) -> None:
        self.workflow, self.problems = workflow, list(problems)
        listing = "\n".join(f"  - {problem}" for problem in self.problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"workflow {workflow!r} has {count} {noun}:\n{listing}")


class InvalidRouteError(CronflowError, ValueError):
    """A task's router returned a route that is not one of the task's own successors."""

    def __init__(self, workflow: str, task: str, route: object, reason: str) -> None:
        self.workflow, self.task, self.route = workflow, task, route
        router = f"router of task {task!r} in workflow {workflow!r}"
        super().__init__(f"{router} returned {route!r}: {reason}")


class RetryRequested(CronflowError):
    """A handler wrapper asks for another attempt ``delay`` seconds from now (a timer)."""

    def __init__(self, delay: float, error: str) -> None:
        self.delay, self.error = delay, error
        super().__init__(f"retry in {delay} s after: {error}")


class StepTimeoutError(CronflowError, TimeoutError):
    """A step's handler ran past its ``timeout`` and was cancelled (a failed attempt)."""

    def __init__(self, step: str, seconds: float) -> None:
        self.step, self.seconds = step, seconds
        super().__init__(f"step {step!r} timed out after {seconds:g} s")


class CircuitOpenError(CronflowError):
    """A step's circuit breaker is open: this attempt failed at once, without running."""

    def __init__(self, workflow: str, step: str, failures: int, retry_in: float) -> None:
        self.workflow, self.step, self.failures, self.retry_in = workflow, step, failures, retry_in
        breaker = f"the circuit breaker of step {step!r} of {workflow!r}"
        wait = f"the step is not run for another {retry_in:g} s"
        super().__init__(f"{breaker} is open after {failures} failures in a row; {wait}")


class EngineError(CronflowError):
    """Something the workflow engine refused or could not do. Nothing was changed."""


class RuntimeNotRunningError(EngineError, RuntimeError):
    """A ``Runtime`` was used before ``start()`` (or ``async with``) or after ``stop()``."""

    def __init__(self, operation: str, state: str) -> None:
        self.operation, self.state = operation, state
        advice = "use 'async with Runtime(...) as rt'"
        super().__init__(f"cannot {operation}: the runtime is {state}; {advice}")


class UnknownWorkflowError(EngineError, LookupError):
    """No registered workflow has that name (or that version)."""

    def __init__(self, name: str, version: str | None, known: list[str]) -> None:
        self.name, self.version, self.known = name, version, known
        what = f"workflow {name!r}" + (f" version {version!r}" if version else "")
        super().__init__(f"{what} is not registered; registered: {known}; call rt.register() first")


class WorkflowDeprecatedError(EngineError):
    """The workflow version is deprecated: running instances go on, new ones are refused."""

    def __init__(self, name: str, version: str, active: list[str]) -> None:
        self.name, self.version = name, version
        deprecated = f"workflow {name!r} version {version!r} is deprecated"
        advice = f"use one of the active versions {active}"
        super().__init__(f"{deprecated} and starts no new instances; {advice}")


class NotFoundError(EngineError, LookupError):
    """No element of that kind has that id (or name) here."""

    def __init__(self, kind: str, ident: str, where: str = "") -> None:
        self.kind, self.ident = kind, ident
        place = f" in {where}" if where else ""
        advice = "check the id (ids are returned by the runtime)"
        super().__init__(f"no {kind} {ident!r}{place}; {advice}")


class InstanceExistsError(EngineError):
    """``start_workflow(..., instance_id=...)`` named an instance that already exists."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        super().__init__(f"a workflow instance {instance_id!r} already exists; nothing was started")


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
        advice = "send a payload that matches their schema"
        super().__init__(f"{refusal}, nothing was started: {reasons}; {advice}")


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


class InstanceBlockedError(EngineError):
    """A held instance (status ``blocked``: its definition changed under its version since it
    started) was addressed; nothing changed. ``reason`` says how, and what to do."""

    def __init__(self, instance_id: str, reason: str, operation: str = "") -> None:
        self.instance_id, self.reason, self.operation = instance_id, reason, operation
        super().__init__(f"cannot {operation}: {reason}" if operation else reason)


class InvalidStateTransitionError(EngineError):
    """An element was asked to move to a state its current state does not lead to."""

    def __init__(
        self, kind: str, ident: str, current: str, requested: str, allowed: list[str]
    ) -> None:
        self.kind, self.ident, self.current, self.requested = kind, ident, current, requested
        self.allowed = allowed
        refused = f"{kind} {ident!r} is {current!r} and cannot become {requested!r}"
        super().__init__(f"{refused}; from {current!r} it can become {allowed}")


class MigrationError(EngineError, ValueError):
    """A migration that cannot be defined, registered or run (the message says why)."""


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
    """``register_scheduled`` was called where no element's active life can own the job."""

    def __init__(self, where: str) -> None:
        self.where = where
        super().__init__(
            f"register_scheduled is not available in {where}; use it in on_initialized/on_started "
            "(workflows, work items), on_enabled/on_started/on_*_state_changed (tasks)"
        )


class ActionError(EngineError):
    """An action call was refused before anything changed (``element``, ``action``)."""

    def _refuse(self, element: str, action: str, message: str) -> None:
        self.element, self.action = element, action
        super().__init__(message)


class InternalOnlyActionError(ActionError, PermissionError):
    """An external caller used an action that has no custom definition (internal-only)."""

    def __init__(self, element: str, action: str) -> None:
        advice = "declare it with net.action(schema, policy=...) to allow external callers"
        internal = f"action {action!r} of {element} is internal-only"
        message = f"{internal}: {advice}, or call it internally (principal=None)"
        self._refuse(element, action, message)


class InvalidPayloadError(ActionError, ValueError):
    """The payload of an action does not match the action's schema."""

    def __init__(self, element: str, action: str, reason: str) -> None:
        self.reason = reason
        message = f"invalid payload for action {action!r} of {element}: {reason}"
        self._refuse(element, action, message)


class AuthenticationRequiredError(ActionError, PermissionError):
    """An external call came without an identity (a principal with no id)."""

    def __init__(self, element: str, action: str) -> None:
        needs = "needs an authenticated caller; pass a principal with an id"
        self._refuse(element, action, f"action {action!r} of {element} {needs}")


class ActionDeniedError(ActionError, PermissionError):
    """The action's authorization policy denied the caller."""

    def __init__(self, element: str, action: str, principal: str) -> None:
        self.principal = principal
        denied = f"may not run action {action!r} of {element}: its policy denied it"
        self._refuse(element, action, f"caller {principal!r} {denied}")


class ApiError(CronflowError):
    """A CLI command's call to a running ``serve`` was refused, or it could not be reached.
    The message says what to do; ``status`` is the HTTP status (0: no answer), ``slug`` the
    problem's type, and ``exit_code`` the code the command exits with (``cli/exits.py``)."""

    def __init__(
        self, message: str, *, status: int = 0, slug: str = "", exit_code: int = 2
    ) -> None:
        super().__init__(message)
        self.status, self.slug, self.exit_code = status, slug, exit_code


class ExpectationError(AssertionError):
    """Steps of a ``flow.test()`` run did not end as expected (``unmet`` lists each)."""

    def __init__(self, unmet: list[str], result: Any) -> None:
        self.unmet, self.result = unmet, result
        listing = "\n".join(f"  - {line}" for line in unmet)
        ended = f"run {result.run_id} ended {result.status}"
        super().__init__(f"{ended}; unmet expectations:\n{listing}")


_Headers = Mapping[str, str] | None


class Problem(Exception):
    """Raised by an HTTP route to answer with a problem (``slug`` names its type)."""

    def __init__(
        self, status: int, slug: str, detail: str, *, headers: _Headers = None, **fields: Any
    ) -> None:
        super().__init__(detail)
        self.status, self.slug, self.detail = status, slug, detail
        self.headers = dict(headers or {})
        self.fields = fields


__all__ = [  # every exception class defined here, and only those
    name
    for name, value in list(vars().items())
    if isinstance(value, type) and issubclass(value, BaseException) and value.__module__ == __name__
]
