"""A process killed right after it published an event for a held run:
``python -m tests.runtime.kept_worker DB``. On a file where a ``paying`` run waits for its
payment, it runs the changed definition (so the run is held), publishes the event, prints
``published <held run ids>`` and hangs; the test kills it there. The event was kept for the run
before the publish returned, so the next process, with the old definition back, delivers it."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import cronflow_actors as cf

PAYMENT = {"amount": 7}


def paying(*, changed: bool = False) -> cf.Flow:
    """Waits for a payment, then returns it (``changed``: its last step renamed)."""

    def ship(ctx: Any) -> Any:
        return ctx.last

    flow = cf.define("paying-killed").wait_for_event("paid", "payment")
    return flow.step("send" if changed else "ship", ship)


async def main(db: str) -> None:
    async with cf.Runtime(db=db, workflows=[paying(changed=True)]) as rt:
        published = await rt.publish_event("payment", PAYMENT)
        print("published", *published.held, flush=True)
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
