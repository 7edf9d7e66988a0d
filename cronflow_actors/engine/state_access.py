"""``ctx.state``: persistent key-value state shared by the runs of one workflow.

Backed by the store's key-value table (namespace ``workflow:<name>``), so it survives restarts;
times come from the runtime's clock. ``ttl`` is seconds or a duration string ("30s", "1h", "1w").
"""

from __future__ import annotations

from typing import Any

from cronflow_actors.kernel import Clock
from cronflow_actors.net.durations import parse_duration
from cronflow_actors.store import Store

__all__ = ["StateAccess"]


class StateAccess:
    def __init__(self, store: Store, clock: Clock, namespace: str) -> None:
        self._store = store
        self._clock = clock
        self.namespace = namespace

    async def get(self, key: str, default: Any = None) -> Any:
        return await self._store.kv_get(self.namespace, key, now=self._clock.now(), default=default)

    async def set(self, key: str, value: Any, *, ttl: float | str | None = None) -> None:
        await self._store.kv_set(self.namespace, key, value, now=self._clock.now(), ttl=_ttl(ttl))

    async def incr(self, key: str, amount: float = 1, *, ttl: float | str | None = None) -> float:
        """Add ``amount`` (absent counts as 0); a key holding a non-number raises
        ``StateValueError`` and changes nothing."""
        return await self._store.kv_incr(
            self.namespace, key, amount, now=self._clock.now(), ttl=_ttl(ttl)
        )

    async def delete(self, key: str) -> bool:
        return await self._store.kv_delete(self.namespace, key)

    def now(self) -> float:
        return self._clock.now()

    def sibling(self, namespace: str) -> StateAccess:
        """The same store and clock, another namespace (the engine's own state of a flow)."""
        return StateAccess(self._store, self._clock, namespace)


def _ttl(ttl: float | str | None) -> float | None:
    return None if ttl is None else parse_duration(ttl, "ttl")
