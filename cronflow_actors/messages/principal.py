"""Who calls: ``Principal``, an API token's identity, which actions' policies ask."""

from __future__ import annotations

import msgspec

__all__ = ["Principal"]


class Principal(msgspec.Struct, frozen=True):
    """An external caller: ``Principal("ada", scopes=frozenset({"review:write"}))``. ``id=None``
    is an unauthenticated caller (every action refuses it); ``principal=None`` in a Runtime call
    is an internal one."""

    id: str | None
    scopes: frozenset[str] = frozenset()
