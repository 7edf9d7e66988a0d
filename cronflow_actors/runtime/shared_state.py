"""State shared across runs, from outside them: ``set/get/incr/delete_global_state`` and
``set/get/incr/delete_workflow_state`` on the runtime, ``state_stats`` and
``cleanup_expired_state``.

The same durable key-value store as ``ctx.state``: a flow's state is the namespace
``workflow:<flow id>`` (what its runs' ``ctx.state`` reads and writes), the global state the
namespace ``global``. An expired key reads as absent at once; it takes space until
``cleanup_expired_state()`` (or the runtime's periodic pruning) removes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from cronflow_actors.engine.state_access import check_key, storable_value
from cronflow_actors.errors import ConfigurationError
from cronflow_actors.kernel import Clock
from cronflow_actors.net.durations import parse_duration
from cronflow_actors.store import Store

__all__ = ["GLOBAL", "SharedState", "StateMethods", "StateStats"]

GLOBAL = "global"
_WORKFLOW = "workflow:"


class StateStats(msgspec.Struct, frozen=True, kw_only=True):
    """What ``state_stats()`` counts: keys stored (expired ones included until they are
    cleaned up), of which expired, in the global state and per flow."""

    total_keys: int = 0
    expired_keys: int = 0
    global_keys: int = 0
    workflow_keys: dict[str, int] = msgspec.field(default_factory=dict)


class SharedState:
    """The state API's work: which namespace, checks of keys, values and TTLs, the store."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        known: Callable[[str], object],
        check: Callable[[str], None],
    ) -> None:
        self._store = store
        self._clock = clock
        self._known = known
        """Raises ``NotFoundError`` for a flow id that is not registered."""
        self._check = check
        """Raises ``RuntimeNotRunningError`` when the runtime is not running."""

    def _namespace(self, workflow_id: str | None, operation: str) -> str:
        self._check(operation)
        if workflow_id is None:
            return GLOBAL
        self._known(workflow_id)
        return _WORKFLOW + workflow_id

    async def get(self, workflow_id: str | None, key: str, default: Any) -> Any:
        namespace = self._namespace(workflow_id, "read state")
        check_key(key, empty=False)
        return await self._store.kv_get(namespace, key, now=self._clock.now(), default=default)

    async def set(
        self, workflow_id: str | None, key: str, value: Any, ttl: float | str | None
    ) -> None:
        namespace = self._namespace(workflow_id, "write state")
        check_key(key, empty=False)
        seconds = _seconds(ttl)
        value = storable_value(value, "value")  # as a step's output is kept (retest h38 R3)
        await self._store.kv_set(namespace, key, value, now=self._clock.now(), ttl=seconds)

    async def incr(
        self, workflow_id: str | None, key: str, amount: float, ttl: float | str | None
    ) -> float:
        namespace = self._namespace(workflow_id, "write state")
        check_key(key, empty=False)
        return await self._store.kv_incr(
            namespace, key, amount, now=self._clock.now(), ttl=_seconds(ttl)
        )

    async def delete(self, workflow_id: str | None, key: str) -> bool:
        namespace = self._namespace(workflow_id, "write state")
        check_key(key, empty=False)
        return await self._store.kv_delete(namespace, key)

    async def stats(self) -> StateStats:
        self._check("read state")
        per_namespace = await self._store.kv_stats(self._clock.now())
        total = expired = 0
        workflows: dict[str, int] = {}
        for namespace, (keys, dead) in sorted(per_namespace.items()):
            if namespace.startswith(_WORKFLOW):
                workflows[namespace.removeprefix(_WORKFLOW)] = keys
            elif namespace != GLOBAL:
                continue  # the runtime's own bookkeeping (schedules, replays)
            total += keys
            expired += dead
        return StateStats(
            total_keys=total,
            expired_keys=expired,
            global_keys=per_namespace.get(GLOBAL, (0, 0))[0],
            workflow_keys=workflows,
        )

    async def cleanup(self) -> int:
        self._check("write state")
        return await self._store.kv_purge_expired(self._clock.now())


class StateMethods:
    """The state API of ``Runtime`` (which inherits it): every call goes to its
    ``shared_state``. A flow's state is what its runs' ``ctx.state`` reads and writes; the
    flow must be registered (``NotFoundError`` otherwise). Keys are non-empty strings; ``ttl``
    is seconds or a duration ("30s", "1h", "1w"); a bad key, value or TTL raises
    ``ConfigurationError`` and changes nothing. Every write is durable when the call returns."""

    shared_state: SharedState

    async def get_global_state(self, key: str, default: Any = None) -> Any:
        """The value under ``key`` in the global state (``default`` if absent or expired)."""
        return await self.shared_state.get(None, key, default)

    async def set_global_state(
        self, key: str, value: Any, *, ttl: float | str | None = None
    ) -> None:
        """Set ``key`` in the global state (expiring ``ttl`` from now, if given)."""
        await self.shared_state.set(None, key, value, ttl)

    async def incr_global_state(
        self, key: str, amount: float = 1, *, ttl: float | str | None = None
    ) -> float:
        """Add ``amount`` to the number under ``key`` (absent counts as 0); returns the new
        value. ``StateValueError`` (nothing changed) if the key holds something else. Without
        ``ttl`` an existing expiry is kept."""
        return await self.shared_state.incr(None, key, amount, ttl)

    async def delete_global_state(self, key: str) -> bool:
        """Delete ``key`` from the global state; True if it was there."""
        return await self.shared_state.delete(None, key)

    async def get_workflow_state(self, workflow_id: str, key: str, default: Any = None) -> Any:
        """The value under ``key`` in a flow's state: what its runs' ``ctx.state.get`` read."""
        return await self.shared_state.get(workflow_id, key, default)

    async def set_workflow_state(
        self, workflow_id: str, key: str, value: Any, *, ttl: float | str | None = None
    ) -> None:
        """Set ``key`` in a flow's state (its runs' ``ctx.state`` sees it at once)."""
        await self.shared_state.set(workflow_id, key, value, ttl)

    async def incr_workflow_state(
        self, workflow_id: str, key: str, amount: float = 1, *, ttl: float | str | None = None
    ) -> float:
        """``incr_global_state`` on a flow's state."""
        return await self.shared_state.incr(workflow_id, key, amount, ttl)

    async def delete_workflow_state(self, workflow_id: str, key: str) -> bool:
        """Delete ``key`` from a flow's state; True if it was there."""
        return await self.shared_state.delete(workflow_id, key)

    async def state_stats(self) -> StateStats:
        """How many keys the global state and each flow's state hold, and how many of them
        have expired (they read as absent, and take space until cleaned up)."""
        return await self.shared_state.stats()

    async def cleanup_expired_state(self) -> int:
        """Delete every expired key now (the runtime also does it each time it prunes finished
        runs); returns how many."""
        return await self.shared_state.cleanup()


def _seconds(ttl: float | str | None) -> float | None:
    if ttl is None:
        return None
    try:
        seconds = parse_duration(ttl, "ttl")
    except ValueError as error:
        raise ConfigurationError("ttl", ttl, str(error)) from None
    if seconds <= 0:
        raise ConfigurationError("ttl", ttl, "a duration longer than 0 ('30s', '1h', '1w')")
    return seconds
