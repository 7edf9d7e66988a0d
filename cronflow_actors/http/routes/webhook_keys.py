"""A webhook's idempotency key in its canonical form: one JSON form per value, so that keys are
compared by value and type (0 and false two keys, 2 and 2.0 one); and the run id a key names."""

from __future__ import annotations

import hashlib
import logging
import math
import reprlib
import uuid
from typing import Any

import msgspec

from cronflow_actors.http.problems import Problem
from cronflow_actors.runtime.ids import derived_run_id, legacy_run_id

__all__ = [
    "NotAKey",
    "body_digest",
    "canonical",
    "canonical_key",
    "legacy_run_id_of",
    "run_id_of",
    "shown",
]

logger = logging.getLogger("cronflow_actors.http.routes.webhooks")

_NAMESPACE = uuid.UUID("0d5b8f5e-4a6b-4c2f-9d71-6b1f0b2a3c44")


def run_id_of(flow_id: str, name: str) -> str:
    """The id of the run of ``flow_id`` that ``name`` (a key, or a signature's) names
    (``hook:...``, an id no client may choose: ``runtime/ids.py``)."""
    return derived_run_id("hook", _NAMESPACE, _named(flow_id, name))


def legacy_run_id_of(flow_id: str, name: str) -> str:
    """The id earlier versions gave that run (a client could choose it too: a run found under
    it is the request's only if a webhook started it)."""
    return legacy_run_id(_NAMESPACE, _named(flow_id, name))


def _named(flow_id: str, name: str) -> str:
    return f"{flow_id}|{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()}"


def canonical_key(value: Any, webhook: str) -> bytes:
    """``value`` as canonical JSON; a 500 naming the ``idempotency_key`` callback of
    ``webhook`` when it is no JSON value (logged: the flow's code is at fault, not the
    request)."""
    try:
        return msgspec.json.encode(canonical(value), order="sorted")
    except NotAKey as refused:
        holding = "" if refused.part is value else f", holding {shown(refused.part)}"
        detail = (
            f"the webhook's idempotency_key callback returned {shown(value)}{holding}, "
            "which is no key: return a string, a number, a bool, or lists and objects "
            "(string keys) of them; None or '' for no key"
        )
        logger.error("the idempotency_key callback of webhook %s: %s", webhook, detail)
        raise Problem(500, "webhook-callback-failed", detail, callback="idempotency_key") from None


class NotAKey(Exception):
    """A part of an idempotency key that has no canonical JSON form."""

    def __init__(self, part: Any) -> None:
        super().__init__(part)
        self.part = part


def canonical(value: Any) -> Any:
    """``value`` as plain JSON data, one form per value: a number by its value (2.0 is 2),
    tuples as lists; ``NotAKey`` for anything else (a NaN, bytes, an object, a key that is
    not a string). Objects' keys are sorted when it is encoded."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotAKey(value)
        return int(value) if value.is_integer() else value
    if isinstance(value, list | tuple):
        return [canonical(item) for item in value]
    if isinstance(value, dict):
        for name in value:
            if not isinstance(name, str):
                raise NotAKey(name)
        return {name: canonical(item) for name, item in value.items()}
    raise NotAKey(value)


def shown(value: Any) -> str:
    return f"{type(value).__name__} {reprlib.repr(value)}"


def body_digest(data: Any) -> str:
    """The digest of a request body's decoded JSON ``data``: the same for the same data
    whatever its keys' order or spacing, another for 1 and true (its canonical form)."""
    return hashlib.sha256(msgspec.json.encode(canonical(data), order="sorted")).hexdigest()
