"""The persistence layer's errors: a closed store, a newer schema, refused mutations, leases."""

from __future__ import annotations

import os
import socket

from cronflow_actors.errors._base import CronflowError


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


class SnapshotDamagedError(StoreError):
    """A run's stored snapshot cannot be decoded: the database was damaged or written to by
    something other than cronflow-actors. Nothing was changed."""

    def __init__(self, instance_id: str, error: Exception) -> None:
        self.instance_id, self.error = instance_id, error
        advice = (
            "restore the database from a backup, or take the run's row out of the instances "
            "table (every other run is stored apart and goes on)"
        )
        super().__init__(f"the snapshot of run {instance_id!r} cannot be read ({error}); {advice}")


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
    """Another runtime owns the database (its lease has not expired); this one did not start
    (``upgrade``: it would have upgraded the file's schema under that runtime)."""

    def __init__(
        self,
        database: str,
        owner: str,
        host: str,
        pid: int,
        expires_in: float,
        *,
        upgrade: bool = False,
    ) -> None:
        self.database, self.owner, self.host, self.pid = database, owner, host, pid
        self.expires_in = expires_in
        alive = _alive(host, pid)
        gone = (
            " (no process has that pid on this host now: unless it ran in a container of the "
            "same host name, it ended, a crash most likely, and its lease lapses by itself)"
            if alive is False
            else ""
        )
        under = " (its schema is upgraded only once no older runtime writes to it)"
        if alive:  # waiting would wait for as long as it runs (newcomer h44 F1)
            advice = (
                f"That runtime runs on this host: stop it (kill {pid}: it drains and releases "
                "the lease, and this one can start), or give this one a database of its own "
                "(--db; DB=other.db with make run); --wait-for-lease would wait until it stops"
            )
        else:
            advice = (
                "Stop that runtime, or start this one with --wait-for-lease (serve, as a "
                "supervisor that restarts it should; CRONFLOW_WAIT_FOR_LEASE=1 make run) or "
                "wait_for_lease=True (Runtime) to take over once the lease expires"
            )
        super().__init__(
            f"database {database} is owned by runtime {owner} (pid {pid} on {host}){gone}"
            f"{under if upgrade else ''}; its lease expires in {expires_in:.1f} s unless that "
            f"runtime renews it. {advice}. To start runs while that runtime serves, call its "
            "API (POST /runs, cronflow-actors run) instead"
        )


def _alive(host: str, pid: int) -> bool | None:
    """Whether ``pid`` names a process on this host (the lease's holder runs), or none (it
    ended); None for another host's. Said only: a lease is never taken on it (another
    container of the same host name may hold it)."""
    if host != socket.gethostname() or pid <= 0:
        return None
    if pid == os.getpid():  # this very process: the holder ended, and its pid came round to
        return False  # this one (a container's PID 1 restarted: retest h44 N2)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # there, and another user's
        return True
    return True


class LeaseLostError(LeaseError):
    """This runtime's lease was taken by another runtime (or, on a database several processes
    share, expired): it stops writing at once."""

    def __init__(
        self, database: str, owner: str, holder: str | None, *, shared: bool = False
    ) -> None:
        self.database, self.owner, self.holder = database, owner, holder
        if shared:  # one of several processes: the others go on, and take its runs over
            super().__init__(
                f"process {owner} lost its lease on database {database} (it expired: the "
                "process was paused or cut off too long); the other processes take over the "
                "runs it held; it writes nothing more; restart it to join again"
            )
            return
        now = f"runtime {holder} holds it now" if holder else "no runtime holds it now"
        advice = "restart it once the other runtime has stopped"
        lost = f"runtime {owner} lost its lease on database {database} ({now})"
        super().__init__(f"{lost}; it writes nothing more; {advice}")


class StoreFailedError(StoreError, RuntimeError):
    """The store's writer failed (file gone, disk full, lease lost): nothing more is accepted."""

    def __init__(self, store: str, reason: str) -> None:
        self.store, self.reason = store, reason
        advice = (
            "check that the database server is up and takes this process's connections, then "
            "restart the runtime"  # (a file's words were given for a server's: pg h40 F2)
            if store.startswith(("postgresql://", "postgres://"))
            else "check the database file and the disk, then restart the runtime"
        )
        super().__init__(f"store {store} has failed and accepts no more writes: {reason}; {advice}")
