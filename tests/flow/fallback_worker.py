"""A process running one saga, for the fallback crash test:
``python -m tests.flow.fallback_worker DB`` (``DB resume``: ``resumed``).

Its step ``charge`` fails (its only attempt; the gateway took the money all the same), and its
``on_error`` fallback ``refund`` prints ``refunding`` and hangs there until it is killed. Every
call prints a line: ``charge`` or ``refund <the error it answers>``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import cronflow_actors as cf

CALLS: list[str] = []
"""The calls of a process that imports this module (the test's own runtime)."""


class GatewayError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"the gateway said {status} after taking the money")
        self.status = status


def saga(*, hang: bool, action: bool = False) -> cf.Flow:
    """``charge`` a step, or a detached action (``action``), with its fallback."""

    async def charge(ctx: Any) -> dict[str, int]:
        print("charge", flush=True)
        CALLS.append("charge")
        raise GatewayError(502)

    async def refund(ctx: Any) -> dict[str, Any]:
        said = f"refund {type(ctx.error).__name__} {ctx.error.status}: {ctx.error}"
        print(said, flush=True)
        CALLS.append(said)
        if hang:
            print("refunding", flush=True)
            await asyncio.sleep(3600)
        return {"refunded": True, "redispatches": ctx.redispatches}

    if action:
        return cf.define("saga").action("charge", charge).on_error(refund).pause("hold")
    return cf.define("saga").step("charge", charge).on_error(refund).step("ship", lambda c: c.last)


async def main(db: str, action: bool = False) -> None:
    # A short lease, so the next process takes over soon after the kill.
    async with cf.Runtime(
        db=db, workflows=[saga(hang=True, action=action)], lease_seconds=0.5, wait_for_lease=True
    ) as rt:
        await rt.trigger("saga", {"order": 1}, instance_id="r1")
        await asyncio.sleep(3600)


MODE = {"charge": "fail"}
"""How ``resumable``'s charge behaves: fails (its refund fails too), hangs, or charges."""


def resumable() -> cf.Flow:
    """A saga whose run fails, charge and refund alike, and is resumed: ``mode resume``."""

    async def charge(ctx: Any) -> dict[str, bool]:
        CALLS.append(f"charge {MODE['charge']}")
        if MODE["charge"] == "fail":
            raise GatewayError(502)
        if MODE["charge"] == "hang":
            print("hanging", flush=True)
            await asyncio.sleep(3600)
        return {"charged": True}

    async def refund(ctx: Any) -> dict[str, bool]:
        CALLS.append(f"refund {ctx.error}")
        if MODE["charge"] == "fail":
            raise RuntimeError("the refund service is down")
        return {"refunded": True}

    return cf.define("resumable").step("charge", charge).on_error(refund)


async def resumed(db: str) -> None:
    """Run r1 fails in its charge and in its refund; its resume's charge hangs (a crash cuts
    it); prints the resume's id first."""
    async with cf.Runtime(
        db=db, workflows=[resumable()], lease_seconds=0.5, wait_for_lease=True
    ) as rt:
        await rt.trigger("resumable", {}, instance_id="r1")
        assert (await rt.wait("r1")).status == "failed"
        MODE["charge"] = "hang"
        print(await rt.replay("r1", resume=True), flush=True)
        await asyncio.sleep(3600)


if __name__ == "__main__":
    mode = sys.argv[2:]
    asyncio.run(
        resumed(sys.argv[1]) if mode == ["resume"] else main(sys.argv[1], mode == ["action"])
    )
