"""An app for the drain test of a signed webhook (tests/test_serve_signed_drain.py): its
``condition`` sleeps 30 s the first time (a slow lookup the drain gives up on), then says yes
at once; the secret is ``$SIGNED_SECRET``."""

import asyncio
import os
from pathlib import Path

import cronflow_actors as cf


def _first_time() -> bool:
    marker = Path(os.environ["SIGNED_MARKER"])
    if marker.exists():
        return False
    marker.write_text("asked")
    return True


async def condition(request: cf.WebhookRequest) -> bool:
    if _first_time():  # (a file the size of a word: no need to leave the loop for it)
        await asyncio.sleep(30)  # cut by the drain's end
    return True


workflows = [
    cf.define("signed-order")
    .on_webhook(
        "/hooks/order",
        hmac_secret=os.environ["SIGNED_SECRET"],
        idempotency_key="Idempotency-Key",
        condition=condition,
    )
    .step("take", lambda ctx: ctx.payload)
]
