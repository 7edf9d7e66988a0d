"""The app the metrics tests serve (``cronflow-actors serve tests/metrics/workload_app.py``): one
workflow that does a bit of everything the metrics count, and a few small ones.

``orders`` (webhook ``/webhooks/orders``, idempotent on ``x-delivery``): ``validate`` fails the
run when ``amount <= 0``; ``reserve`` fails its first attempt when ``flaky`` is set and is
retried; the detached ``notify`` fails when ``notify_fails`` is set (never failing the run), and
its first dispatch hangs for ``hang`` seconds;
orders over 1000 pause for a person (``approve``); every order then sleeps ``cool`` (0.2 s) and
ships. ``paid`` waits for the event ``payment.confirmed``; ``limited`` (concurrency 1) holds its
place for ``hold`` seconds; ``signed`` takes HMAC-signed webhooks; ``ticker`` runs every second.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import cronflow_actors as cf

SECRET = "workload-secret"


async def validate(ctx: cf.FlowContext) -> dict[str, Any]:
    if ctx.payload["amount"] <= 0:
        raise ValueError(f"order {ctx.payload['order_id']}: the amount must be positive")
    return dict(ctx.payload)


async def reserve(ctx: cf.FlowContext) -> str:
    if ctx.payload.get("flaky") and ctx.attempt == 1:
        raise ConnectionError("the stock service timed out")
    return "reserved"


def notify(ctx: cf.FlowContext) -> None:  # plain def: runs on the blocking pool
    if ctx.payload.get("notify_fails"):
        raise ConnectionError("the mail server is down")
    if ctx.attempt == 1:  # its first dispatch hangs for this long (a restart dispatches again)
        time.sleep(float(ctx.payload.get("hang", 0)))


async def hold(ctx: cf.FlowContext) -> float:
    seconds = float(ctx.payload.get("hold", 0))
    await asyncio.sleep(seconds)
    return seconds


orders = (
    cf.define("orders")
    .step("validate", validate)
    .step("reserve", reserve, retry=cf.Retry(attempts=3, delay=0.05))
    .action("notify", notify)
    .if_("big", lambda ctx: ctx.steps["validate"]["amount"] > 1000)
    .human_in_the_loop("approve", description="approve a big order")
    .end_if()
    .sleep("cool", 0.2)
    .step("ship", lambda ctx: {"shipped": ctx.steps["validate"]["order_id"]})
    .on_webhook("/webhooks/orders", idempotency_key="x-delivery")
)

paid = (
    cf.define("paid")
    .step("bill", lambda ctx: "billed")
    .wait_for_event("payment", "payment.confirmed")
    .step("receipt", lambda ctx: "sent")
    .on_webhook("/webhooks/paid")
)

limited = cf.define("limited", concurrency=1).step("hold", hold).on_webhook("/webhooks/limited")

signed = (
    cf.define("signed")
    .step("accept", lambda ctx: "ok")
    .on_webhook("/webhooks/signed", hmac_secret=SECRET)
)

ticker = cf.define("ticker").step("tick", lambda ctx: "tick").on_interval(1)

workflows = [orders, paid, limited, signed, ticker]
