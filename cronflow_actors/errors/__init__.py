"""Every error cronflow-actors raises, in one tree, in one package.

    CronflowError
    ├── ConfigurationError            a setting has a value that cannot be used
    │   ├── AppLoadError                 the app serve was given raised while it was imported
    │   ├── MissingSecretError           a flow's secret names an environment variable that is unset
    │   └── DuplicateWorkflowError       two definitions under one workflow name and version
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
    │   ├── RuntimeNotRunningError       a Runtime call while it is not running (new, stopping)
    │   │   └── StartGivenUpError           a stop asked while the start waited for the lease
    │   ├── UnknownWorkflowError         no registered workflow (version) has that name
    │   ├── WorkflowDeprecatedError      the version refuses new instances
    │   ├── NotFoundError                no workflow instance / work item / task with that id
    │   │   ├── NoAuditTrailError           a run recorded no audit trail (trace, state_at)
    │   │   └── NotPausedError              a run waits for no person (GET /runs/{id}/pause)
    │   ├── InstanceExistsError          an instance id that is already taken was started again
    │   ├── IdempotencyKeyReusedError    an idempotency key sent again with another payload
    │   ├── ResumeError                  a resume token that is unknown, or whose pause ended
    │   ├── InvalidEventError            every flow listening for an event refused its payload
    │   ├── PublishInterruptedError      a stop or a store cut a publish after it started runs
    │   ├── InstanceBusyError            another process's transaction keeps the run's row locked
    │   ├── CancelRunRequested           a step asked to end its run as canceled (ctx.cancel)
    │   ├── RunFailedError               how a run failed, when its step's exception is not at hand
    │   │   └── StepFailedError             how a caught step failed, read in its on_error fallback
    │   ├── MockLostError                a replay's mocked step ran after a restart lost its mock
    │   ├── NotReplayableError           a replay of a net workflow's instance (no trigger)
    │   ├── EndlessChainError            tasks completed one after another without end in a turn
    │   ├── ReentrantCallError           an instance's own code called the API on that instance
    │   ├── WorkItemLimitError           an outside caller's work item past its task's bound
    │   ├── InstanceTooLargeError        an outside call past the state an instance may hold
    │   ├── MigrationError               a migration that cannot be defined, registered or run
    │   │   └── ReplayRefusedError       a replay or resume refused for where its run stands
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
    │   ├── SnapshotDamagedError         a run's stored snapshot cannot be decoded
    │   └── StateValueError              a key-value operation does not fit the stored value
    └── ApiError                        the CLI's call to a running server was refused or failed
        └── ServerUnreachableError      no server answered it
    ExpectationError (an AssertionError)  a flow test's run did not meet its expectations
    Problem                             an HTTP route answers with an RFC 9457 problem

Every error says what was wrong, on which element, and what to do about it. pykka's own errors
(``ActorDeadError``, ``Timeout``) pass through unchanged; signals private to one module that never
reach a caller (the SQLite writer's refused statement, say) stay in that module.

Import them from here; the modules behind are the tree's branches: ``_base`` (the root,
configuration, definitions, handlers, the actor kernel), ``_store``, ``_engine`` and ``_edges``
(the CLI, flow tests, HTTP problems).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from cronflow_actors.errors._base import LINE_BREAKS as LINE_BREAKS  # (one_line's table)
from cronflow_actors.errors._base import (
    ActorNameTakenError,
    ActorSystemError,
    ActorSystemNotRunningError,
    AppLoadError,
    CircuitOpenError,
    ConfigurationError,
    CronflowError,
    DuplicateWorkflowError,
    InvalidRouteError,
    InvalidWorkflowError,
    MissingSecretError,
    RetryRequested,
    StepTimeoutError,
    WorkflowDefinitionError,
    WouldBlockLoopError,
)
from cronflow_actors.errors._base import class_name as class_name  # a helper, not an error
from cronflow_actors.errors._base import clipped as clipped  # a helper, not an error
from cronflow_actors.errors._base import described as described  # a helper, not an error
from cronflow_actors.errors._base import did_you_mean as did_you_mean  # a helper too
from cronflow_actors.errors._base import one_line as one_line  # a helper, not an error
from cronflow_actors.errors._base import validation_path as validation_path  # a helper too
from cronflow_actors.errors._edges import (
    ApiError,
    ExpectationError,
    Problem,
    ServerUnreachableError,
)
from cronflow_actors.errors._engine import (
    ActionDeniedError,
    ActionError,
    AuthenticationRequiredError,
    AutoTriggerAlreadySetError,
    CancelRunRequested,
    EndlessChainError,
    EngineError,
    IdempotencyKeyReusedError,
    InstanceBlockedError,
    InstanceBusyError,
    InstanceExistsError,
    InstanceTooLargeError,
    InternalOnlyActionError,
    InvalidEventError,
    InvalidPayloadError,
    InvalidPolicyResultError,
    InvalidStateTransitionError,
    MigrationError,
    MockLostError,
    NoAuditTrailError,
    NotFoundError,
    NotPausedError,
    NotReplayableError,
    PublishInterruptedError,
    ReentrantCallError,
    ReplayRefusedError,
    ResumeError,
    RunFailedError,
    RuntimeNotRunningError,
    SchedulingNotAllowedError,
    StartGivenUpError,
    StepFailedError,
    UnknownWorkflowError,
    WorkflowDeprecatedError,
    WorkItemLimitError,
)
from cronflow_actors.errors._store import (
    DuplicateInstanceError,
    LeaseError,
    LeaseHeldError,
    LeaseLostError,
    MutationRejectedError,
    RevisionConflictError,
    SchemaVersionError,
    SnapshotDamagedError,
    StateValueError,
    StoreClosedError,
    StoreError,
    StoreFailedError,
)

__all__ = [
    "ActionDeniedError",
    "ActionError",
    "ActorNameTakenError",
    "ActorSystemError",
    "ActorSystemNotRunningError",
    "ApiError",
    "AppLoadError",
    "AuthenticationRequiredError",
    "AutoTriggerAlreadySetError",
    "CancelRunRequested",
    "CircuitOpenError",
    "ConfigurationError",
    "CronflowError",
    "DuplicateInstanceError",
    "DuplicateWorkflowError",
    "EndlessChainError",
    "EngineError",
    "ExpectationError",
    "IdempotencyKeyReusedError",
    "InstanceBlockedError",
    "InstanceBusyError",
    "InstanceExistsError",
    "InstanceTooLargeError",
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
    "MigrationError",
    "MissingSecretError",
    "MockLostError",
    "MutationRejectedError",
    "NoAuditTrailError",
    "NotFoundError",
    "NotPausedError",
    "NotReplayableError",
    "Problem",
    "PublishInterruptedError",
    "ReentrantCallError",
    "ReplayRefusedError",
    "ResumeError",
    "RetryRequested",
    "RevisionConflictError",
    "RunFailedError",
    "RuntimeNotRunningError",
    "SchedulingNotAllowedError",
    "SchemaVersionError",
    "ServerUnreachableError",
    "SnapshotDamagedError",
    "StartGivenUpError",
    "StateValueError",
    "StepFailedError",
    "StepTimeoutError",
    "StoreClosedError",
    "StoreError",
    "StoreFailedError",
    "UnknownWorkflowError",
    "WorkItemLimitError",
    "WorkflowDefinitionError",
    "WorkflowDeprecatedError",
    "WouldBlockLoopError",
]

# Each class says it lives here, where callers import it from: tracebacks, pickles and the
# error types recorded in runs read ``cronflow_actors.errors.NotFoundError`` whichever branch
# module defines it.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name

INFRASTRUCTURE = (
    StoreClosedError,
    StoreFailedError,
    LeaseError,
    RuntimeNotRunningError,
    ActorSystemNotRunningError,
)
"""What the runtime's own trouble raises (a store closed or failed, a lost lease, a stop), not
user code: where user code's error is recorded as a failure, these pass through (what they
interrupted runs again). A store's refusal of one value (``StateValueError``, a conflict) is not
among them: it would be refused again."""

DEADLINE_TYPE = class_name(StepTimeoutError("", 0))
"""The class a failure its deadline caused records (a job's: a group's, a wait's), as a
``StepTimeoutError`` raised in a handler would."""

_REFUSED_IN = "_cronflow_refused_in"
T = TypeVar("T")


def refuse_call(error: Exception, where: str) -> None:
    """Mark ``error``, which user code (``where``: "the router of task 'if:big' of workflow
    'orders'", say) raised while a call was applied (a start, a resume, an action on a work
    item), as that call's refusal: nothing of the call changed. The error is raised on as it
    is, so a caller still catches its own classes; a note on it says where it came from (its
    traceback shows it), and the HTTP edge answers it as a problem that names ``where``
    (``refused_in``) instead of an unexplained 500; one of the runtime's own classes (a
    ``StateValueError`` of ``ctx.state``) keeps its answer, and names ``where`` in it. The
    runtime's own trouble (``INFRASTRUCTURE``: a stop, a store) is not user code's: not marked.
    The first mark stays (the innermost call)."""
    if isinstance(error, INFRASTRUCTURE) or refused_in(error) is not None:
        return
    error.add_note(f"raised by the {where}: the call was refused and nothing of it changed")
    with contextlib.suppress(AttributeError):  # no __dict__ (__slots__): only the note tells
        setattr(error, _REFUSED_IN, where)


async def refusing_call(call: Awaitable[T], where: str) -> T:
    """``call`` (user code run for a call, ``where``): what it raises refuses that call
    (``refuse_call``)."""
    try:
        return await call
    except Exception as error:
        refuse_call(error, where)
        raise


def refused_in(error: BaseException) -> str | None:
    """Where user code raised ``error`` in a call it made the runtime refuse (``refuse_call``);
    None for any other error."""
    where = getattr(error, _REFUSED_IN, None)
    return where if isinstance(where, str) else None
