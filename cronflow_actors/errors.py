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
    ├── EngineError
    │   ├── RuntimeNotRunningError       a Runtime call before start() or after stop()
    │   ├── UnknownWorkflowError         no registered workflow (version) has that name
    │   ├── WorkflowDeprecatedError      the version refuses new instances
    │   ├── NotFoundError                no workflow instance / work item / task with that id
    │   ├── InstanceExistsError          an instance id that is already taken was started again
    │   ├── ResumeError                  a resume token that is unknown, or whose pause ended
    │   ├── InvalidEventError            every flow listening for an event refused its payload
    │   ├── RunFailedError               how a run failed, when its step's exception is not at hand
    │   ├── MockLostError                a replay's mocked step ran after a restart lost its mock
    │   ├── InvalidStateTransitionError  an element cannot go from its state to the requested one
    │   ├── InvalidPolicyResultError     a completion policy returned something else
    │   ├── AutoTriggerAlreadySetError   an activity set a second auto-trigger on one work item
    │   ├── SchedulingNotAllowedError    register_scheduled outside an active-lifecycle activity
    │   └── ActionError                  an action call was refused; nothing changed
    │       ├── InternalOnlyActionError     an external caller used an action with no definition
    │       ├── InvalidPayloadError         the payload does not match the action's schema
    │       ├── AuthenticationRequiredError an external caller without identity
    │       └── ActionDeniedError           the action's policy denied the caller
    └── StoreError
        ├── StoreClosedError             the store was used before open() or after close()
        ├── SchemaVersionError           the database was written by a newer cronflow-actors
        ├── MutationRejectedError        a mutation broke a constraint (nothing of it was written)
        │   ├── DuplicateInstanceError      the first snapshot of an id that is already stored
        │   └── RevisionConflictError       a snapshot not based on the stored revision
        ├── LeaseError
        │   ├── LeaseHeldError              another runtime owns the database
        │   └── LeaseLostError              this runtime's ownership of the database was taken
        ├── StoreFailedError             the store's writer failed; nothing more is accepted
        └── StateValueError              a key-value operation does not fit the stored value

Errors raised by pykka itself (``pykka.ActorDeadError``, ``pykka.Timeout``) pass through unchanged,
so code written against pykka keeps working.

Every error says what was wrong, on which element, and what to do about it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "ActionDeniedError",
    "ActionError",
    "ActorNameTakenError",
    "ActorSystemError",
    "ActorSystemNotRunningError",
    "AuthenticationRequiredError",
    "AutoTriggerAlreadySetError",
    "CircuitOpenError",
    "ConfigurationError",
    "CronflowError",
    "DuplicateInstanceError",
    "EngineError",
    "InstanceExistsError",
    "InternalOnlyActionError",
    "InvalidEventError",
    "InvalidPayloadError",
    "InvalidPolicyResultError",
    "InvalidRouteError",
    "InvalidStateTransitionError",
    "InvalidWorkflowError",
    "LeaseError",
    "LeaseHeldError",
    "LeaseLostError",
    "MissingSecretError",
    "MockLostError",
    "MutationRejectedError",
    "NotFoundError",
    "ResumeError",
    "RetryRequested",
    "RevisionConflictError",
    "RunFailedError",
    "RuntimeNotRunningError",
    "SchedulingNotAllowedError",
    "SchemaVersionError",
    "StateValueError",
    "StepFailedError",
    "StepTimeoutError",
    "StoreClosedError",
    "StoreError",
    "StoreFailedError",
    "UnknownWorkflowError",
    "WorkflowDefinitionError",
    "WorkflowDeprecatedError",
    "WouldBlockLoopError",
]


class CronflowError(Exception):
    """Base of every error raised by cronflow-actors."""


class ConfigurationError(CronflowError, ValueError):
    """A setting has a value that cannot be used.

    Raised when a store, a runtime or an actor system is built with a bad option. The message
    names the setting, the value given and the values that are accepted.
    """

    def __init__(self, setting: str, value: object, expected: str) -> None:
        self.setting = setting
        self.value = value
        self.expected = expected
        super().__init__(f"setting {setting!r} has the value {value!r}; expected {expected}")


