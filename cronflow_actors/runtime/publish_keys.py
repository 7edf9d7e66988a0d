"""What a keyed publish keeps (``runtime/events.py``): the names of its runs and records, its
payload's digest, and the trouble that cuts its deliveries."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import msgspec

from cronflow_actors.errors import ConfigurationError

__all__ = [
    "ABSENT",
    "ANOTHER",
    "ANSWERS",
    "DRIVERS",
    "FIRST",
    "KEYS",
    "KEY_DAYS",
    "PUBLISHES",
    "STEP_KEYS",
    "Cut",
    "Trouble",
    "canonical",
    "checked_key",
    "named",
]


DRIVERS = ("asyncpg", "sqlite3", "aiosqlite")
"""The modules of the database drivers, whose errors are the store's trouble, not a filter's."""


class Trouble(Exception):
    """A delivery the runtime's own trouble cut (``error``): a lost lease, a store failed."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Cut(Trouble):
    """The deliveries of a publish cut by ``error``, after the runs ``delivered`` heard it and
    those ``held`` kept it."""

    def __init__(self, error: BaseException, delivered: list[str], held: list[str]) -> None:
        super().__init__(error)
        self.delivered, self.held = delivered, held


PUBLISHES = uuid.UUID("5b0f3d1e-8f2a-4c71-9e3b-2d6a7c4e1f90")
"""The namespace of the run ids a publish's idempotency key names."""
KEYS = "cronflow:publish-keys"
"""Where the digest of each keyed publish's payload is kept (``Events._same_payload``)."""
KEY_DAYS = 30
"""How long a publish's idempotency key names its payload (as a webhook's key is kept with its
run, 30 days by default)."""
FIRST = "cronflow:publish-first"
"""The payload a step's first attempt published under its own key (``Events._first_payload``)."""
ANSWERS = "cronflow:publish-answers"
"""The runs a keyed publish reached that a retry of it can no longer find: those that held it
and those whose waiting step heard it (``Events._as_before``), kept as long as its key."""
canonical = msgspec.msgpack.Encoder(order="sorted").encode
"""A payload's bytes whatever the order of its keys (its digest: two retries compare)."""
ANOTHER = (
    "its run under this idempotency key was started by a publish of another payload (a retry "
    "freed the key meanwhile); nothing was started: publish with a key of its own"
)


ABSENT = object()
STEP_KEYS = "\x1fstep\x1f"
"""Before a step's own key (a ``once`` publish): a namespace no caller's key is in (control
characters are refused in them), so a client that read a step's id cannot publish first under
its key with its own payload, failing the step for good (hostile h29 H1)."""


def checked_key(key: Any, limit: int = 200) -> str | None:
    if key is None or key == "":
        return None
    if not isinstance(key, str) or len(key) > limit or not key.isprintable():
        said = f"a string of up to {limit} printable characters (no control one)"
        raise ConfigurationError("idempotency_key", key, said)
    return key


def named(key: str, event: str, flow: str) -> str:
    """What names flow ``flow``'s run that the publish of ``event`` with ``key`` starts (its
    id: ``derived_run_id``), or, with no flow, the publish itself in what held runs keep."""
    return hashlib.sha256(f"{event}\0{flow}\0{key}".encode("utf-8", "surrogatepass")).hexdigest()
