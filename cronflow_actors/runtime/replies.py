"""The answer to work one process posts to another that holds its instance (``runtime/
cluster.py``): its result, or the error it raised, as data that crosses the database."""

from __future__ import annotations

from typing import Any

import msgspec

import cronflow_actors.errors as error_tree
from cronflow_actors.messages import encode

__all__ = ["Reply", "error_reply", "unpack"]

_replies = msgspec.msgpack.Decoder()


class Reply(msgspec.Struct, array_like=True):
    """The answer to work posted to another process: its result, or the error it raised."""

    ok: bool
    result: Any = None
    error_type: str = ""
    error_args: list[Any] = []
    error_state: dict[str, Any] = {}


def error_reply(error: Exception) -> Reply:
    """An error as data: cronflow's errors come back as themselves, others as their text."""
    kind = type(error)
    if getattr(error_tree, kind.__name__, None) is not kind:
        return Reply(ok=False, error_type="", error_args=[f"{kind.__name__}: {error}"])
    state = {}
    for key, value in vars(error).items():
        try:
            encode(value)
        except (TypeError, msgspec.EncodeError):
            continue
        state[key] = value
    args = [a if isinstance(a, str | int | float | bool | None) else str(a) for a in error.args]
    return Reply(ok=False, error_type=kind.__name__, error_args=args, error_state=state)


def unpack(body: bytes) -> Any:
    reply = msgspec.convert(_replies.decode(body), Reply)
    if reply.ok:
        return reply.result
    kind = getattr(error_tree, reply.error_type, None) if reply.error_type else None
    if not (isinstance(kind, type) and issubclass(kind, Exception)):
        raise RuntimeError(*reply.error_args)
    error = kind.__new__(kind)
    Exception.__init__(error, *reply.error_args)
    vars(error).update(reply.error_state)
    raise error