class MissingSecretError(ConfigurationError, LookupError):
    """A flow's secret reads an environment variable that is not set (``cf.env("API_KEY")``).

    Raised by ``Runtime.register`` (which then registers nothing), listing every missing
    variable of the flow and its subflows; and, should a variable disappear later, by reading
    ``ctx.secrets[key]`` in a step (the step fails with this error). The message names the
    flow, the secrets and the variables, never a secret's value.
    """

    def __init__(self, workflow: str, missing: list[tuple[str, str]]) -> None:
        self.workflow = workflow
        self.missing = list(missing)
        """(secret key, environment variable) pairs."""
        names = ", ".join(f"{key!r} (${variable})" for key, variable in self.missing)
        CronflowError.__init__(
            self,
            f"flow {workflow!r}: the secrets {names} read environment variables that are not "
            "set; set them in the runtime's environment and register the flow again",
        )
        self.setting = "secrets"
        self.value = [key for key, _ in self.missing]
        self.expected = "environment variables that are set"


class ActorSystemError(CronflowError):
    """Something went wrong in the actor kernel."""


class ActorSystemNotRunningError(ActorSystemError, RuntimeError):
    """An actor was spawned or looked up on an actor system that is not running.

    Start the system first (``async with ActorSystem() as system:`` or ``system.start()``
    from inside a running event loop); a stopped system cannot be restarted.
    """

    def __init__(self, system: str, state: str, operation: str) -> None:
        self.system = system
        self.state = state
        self.operation = operation
        super().__init__(
            f"cannot {operation}: actor system {system!r} is {state}; "
            "start it with 'async with ActorSystem()' or system.start() inside a running loop"
        )


class ActorNameTakenError(ActorSystemError, ValueError):
    """An actor was spawned with a name that a live actor of the same system already has.

    Names are unique within a system; pick another name or stop the other actor first.
    """

    def __init__(self, system: str, name: str) -> None:
        self.system = system
        self.name = name
        super().__init__(
            f"actor system {system!r} already has a live actor named {name!r}; "
            "choose another name or stop that actor first"
        )


class WouldBlockLoopError(ActorSystemError, RuntimeError):
    """A blocking wait on a future was attempted on a thread that runs an event loop.

    Blocking there would stop every actor on that loop, including the one that must answer.
    ``await`` the future instead, or call ``.get()`` from another thread.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(
            f"{what} would block the running event loop; await it instead of calling .get()"
        )


class StoreError(CronflowError):
    """Something went wrong in the persistence layer."""


class StoreClosedError(StoreError, RuntimeError):
    """The store was used before ``open()`` or after ``close()``."""

    def __init__(self, store: str, operation: str) -> None:
        self.store = store
        self.operation = operation
        super().__init__(
            f"cannot {operation}: store {store} is not open; call 'await store.open()'"
        )


class SchemaVersionError(StoreError):
    """The database file has a schema newer than this version of cronflow-actors knows.

    Upgrade cronflow-actors, or point it at another database file. Nothing was changed.
    """

    def __init__(self, path: str, found: int, known: int) -> None:
        self.path = path
        self.found = found
        self.known = known
        super().__init__(
            f"database {path!r} is at schema version {found}, but this cronflow-actors knows "
            f"versions up to {known}; upgrade cronflow-actors or use another database file"
        )


class StateValueError(StoreError, TypeError):
    """A key-value operation does not fit the value stored under the key.

    For example ``incr`` on a key that holds a string. Nothing was changed.
    """

    def __init__(self, namespace: str, key: str, operation: str, value: object) -> None:
        self.namespace = namespace
        self.key = key
        self.operation = operation
        self.value = value
        super().__init__(
            f"cannot {operation} key {key!r} in namespace {namespace!r}: it holds "
            f"{type(value).__name__} {value!r}, not a number; delete or set the key first"
        )


class MutationRejectedError(StoreError):
    """A mutation could not be written because it breaks a constraint of the store.

    For example a journal entry or a timer for an instance whose snapshot was never written.
    Nothing of that mutation was written; other mutations of the same batch were.
    """

    def __init__(
        self,
        instance_id: str,
        reason: str,
        hint: str = "write the instance's snapshot before its journal and timers",
    ) -> None:
        self.instance_id = instance_id
        self.reason = reason
        super().__init__(
            f"the mutation for instance {instance_id!r} was rejected and nothing of it was "
            f"written: {reason}; {hint}"
        )


class DuplicateInstanceError(MutationRejectedError):
    """The first snapshot of an instance was written for an id the store already holds.

    The store refuses it (nothing of the mutation is written): ids are claimed by inserting.
    """

    def __init__(self, instance_id: str) -> None:
        super().__init__(
            instance_id,
            "an instance with this id is already stored (or queued)",
            "start it under another id",
        )


class RevisionConflictError(MutationRejectedError):
    """A snapshot was not based on the stored revision of its instance: another writer (a
    second actor or process for the same instance) got there first. Nothing was written; the
    writer's copy of the instance is stale and must be reloaded from the store."""

    def __init__(self, instance_id: str, expected: int, found: int | None) -> None:
        self.expected = expected
        self.found = found
        stored = "no stored snapshot" if found is None else f"stored revision {found}"
        super().__init__(
            instance_id,
            f"it was based on revision {expected}, but the store has {stored}",
            "another writer changed the instance: reload it from the store",
        )


