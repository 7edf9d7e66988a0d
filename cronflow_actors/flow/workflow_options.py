"""Workflow-level options of ``cf.define``: ``RateLimit``, named queues, and what a flow says
about itself (name, description, tags). ``build()`` checks them with the rest of a definition.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from cronflow_actors.calls import callback_problem
from cronflow_actors.flow.options import HOOK_NAMES, Hooks
from cronflow_actors.net.durations import parse_duration

__all__ = ["QUEUE_PREFIX", "RateLimit", "metadata_problems", "queue_key", "rate_limit_of"]

QUEUE_PREFIX = "queue:"
"""Named queues share the durable queue table with the flows' own queues (whose key is the
flow's id); their key carries this prefix."""

_QUEUE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


class RateLimit(msgspec.Struct, frozen=True, kw_only=True):
    """At most ``count`` runs of the flow start in any window of ``per`` ("1m", "1h", or
    seconds): a sliding window over the runs' start times, which the store keeps, so a restart
    does not reset it. A run over the limit is not dropped: it waits in the flow's durable
    FIFO queue and starts as soon as the window allows. ``{"count": 10, "per": "1m"}`` is
    accepted wherever a ``RateLimit`` is."""

    count: int
    per: float | str

    @property
    def seconds(self) -> float:
        """The window in seconds."""
        return parse_duration(self.per, "rate_limit per")

    def problems(self) -> list[str]:
        found = []
        count = self.count
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            found.append(f"rate_limit count must be a whole number >= 1, got {count!r}")
        try:
            if parse_duration(self.per, "rate_limit per") <= 0:
                found.append(f"rate_limit per must be longer than 0, got {self.per!r}")
        except ValueError as error:
            found.append(str(error))
        return found


def rate_limit_of(value: Any, problems: list[str]) -> RateLimit | None:
    """A ``RateLimit`` from what ``define(rate_limit=...)`` was given (a ``RateLimit``, or a
    dict with ``count`` and ``per``); what is wrong goes into ``problems``."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        unknown = sorted(str(k) for k in value if k not in ("count", "per"))
        missing = [k for k in ("count", "per") if k not in value]
        if unknown or missing:
            problems.append(
                "rate_limit takes cf.RateLimit(count=..., per=...) or a dict with the keys "
                f"'count' and 'per'; got {dict(value)!r}"
            )
            return None
        value = RateLimit(count=value["count"], per=value["per"])
    if not isinstance(value, RateLimit):
        problems.append(
            f"rate_limit takes cf.RateLimit(count=..., per=...) or a dict, got {value!r}"
        )
        return None
    found = value.problems()
    problems.extend(found)
    return None if found else value


def hooks_of(value: Any, problems: list[str]) -> Hooks:
    """The ``Hooks`` ``define(hooks=...)`` was given: a ``cf.Hooks``, or a dict of the hooks
    by name (``on_success``, or Cronflow's ``onSuccess``); what is wrong goes into
    ``problems`` (and no hook is kept)."""
    if value is None or isinstance(value, Hooks):
        return checked_hooks(value or Hooks(), problems)
    takes = "cf.Hooks(on_start=, on_success=, on_failure=, on_complete=) or a dict of them"
    if not isinstance(value, Mapping):
        problems.append(f"hooks takes {takes}, got {value!r}")
        return Hooks()
    named: dict[str, Any] = {}
    unknown: list[str] = []
    for key, hook in value.items():
        name = _CRONFLOW_HOOKS.get(str(key), str(key))
        if name not in HOOK_NAMES:
            unknown.append(repr(key))
        elif name in named:
            problems.append(f"hooks names {name} twice (as {name!r} and as Cronflow's name)")
        named[name] = hook
    if unknown:
        problems.append(f"hooks takes {takes}; unknown: {', '.join(unknown)}")
    return Hooks() if unknown else checked_hooks(Hooks(**named), problems)


def checked_hooks(hooks: Hooks, problems: list[str]) -> Hooks:
    """``hooks``, each of which is called ``hook(ctx)``: one that is no function, or cannot
    take one argument, goes into ``problems`` (it would fail each run, after the run ended)."""
    for name in HOOK_NAMES:
        hook = getattr(hooks, name)
        if hook is not None:
            said = callback_problem(hook, 1, f"hooks {name}", f"{name}(ctx)")
            if said is not None:
                problems.append(said)
    return hooks


_CRONFLOW_HOOKS = {
    "onStart": "on_start",
    "onSuccess": "on_success",
    "onFailure": "on_failure",
    "onComplete": "on_complete",
}


def queue_key(name: str) -> str:
    """The key of a named queue's runs in the queue table."""
    return QUEUE_PREFIX + name


def metadata_problems(
    *, name: Any, description: Any, tags: Any, queue: Any, secrets: Any
) -> list[str]:
    """What is wrong with the options of ``define`` that describe the flow or say where its
    runs wait (the others are checked where they are parsed)."""
    found = []
    if name is not None and (not isinstance(name, str) or not name.strip()):
        found.append(f"name must be a non-empty string, got {name!r}")
    if description is not None and not isinstance(description, str):
        found.append(f"description must be a string, got {description!r}")
    if isinstance(tags, str | bytes) or not isinstance(tags, Iterable):
        found.append(f"tags must be a list of strings, got {tags!r}")
    else:
        bad = [tag for tag in tags if not isinstance(tag, str) or not tag.strip()]
        if bad:
            found.append(f"every tag must be a non-empty string, got {bad!r}")
    if queue is not None and (not isinstance(queue, str) or not _QUEUE_NAME.fullmatch(queue)):
        found.append(
            f"queue must be a name of 1-100 letters, digits, '.', '-' or '_', got {queue!r}"
        )
    if secrets is not None:
        from cronflow_actors.flow.secrets import secrets_problems

        found.extend(secrets_problems(secrets))
    return found
