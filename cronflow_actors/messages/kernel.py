"""Messages the actor kernel sends on its own behalf."""

from __future__ import annotations

from cronflow_actors.messages.base import Message

__all__ = ["ChildFailed", "ChildStopped"]


class ChildFailed(Message, frozen=True, kw_only=True):
    """Told to a parent actor when one of its children stopped because of an unhandled exception.

    The child is already stopped when the parent receives this; ``error`` is the exception object
    for in-process handling (it is not part of any persisted shape).
    """

    child_urn: str
    child_class: str
    error_type: str
    error_message: str
    error: BaseException | None = None


class ChildStopped(Message, frozen=True, kw_only=True):
    """Told to a parent actor when one of its children stopped normally."""

    child_urn: str
    child_class: str
