from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from cronflow_actors import net


class Principal(msgspec.Struct):
    id: str
    scopes: frozenset[str]


class Ctx(msgspec.Struct):
    principal: Principal | None


def as_ctx(*scopes: str) -> Ctx:
    return Ctx(principal=Principal(id="u", scopes=frozenset(scopes)))


def test_scope_policies() -> None:
    assert net.require_scope("a")(as_ctx("a", "b"), None)
    assert not net.require_scope("a")(as_ctx("b"), None)
    assert not net.require_scope("a")(Ctx(principal=None), None)
    assert net.require_any_scope(["a", "c"])(as_ctx("c"), None)
    assert not net.require_any_scope(["a", "c"])(as_ctx("b"), None)
    assert net.require_all_scopes(["a", "b"])(as_ctx("a", "b", "c"), None)
    assert not net.require_all_scopes(["a", "b"])(as_ctx("a"), None)


def test_combinators_take_plain_and_coroutine_policies() -> None:
    async def is_owner(ctx: Any, payload: Any) -> bool:
        return bool(payload == ctx.principal.id)

    either = net.any_policy(net.require_scope("admin"), is_owner)
    both = net.all_policies(net.require_scope("review"), is_owner)
    assert asyncio.run(either(as_ctx("admin"), "someone-else"))
    assert asyncio.run(either(as_ctx(), "u"))
    assert not asyncio.run(either(as_ctx(), "someone-else"))
    assert asyncio.run(both(as_ctx("review"), "u"))
    assert not asyncio.run(both(as_ctx("review"), "x"))
    assert not asyncio.run(both(as_ctx(), "u"))
