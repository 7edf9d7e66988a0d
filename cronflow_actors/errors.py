"""Every error cronflow-actors raises, in one tree.

    CronflowError
    ├── ConfigurationError            a setting has a value that cannot be used
    ├── ActorSystemError
    │   ├── ActorSystemNotRunningError   spawn or lookup on a system that is not running
    │   ├── ActorNameTakenError          an actor was spawned with a name already in use
    │   └── WouldBlockLoopError          a blocking wait was attempted on the event loop thread
    ├── WorkflowDefinitionError
    │   └── InvalidWorkflowError        a workflow definition has problems (all listed at once)
    ├── InvalidRouteError               a router returned a route the task cannot take
    └── StoreError
        ├── StoreClosedError             the store was used before open() or after close()
        ├── SchemaVersionError           the database was written by a newer cronflow-actors
        ├── MutationRejectedError        a mutation broke a constraint (nothing of it was written)
        └── StateValueError              a key-value operation does not fit the stored value

Errors raised by pykka itself (``pykka.ActorDeadError``, ``pykka.Timeout``) pass through unchanged,
so code written against pykka keeps working.

Every error says what was wrong, on which element, and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "ActorNameTakenError",
    "ActorSystemError",
    "ActorSystemNotRunningError",
    "ConfigurationError",
    "CronflowError",
    "InvalidRouteError",
    "InvalidWorkflowError",
    "MutationRejectedError",
    "SchemaVersionError",
    "StateValueError",
    "StoreClosedError",
    "StoreError",
    "WorkflowDefinitionError",
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

    def __init__(self, instance_id: str, reason: str) -> None:
        self.instance_id = instance_id
        self.reason = reason
        super().__init__(
            f"the mutation for instance {instance_id!r} was rejected and nothing of it was "
            f"written: {reason}; write the instance's snapshot before its journal and timers"
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
