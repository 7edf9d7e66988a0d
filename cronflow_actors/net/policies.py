"""Authorization policies for custom actions: ``fn(ctx, payload) -> bool``.

``ctx.principal`` is the caller (``id`` and ``scopes``); the engine refuses an external call with
no principal before any policy runs, and internal calls skip policies altogether. A policy that
returns False (or a falsy value) denies the call, and nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from cronflow_actors.calls import settle

__all__ = [
    "Policy",
    "all_policies",
    "any_policy",
    "require_all_scopes",
    "require_any_scope",
    "require_scope",
]

Policy = Callable[[Any, Any], Any]


def _scopes(ctx: Any) -> frozenset[str]:
    principal = getattr(ctx, "principal", None)
    if principal is None:
        return frozenset()
    return frozenset(getattr(principal, "scopes", ()))


def require_scope(scope: str) -> Policy:
    """Allow callers that hold ``scope``."""

    def policy(ctx: Any, _payload: Any) -> bool:
        return scope in _scopes(ctx)

    policy.__qualname__ = f"require_scope({scope!r})"
    return policy


def require_any_scope(scopes: Iterable[str]) -> Policy:
    """Allow callers that hold at least one of ``scopes``."""
    wanted = frozenset(scopes)

    def policy(ctx: Any, _payload: Any) -> bool:
        return bool(wanted & _scopes(ctx))

    policy.__qualname__ = f"require_any_scope({sorted(wanted)!r})"
    return policy


def require_all_scopes(scopes: Iterable[str]) -> Policy:
    """Allow callers that hold every one of ``scopes``."""
    wanted = frozenset(scopes)

    def policy(ctx: Any, _payload: Any) -> bool:
        return wanted <= _scopes(ctx)

    policy.__qualname__ = f"require_all_scopes({sorted(wanted)!r})"
    return policy


async def _decide(policy: Policy, ctx: Any, payload: Any) -> bool:
    """Whether ``policy`` allows: True only (an answer that is not a bool denies)."""
    return await settle(policy(ctx, payload)) is True


def any_policy(*policies: Policy) -> Policy:
    """Allow when any of ``policies`` allows; checked in order, the first that allows wins.

    Works with plain and coroutine policies alike (the combined policy is a coroutine).
    """

    async def policy(ctx: Any, payload: Any) -> bool:
        for each in policies:
            if await _decide(each, ctx, payload):
                return True
        return False

    return policy


def all_policies(*policies: Policy) -> Policy:
    """Allow when every one of ``policies`` allows; checked in order, the first denial wins."""

    async def policy(ctx: Any, payload: Any) -> bool:
        for each in policies:
            if not await _decide(each, ctx, payload):
                return False
        return True

    return policy
