"""The memory store's key-value space (``ctx.state``, the runtime's own records): the same
answers as the SQLite store's, from one dictionary; values kept as msgpack gives them back."""

from __future__ import annotations

from typing import Any

import msgspec

from cronflow_actors.messages import encode
from cronflow_actors.store._protocol import (
    MISSING,
    check_amount,
    check_ttl,
    incremented,
    is_live,
)

__all__ = ["MemoryKv"]

_decode_value = msgspec.msgpack.Decoder().decode


class MemoryKv:
    """What ``MemoryStore`` keeps under keys."""

    def __init__(self) -> None:
        self._kv: dict[tuple[str, str], tuple[Any, float | None]] = {}
        """(namespace, key) -> (value, when it expires)."""

    def _require_open(self, operation: str) -> None:
        raise NotImplementedError  # the store's own

    def _require_writable(self, operation: str) -> None:
        raise NotImplementedError  # the store's own

    async def kv_set(
        self,
        namespace: str,
        key: str,
        value: Any,
        *,
        now: float,
        ttl: float | None = None,
        keeps: bool = False,  # (one process: a prune and a set never interleave)
    ) -> None:
        self._require_writable(f"set key {key!r}")
        check_ttl(ttl)
        # stored as msgpack, as SQLite stores it: the same values back, and a copy
        stored = _decode_value(encode(value))
        self._kv[(namespace, key)] = (stored, None if ttl is None else now + ttl)

    async def kv_setdefault(
        self, namespace: str, key: str, value: Any, *, now: float, ttl: float | None = None
    ) -> Any:
        entry = self._kv.get((namespace, key))
        if entry is not None and is_live(entry[1], now):
            self._require_open(f"get key {key!r}")
            return entry[0]
        await self.kv_set(namespace, key, value, now=now, ttl=ttl)
        return self._kv[namespace, key][0]

    async def kv_incr(
        self, namespace: str, key: str, amount: float = 1, *, now: float, ttl: float | None = None
    ) -> float:
        self._require_writable(f"incr key {key!r}")
        check_ttl(ttl)
        check_amount(namespace, key, amount)
        value, expires_at = incremented(
            namespace, key, self._kv.get((namespace, key)), amount=amount, now=now, ttl=ttl
        )
        self._kv[(namespace, key)] = (value, expires_at)
        return value

    async def kv_delete(self, namespace: str, key: str) -> bool:
        self._require_writable(f"delete key {key!r}")
        return self._kv.pop((namespace, key), None) is not None

    async def kv_purge_expired(self, now: float) -> int:
        self._require_writable("purge expired keys")
        expired = [k for k, (_, exp) in self._kv.items() if not is_live(exp, now)]
        for k in expired:
            del self._kv[k]
        return len(expired)

    async def kv_get(self, namespace: str, key: str, *, now: float, default: Any = MISSING) -> Any:
        self._require_open(f"get key {key!r}")
        entry = self._kv.get((namespace, key))
        if entry is None or not is_live(entry[1], now):
            return default
        return entry[0]

    async def kv_items(self, namespace: str, *, now: float) -> dict[str, Any]:
        self._require_open(f"list the keys of {namespace!r}")
        kv = self._kv.items()
        return {k: v for (n, k), (v, until) in kv if n == namespace and is_live(until, now)}

    async def kv_stats(self, now: float) -> dict[str, tuple[int, int]]:
        self._require_open("count keys")
        stats: dict[str, tuple[int, int]] = {}
        for (namespace, _key), (_value, expires_at) in self._kv.items():
            keys, expired = stats.get(namespace, (0, 0))
            stats[namespace] = (keys + 1, expired + (not is_live(expires_at, now)))
        return stats
