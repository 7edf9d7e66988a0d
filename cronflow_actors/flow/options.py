"""Step and workflow options: ``Retry`` (attempts, backoff, jitter, filter, callback),
``Cache`` and ``CircuitBreaker`` (shared by a step's runs, kept in the store), and ``Hooks``
(per run: the end's at least once)."""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from cronflow_actors.net.durations import parse_duration

__all__ = [
    "BACKOFFS",
    "HOOK_NAMES",
    "Cache",
    "CircuitBreaker",
    "Hooks",
    "Retry",
    "bare_number",
    "from_mapping",
]

BACKOFFS = ("fixed", "linear", "exponential")


class Retry(msgspec.Struct, frozen=True, kw_only=True):
    """How a failing step is tried again.

    ``attempts`` counts every try (3: one try and two retries). The delay before retry ``n``
    (1-based) is ``delay`` (fixed), ``delay * (1 + (n - 1) * multiplier)`` (linear) or
    ``delay * multiplier ** (n - 1)`` (exponential), as Cronflow computes them; ``multiplier``
    is 2 for exponential and 1 for linear unless given. With ``jitter`` it is scaled by a
    random factor in [0.5, 1.5); either way it never exceeds ``max_delay``. ``retry_on`` (an
    exception class, any iterable of them, or ``fn(error) -> bool``) limits which errors are
    retried; by default every error is. ``on_retry(ctx, error, attempt, delay)`` is called
    before each retry; if it raises, the error is logged and the retry goes on. A timed-out
    attempt counts as a failed one.
    """

    attempts: int = 3
    backoff: str = "exponential"
    delay: float | str = "1s"
    max_delay: float | str | None = None
    multiplier: float | None = None
    jitter: bool = False
    retry_on: Any = None
    on_retry: Any = None

    def problems(self, where: str) -> list[str]:
        found = []
        attempts = self.attempts
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
            found.append(f"{where}: retry attempts must be a whole number >= 1, got {attempts!r}")
        if self.backoff not in BACKOFFS:
            choices = list(BACKOFFS)
            found.append(f"{where}: retry backoff must be one of {choices}, got {self.backoff!r}")
        for name in ("delay", "max_delay"):
            value = getattr(self, name)
            if value is not None:
                try:
                    parse_duration(value, f"retry {name}")
                except ValueError as error:
                    found.append(f"{where}: {error}")
        if not isinstance(self.jitter, bool):  # ("lots", -5: on, silently: devx h40 F13)
            found.append(f"{where}: retry jitter must be True or False, got {self.jitter!r}")
        multiplier = self.multiplier
        if multiplier is not None and (
            not isinstance(multiplier, int | float)
            or isinstance(multiplier, bool)
            or multiplier < 1
        ):
            found.append(f"{where}: retry multiplier must be a number >= 1, got {multiplier!r}")
        if self.retry_on is not None and _classes(self.retry_on) is None:
            found.append(
                f"{where}: retry_on takes an exception class, an iterable of them, or "
                f"fn(error) -> bool; got {self.retry_on!r}"
            )
        elif _is_async(self.retry_on):  # never awaited, its coroutine read as "retry" (devx
            # h40 F2): it is asked where nothing awaits, an event's timeout at definition
            found.append(
                f"{where}: retry_on must be a plain function, fn(error) -> bool, not an async "
                f"one: it decides from the error alone; got {self.retry_on!r}"
            )
        if self.on_retry is not None and not callable(self.on_retry):
            found.append(f"{where}: on_retry must be a function")
        return found

    def should_retry(self, error: BaseException) -> bool:
        if self.retry_on is None:
            return True
        classes = _classes(self.retry_on)
        if classes:
            return isinstance(error, classes)
        asked = self.retry_on(error)
        if inspect.isawaitable(asked):  # (an object whose __call__ is async, say)
            if inspect.iscoroutine(asked):
                asked.close()
            raise TypeError(f"retry_on returned {asked!r}, not a bool: give a plain function")
        return bool(asked)

    def delay_before(self, retry: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        base = parse_duration(self.delay, "retry delay")
        if self.backoff == "fixed":
            delay = base
        elif self.backoff == "linear":
            delay = base * (1 + (retry - 1) * (self.multiplier or 1.0))
        else:
            delay = base * (self.multiplier or 2.0) ** (retry - 1)
        if self.jitter:
            delay *= 0.5 + rng()
        if self.max_delay is not None:
            delay = min(delay, parse_duration(self.max_delay, "retry max_delay"))
        return delay


class Cache(msgspec.Struct, frozen=True, kw_only=True):
    """A step's output kept by ``key(ctx)`` (a string) for ``ttl`` ("1h", seconds; None: until
    deleted): a later run of the step with the same key gets it without running the handler.
    Shared by every run of the flow, kept in the store (it survives restarts); a failed step
    caches nothing."""

    key: Any
    ttl: float | str | None = None

    def problems(self, where: str) -> list[str]:
        found = []
        if not callable(self.key):
            found.append(f"{where}: cache key must be a function key(ctx) -> str, got {self.key!r}")
        if self.ttl is not None:
            try:
                if parse_duration(self.ttl, "cache ttl") <= 0:
                    found.append(f"{where}: cache ttl must be longer than 0, got {self.ttl!r}")
            except ValueError as error:
                found.append(f"{where}: {error}")
        return found


class CircuitBreaker(msgspec.Struct, frozen=True, kw_only=True):
    """Fail fast when a step keeps failing: after ``failures`` failed attempts in a row (of any
    of the flow's runs) the breaker opens, and for ``reset`` ("30s", seconds) every attempt of
    the step fails at once with ``CircuitOpenError`` without running it; then one attempt is let
    through: a success closes the breaker, a failure opens it again. ``errors`` (exception
    classes) limits which failures count. Kept in the store, per flow and step."""

    failures: int = 5
    reset: float | str = "30s"
    errors: Any = None

    def problems(self, where: str) -> list[str]:
        found = []
        failures = self.failures
        if not isinstance(failures, int) or isinstance(failures, bool) or failures < 1:
            found.append(
                f"{where}: circuit_breaker failures must be a whole number >= 1, got {failures!r}"
            )
        try:
            if parse_duration(self.reset, "circuit_breaker reset") <= 0:
                found.append(f"{where}: circuit_breaker reset must be longer than 0")
        except ValueError as error:
            found.append(f"{where}: {error}")
        if self.errors is not None and not _classes(self.errors):
            found.append(
                f"{where}: circuit_breaker errors takes exception classes, got {self.errors!r}"
            )
        return found

    def counts(self, error: BaseException) -> bool:
        classes = _classes(self.errors) if self.errors is not None else None
        return not classes or isinstance(error, classes)


def _classes(value: Any) -> tuple[type[BaseException], ...] | None:
    """``retry_on`` as a tuple of exception classes; ``()`` for a function; None if it is
    neither (a string, a list holding something else)."""
    if isinstance(value, type):
        return (value,) if issubclass(value, BaseException) else None
    if callable(value):
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return None
    items = tuple(value)
    if items and all(isinstance(v, type) and issubclass(v, BaseException) for v in items):
        return items
    return None


class Hooks(msgspec.Struct, frozen=True, kw_only=True):
    """Called once the change is durable: ``on_start(ctx)`` when a run starts (at most once),
    ``on_success(ctx)`` when it completes, ``on_failure(ctx)`` (with ``ctx.error``) when it
    fails, then ``on_complete(ctx)`` when it ends whichever way (completed, failed or canceled;
    ``ctx.error`` set if it failed): the end's hooks at least once, called again after a crash
    or a stop that cut them (``engine/endings.py``). Errors in hooks are logged and change
    nothing."""

    on_success: Any = None
    on_failure: Any = None
    on_start: Any = None
    on_complete: Any = None


HOOK_NAMES = ("on_start", "on_success", "on_failure", "on_complete")


# Cronflow's spellings of the options' fields, as its option objects have them
_RETRY_KEYS = {
    "attempts": "attempts",
    "backoff": "backoff",
    "strategy": "backoff",
    "delay": "delay",
    "max_delay": "max_delay",
    "maxDelay": "max_delay",
    "multiplier": "multiplier",
    "jitter": "jitter",
    "retry_on": "retry_on",
    "retryOn": "retry_on",
    "on_retry": "on_retry",
    "onRetry": "on_retry",
}
_CACHE_KEYS = {"key": "key", "ttl": "ttl"}
_BREAKER_KEYS = {
    "failures": "failures",
    "failureThreshold": "failures",
    "reset": "reset",
    "recoveryTimeout": "reset",
    "errors": "errors",
    "expectedErrors": "errors",
}
_DURATIONS = ("delay", "max_delay", "ttl", "reset")
_BACKOFF_FIELDS = ("backoff", "delay", "max_delay", "multiplier", "jitter")
"""What Cronflow's nested ``backoff`` may hold (its ``strategy`` is the backoff here)."""


def from_mapping(
    kind: type[Retry | Cache | CircuitBreaker], value: Mapping[Any, Any], where: str
) -> Retry | Cache | CircuitBreaker | list[str]:
    """A ``Retry``, ``Cache`` or ``CircuitBreaker`` from the dict Cronflow takes for it
    (``{attempts, backoff: {strategy, delay, maxDelay, multiplier}, retryOn, onRetry}``,
    ``{key, ttl}``, ``{failureThreshold, recoveryTimeout, expectedErrors}``; either spelling of
    a field), or the list of what is wrong with the dict. Its durations need their unit
    ("500ms", "1s"): Cronflow's bare numbers are milliseconds, this runtime's seconds."""
    keys = _RETRY_KEYS if kind is Retry else _CACHE_KEYS if kind is Cache else _BREAKER_KEYS
    given = [(key, item, "") for key, item in value.items()]
    backoff = value.get("backoff")
    if kind is Retry and isinstance(backoff, Mapping):  # Cronflow's nested backoff: its fields
        given = [entry for entry in given if entry[0] != "backoff"]
        given += [(key, item, "backoff") for key, item in backoff.items()]
    fields: dict[str, Any] = {}
    places: dict[str, str] = {}
    wrong: list[str] = []
    for key, item, place in given:
        name = keys.get(key) if isinstance(key, str) else None
        if place and name not in _BACKOFF_FIELDS:
            shown = ", ".join(
                repr(k) for k, v in keys.items() if v in _BACKOFF_FIELDS and k != "backoff"
            )
            wrong.append(f"{where}: backoff holds {shown}; {key!r} is no key of it")
        elif name is None:
            wrong.append(f"{where}: unknown key {key!r} (it takes {', '.join(map(repr, keys))})")
        elif name in fields:
            at = f"at the top and in {place or places[name]}" if place != places[name] else ""
            wrong.append(f"{where}: {name} is given twice ({at or 'by both of its names'})")
        elif name in _DURATIONS and (unitless := bare_number(item, f"{where}: {key}")):
            wrong.append(unitless)
        else:
            fields[name] = item
            places[name] = place
    if kind is Cache and "key" not in fields and not wrong:
        wrong.append(f"{where}: a cache needs its key: {{'key': fn(ctx) -> str, 'ttl': '1h'}}")
    return wrong or kind(**fields)


def bare_number(value: Any, what: str) -> str | None:
    """What is wrong with ``value`` as a duration in one of Cronflow's dicts: a bare number,
    which Cronflow read as milliseconds and this runtime as seconds (None: not a number)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return (
        f"{what} {value!r} has no unit: write {f'{value}ms'!r} (Cronflow's numbers are "
        f"milliseconds) or {f'{value}s'!r}"
    )


def _is_async(fn: Any) -> bool:
    """Whether calling ``fn`` gives a coroutine: an ``async def`` function, a partial of one,
    or an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 (its __call__'s kind, not whether callable)
    )
