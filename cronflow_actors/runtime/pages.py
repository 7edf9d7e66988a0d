"""Pages of a listing (runs, pauses): ``Page``, a list with the cursor of the next page, and
the opaque keyset cursors it hands out."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

import msgspec

from cronflow_actors.errors import ConfigurationError

__all__ = ["MAX_PAGE", "PAGE_BYTES", "Page", "check_limit", "decode_cursor", "encode_cursor"]

T = TypeVar("T")

MAX_PAGE = 1000
PAGE_BYTES = 8 * 1024 * 1024
"""A page of runs or pauses holds their stored data up to about this size: a page of big ones
is shorter (its ``next_cursor`` goes on), and one bigger than this comes alone."""


class Page(list[T], Generic[T]):
    """One page of a listing: a list, and ``next_cursor`` to pass for the next page (None on
    the last page)."""

    def __init__(self, items: Iterable[T] = (), next_cursor: str | None = None) -> None:
        super().__init__(items)
        self.next_cursor = next_cursor


def encode_cursor(at: float, ident: str) -> str:
    """An opaque keyset cursor for (time, id)."""
    return base64.urlsafe_b64encode(msgspec.json.encode([at, ident])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The (time, id) of a cursor made by ``encode_cursor``; ``ConfigurationError`` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, ident = msgspec.json.decode(raw, type=tuple[float, str])
        # the bytes as they were made, and no more: base64 decoding passes over stray
        # characters, padding and the other alphabet's
        made = base64.urlsafe_b64encode(raw).decode().rstrip("=") == cursor
    except (ValueError, TypeError, msgspec.DecodeError):
        made = False
    if not made:
        raise ConfigurationError("cursor", cursor, "a cursor returned by the previous page")
    return at, ident


def check_limit(limit: Any) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise ConfigurationError("limit", limit, f"a whole number from 1 to {MAX_PAGE}")
    return limit