class LeaseError(StoreError):
    """Ownership of a database by one runtime process."""


class LeaseHeldError(LeaseError):
    """Another runtime owns the database (its lease has not expired); this one did not start.

    Stop the other runtime, wait for its lease to expire (after a crash it does so by itself),
    or start with ``wait_for_lease`` (``--wait-for-lease``).
    """

    def __init__(self, database: str, owner: str, host: str, pid: int, expires_in: float) -> None:
        self.database = database
        self.owner = owner
        self.host = host
        self.pid = pid
        self.expires_in = expires_in
        super().__init__(
            f"database {database} is owned by runtime {owner} (pid {pid} on {host}); its lease "
            f"expires in {expires_in:.1f} s unless that runtime renews it. Stop that runtime, or "
            f"start this one with --wait-for-lease to take over once the lease expires"
        )


class LeaseLostError(LeaseError):
    """This runtime's lease on the database was taken by another runtime (it was not renewed in
    time): this runtime stops writing at once. Restart it once the other one has stopped."""

    def __init__(self, database: str, owner: str, holder: str | None) -> None:
        self.database = database
        self.owner = owner
        self.holder = holder
        now = f"runtime {holder} holds it now" if holder else "no runtime holds it now"
        super().__init__(
            f"runtime {owner} lost its lease on database {database} ({now}); it writes nothing "
            f"more; restart it once the other runtime has stopped"
        )


class StoreFailedError(StoreError, RuntimeError):
    """The store's writer failed (the database file was removed or replaced, the disk is full
    or read-only, the lease was lost): nothing more is accepted. What was answered before was
    durable; check the disk and the database file, then restart the runtime."""

    def __init__(self, store: str, reason: str) -> None:
        self.store = store
        self.reason = reason
        super().__init__(
            f"store {store} has failed and accepts no more writes: {reason}; check the database "
            f"file and the disk, then restart the runtime"
        )


class WorkflowDefinitionError(CronflowError, ValueError):
    """A workflow definition cannot be built."""


class InvalidWorkflowError(WorkflowDefinitionError):
    """A workflow definition has problems; every problem found is listed, not just the first.

    Fix them all and build again; nothing was registered.
    """

    def __init__(self, workflow: str, problems: list[str]) -> None:
        self.workflow = workflow
        self.problems = list(problems)
        listing = "\n".join(f"  - {problem}" for problem in self.problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"workflow {workflow!r} has {count} {noun}:\n{listing}")


class InvalidRouteError(CronflowError, ValueError):
    """A task's router returned a route the task cannot take.

    A route must name one of the task's own successors (``ctx.route.to_task(name)`` for a task it
    flows into, ``ctx.route.to_condition(name)`` for a condition); an XOR split takes exactly
    one route, an OR split a list of them.
    """

    def __init__(self, workflow: str, task: str, route: object, reason: str) -> None:
        self.workflow = workflow
        self.task = task
        self.route = route
        super().__init__(
            f"router of task {task!r} in workflow {workflow!r} returned {route!r}: {reason}"
        )


class RetryRequested(CronflowError):
    """Raised by a handler wrapper to ask for another attempt ``delay`` seconds from now.

    The engine records the failed attempt, returns the work item to ``initialized`` and starts it
    again from a durable timer. ``error`` is the attempt's error text.
    """

    def __init__(self, delay: float, error: str) -> None:
        self.delay = delay
        self.error = error
        super().__init__(f"retry in {delay} s after: {error}")


class StepTimeoutError(CronflowError, TimeoutError):
    """A step's handler ran longer than its ``timeout``; it was cancelled. Counts as a failed
    attempt (retries and ``on_error`` apply)."""

    def __init__(self, step: str, seconds: float) -> None:
        self.step = step
        self.seconds = seconds
        super().__init__(f"step {step!r} timed out after {seconds:g} s")


