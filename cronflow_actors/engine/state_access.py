"""``ctx.state``: persistent key-value state shared by the runs of one workflow.

Backed by the store's key-value table (namespace ``workflow:<name>``), so it survives restarts;
times come from the runtime's clock. ``ttl`` is seconds or a duration string ("30s", "1h", "1w").

Its operations work from both kinds of handler: in an ``async def`` one (on the event loop) each
answers an awaitable (``await ctx.state.get("k")``); in a plain ``def`` one, which runs on a
thread of the blocking pool, each is carried out on the loop while the thread waits, and
answers the value itself (``ctx.state.get("k")``). Without this a ``def`` handler got a
coroutine it could not await: its writes were lost without a word (a warning at best).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from cronflow_actors.errors import ConfigurationError, RuntimeNotRunningError
from cronflow_actors.kernel import Clock
from cronflow_actors.messages import plain
from cronflow_actors.net.durations import parse_duration
from cronflow_actors.store import Store

__all__ = ["StateAccess", "check_key", "storable_value"]


def storable_value(value: Any, setting: str) -> Any:
    """``value`` as the store keeps it, a step's output alike (``plain``: an aware datetime an
    ISO string with its offset); ``ConfigurationError`` naming ``setting`` for one it cannot."""
    try:
        return plain(value)
    except (TypeError, ValueError, OverflowError) as error:
        raise ConfigurationError(
            setting,
            value,
            f"a value the store can keep: None, bools, numbers, strings, bytes, and lists and "
            f"dicts of them ({error})",
        ) from None


def check_key(key: Any, *, empty: bool = True) -> str:
    """A state key as given, if it is one: a string with no NUL (which PostgreSQL's text cannot
    hold: a key is one store's as the other's); with ``empty=False``, not ``""``."""
    if not isinstance(key, str) or "\x00" in key or not (key or empty):
        said = "a string" if empty else "a non-empty string"
        raise ConfigurationError("key", key, f"{said} with no NUL character", named="state")
    return key


class StateAccess:
    """One workflow's persistent state. Each operation answers an awaitable on the event loop
    and its result on any other thread (a plain ``def`` handler's)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        namespace: str,
        publish: Callable[..., Coroutine[Any, Any, Any]] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self.namespace = namespace
        self._loop = asyncio.get_running_loop()  # made on the loop (a run's actor, a hook)
        self._publish = publish
        """Publishes an event (the runtime's ``publish_event``): ``ctx.publish_event``."""

    @classmethod
    def of(cls, services: Any, namespace: str) -> StateAccess:
        """A run's: its engine ``services``' store and clock, and their publisher of events."""
        return cls(services.store, services.clock, namespace, services.publish_event)

    @property
    def publishes(self) -> bool:
        """Whether ``publish_event`` works here: a run's steps', not a hook's or a poll's."""
        return self._publish is not None

    def publish_event(self, name: str, payload: Any, key: str, *, once: bool = False) -> Any:
        """Publish event ``name`` with idempotency key ``key`` (``FlowContext.publish_event``),
        as the other operations are carried out: awaitable on the loop, done on a thread."""
        if self._publish is None:
            raise RuntimeNotRunningError(f"publish event {name!r}", "not serving events here")
        return self._done(self._publish(name, payload, idempotency_key=key, once=once))

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, ``default`` when absent or expired."""
        now = self._clock.now()
        return self._done(
            self._store.kv_get(self.namespace, check_key(key), now=now, default=default)
        )

    def set(self, key: str, value: Any, *, ttl: float | str | None = None) -> Any:
        """Store ``value`` (JSON data) under ``key``, for ``ttl`` (none: for good)."""
        seconds = _ttl(ttl)  # a bad ttl is refused here, before anything is asked of the store
        now, value = self._clock.now(), plain(value)  # as outputs are kept (retest h38 R3)
        return self._done(
            self._store.kv_set(self.namespace, check_key(key), value, now=now, ttl=seconds)
        )

    def incr(self, key: str, amount: float = 1, *, ttl: float | str | None = None) -> Any:
        """Add ``amount`` (absent counts as 0) and answer the new value; a key holding a
        non-number raises ``StateValueError`` and changes nothing."""
        seconds, now = _ttl(ttl), self._clock.now()
        return self._done(
            self._store.kv_incr(self.namespace, check_key(key), amount, now=now, ttl=seconds)
        )

    def delete(self, key: str) -> Any:
        """Remove ``key``; answers whether it was there."""
        return self._done(self._store.kv_delete(self.namespace, check_key(key)))

    def now(self) -> float:
        return self._clock.now()

    def sibling(self, namespace: str) -> StateAccess:
        """The same store and clock, another namespace (the engine's own state of a flow)."""
        return StateAccess(self._store, self._clock, namespace, self._publish)

    def _done(self, operation: Coroutine[Any, Any, Any]) -> Any:
        """``operation`` itself on the runtime's event loop (to await); on another thread, its
        result, carried out on that loop while this thread waits, or, where the thread runs a
        loop of its own (a ``def`` step's ``asyncio.run``), an awaitable of it for that loop."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # no loop here: a blocking handler's thread
            running = None
        loop = self._loop
        if running is loop:
            return operation
        if loop.is_closed() or not loop.is_running():
            operation.close()
            raise RuntimeNotRunningError(f"use ctx.state of {self.namespace!r}", "stopping")
        future = asyncio.run_coroutine_threadsafe(operation, loop)
        return future.result() if running is None else asyncio.wrap_future(future)


def _ttl(ttl: float | str | None) -> float | None:
    return None if ttl is None else parse_duration(ttl, "ttl")