class CircuitOpenError(CronflowError):
    """A step's circuit breaker is open: the step failed too often in a row, so this attempt
    failed at once without running. The breaker lets one attempt through once ``reset`` has
    passed (``retry_in`` seconds from now); retries and ``on_error`` apply as to any failure."""

    def __init__(self, workflow: str, step: str, failures: int, retry_in: float) -> None:
        self.workflow = workflow
        self.step = step
        self.failures = failures
        self.retry_in = retry_in
        super().__init__(
            f"the circuit breaker of step {step!r} of {workflow!r} is open after {failures} "
            f"failures in a row; the step is not run for another {retry_in:g} s"
        )


class EngineError(CronflowError):
    """Something the workflow engine refused or could not do. Nothing was changed."""


class RuntimeNotRunningError(EngineError, RuntimeError):
    """A ``Runtime`` was used before ``start()`` (or ``async with``) or after ``stop()``."""

    def __init__(self, operation: str, state: str) -> None:
        self.operation = operation
        self.state = state
        super().__init__(
            f"cannot {operation}: the runtime is {state}; use 'async with Runtime(...) as rt'"
        )


class UnknownWorkflowError(EngineError, LookupError):
    """No registered workflow has that name (or that version)."""

    def __init__(self, name: str, version: str | None, known: list[str]) -> None:
        self.name = name
        self.version = version
        self.known = known
        what = f"workflow {name!r}" + (f" version {version!r}" if version else "")
        super().__init__(f"{what} is not registered; registered: {known}; call rt.register() first")


class WorkflowDeprecatedError(EngineError):
    """The workflow version is deprecated: running instances go on, new ones are refused."""

    def __init__(self, name: str, version: str, active: list[str]) -> None:
        self.name = name
        self.version = version
        super().__init__(
            f"workflow {name!r} version {version!r} is deprecated and starts no new instances; "
            f"use one of the active versions {active}"
        )


class NotFoundError(EngineError, LookupError):
    """No element of that kind has that id (or name) here."""

    def __init__(self, kind: str, ident: str, where: str = "") -> None:
        self.kind = kind
        self.ident = ident
        place = f" in {where}" if where else ""
        super().__init__(
            f"no {kind} {ident!r}{place}; check the id (ids are returned by the runtime)"
        )


class InstanceExistsError(EngineError):
    """``start_workflow(..., instance_id=...)`` named an instance that already exists."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        super().__init__(f"a workflow instance {instance_id!r} already exists; nothing was started")


class ResumeError(EngineError, LookupError):
    """``resume`` was given a token that is unknown (tokens are random; one cannot be derived
    from a run id), or whose pause has already ended (``ended`` is then True: a conflict, not a
    miss). Nothing was changed."""

    def __init__(self, token: str, reason: str, *, ended: bool = False) -> None:
        self.token = token
        self.ended = ended
        """True when the token is known but its pause is over (a conflict, not a miss)."""
        shown = f"{token[:6]}..." if len(token) > 8 else token
        super().__init__(f"cannot resume {shown!r}: {reason}")


class InvalidEventError(EngineError, ValueError):
    """``publish_event`` was given a payload that the schema of every flow listening for the
    event refused (``on_event(name, schema=...)``). Nothing was started and no waiting step
    was woken. ``refused`` lists each refusal (``workflow``, ``detail``, ``path``: the JSON
    path of the field at fault)."""

    def __init__(self, event: str, refused: Sequence[Any]) -> None:
        self.event = event
        self.refused = list(refused)
        reasons = "; ".join(f"flow {r.workflow!r}: {r.detail}" for r in self.refused)
        super().__init__(
            f"event {event!r} was refused by every flow listening for it, nothing was started: "
            f"{reasons}; send a payload that matches their schema"
        )


class RunFailedError(EngineError):
    """A run's failure as its record keeps it: ``ctx.error`` in an ``on_failure`` hook when the
    exception the failing step raised is not at hand (a timeout failed the run, say).

    ``type`` is the failing exception's class (``module.Name``); its attributes that could be
    stored (numbers, strings, lists, dicts) are in ``attributes`` and read as attributes of this
    error too, so ``ctx.error.code`` works either way.
    """

    def __init__(
        self, message: str, *, type: str | None = None, attributes: dict[str, object] | None = None
    ) -> None:
        self.type = type
        self.attributes = dict(attributes or {})
        super().__init__(message)

    def __getattr__(self, name: str) -> object:
        attributes = self.__dict__.get("attributes") or {}
        if name in attributes:
            return attributes[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


class StepFailedError(RunFailedError):
    """A step's failure as its record keeps it: ``ctx.error`` in the ``on_error`` fallback of a
    ``parallel``, ``race``, ``for_each``, ``batch``, ``subflow`` or ``wait_for_event``, whose
    failure was caught after the fact (``type`` and ``attributes`` as in ``RunFailedError``)."""


class MockLostError(EngineError):
    """A step of a replay with ``mock_steps`` had to run after a restart, and its mock was gone.

    Mocks are code: they are kept in the memory of the runtime that started the replay, never
    in the store. When that runtime stops before the replay ends, the next one runs the replay's
    other steps as usual, but a mocked step that still has to run fails with this error (with
    no retry and no ``on_error`` fallback) rather than run the real handler the mock stood in
    for. Replay the original run again to start over.
    """

    def __init__(self, run_id: str, step: str) -> None:
        self.run_id = run_id
        self.step = step
        super().__init__(
            f"step {step!r} of replay {run_id!r} was mocked, and its mock was lost when the "
            "runtime that started the replay stopped (mocks are never stored); the real "
            "handler was not run. Replay the original run again"
        )


class InvalidStateTransitionError(EngineError):
    """An element was asked to move to a state its current state does not lead to.

    The message names the element, its current state and the requested one; nothing changed.
    """

    def __init__(
        self, kind: str, ident: str, current: str, requested: str, allowed: list[str]
    ) -> None:
        self.kind = kind
        self.ident = ident
        self.current = current
        self.requested = requested
        self.allowed = allowed
        super().__init__(
            f"{kind} {ident!r} is {current!r} and cannot become {requested!r}; "
            f"from {current!r} it can become {allowed}"
        )


class InvalidPolicyResultError(EngineError, ValueError):
    """A completion policy returned something other than "complete", "fail" or "continue"."""

    def __init__(self, workflow: str, task: str, result: object) -> None:
        self.workflow = workflow
        self.task = task
        self.result = result
        super().__init__(
            f"the policy of task {task!r} in workflow {workflow!r} returned {result!r}; "
            "a policy returns 'complete', 'fail' or 'continue'"
        )


class AutoTriggerAlreadySetError(EngineError):
    """An activity set a second auto-trigger (start/complete/fail/cancel) on one work item."""

    def __init__(self, work_item: str, first: str, second: str) -> None:
        self.work_item = work_item
        super().__init__(
            f"work item {work_item!r} already has the auto-trigger {first!r}; "
            f"cannot also set {second!r} in the same activity"
        )


class SchedulingNotAllowedError(EngineError):
    """``register_scheduled`` was called where no element's active life can own the job."""

    def __init__(self, where: str) -> None:
        self.where = where
        super().__init__(
            f"register_scheduled is not available in {where}; use it in on_initialized/on_started "
            "(workflows, work items), on_enabled/on_started/on_*_state_changed (tasks)"
        )


class ActionError(EngineError):
    """An action call was refused before anything changed."""


class InternalOnlyActionError(ActionError, PermissionError):
    """An external caller used an action that has no custom definition (internal-only)."""

    def __init__(self, element: str, action: str) -> None:
        self.element = element
        self.action = action
        super().__init__(
            f"action {action!r} of {element} is internal-only: declare it with "
            "net.action(schema, policy=...) to allow external callers, "
            "or call it internally (principal=None)"
        )


class InvalidPayloadError(ActionError, ValueError):
    """The payload of an action does not match the action's schema."""

    def __init__(self, element: str, action: str, reason: str) -> None:
        self.element = element
        self.action = action
        self.reason = reason
        super().__init__(f"invalid payload for action {action!r} of {element}: {reason}")


class AuthenticationRequiredError(ActionError, PermissionError):
    """An external call came without an identity (a principal with no id)."""

    def __init__(self, element: str, action: str) -> None:
        self.element = element
        self.action = action
        super().__init__(
            f"action {action!r} of {element} needs an authenticated caller; "
            "pass a principal with an id"
        )


class ActionDeniedError(ActionError, PermissionError):
    """The action's authorization policy denied the caller."""

    def __init__(self, element: str, action: str, principal: str) -> None:
        self.element = element
        self.action = action
        self.principal = principal
        super().__init__(
            f"caller {principal!r} may not run action {action!r} of {element}: its policy denied it"
        )
