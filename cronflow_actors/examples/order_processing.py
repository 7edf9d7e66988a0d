"""A realistic order flow: validation with retries, a detached confirmation mail, a parallel
stock and fraud check, then a decision: an order that looks like fraud (or is out of stock) is
refused and never shipped; a big one waits for a manager's approval; the others ship in a lane
chosen by amount.

    python -m cronflow_actors.examples.order_processing   # runs three orders and prints them

It is triggered by a webhook (``POST /webhooks/orders`` with an ``OrderIn`` body) when served,
and by ``rt.trigger("order-processing", {...})`` from code.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import msgspec

import cronflow_actors as cf


class OrderIn(msgspec.Struct):
    order_id: str
    customer: str
    amount: float
    items: list[str]


async def validate(ctx: cf.FlowContext) -> dict[str, Any]:
    order = msgspec.convert(ctx.payload, OrderIn)
    if order.amount <= 0:
        raise ValueError(f"order {order.order_id}: the amount must be positive")
    shown: dict[str, Any] = msgspec.to_builtins(order)
    return shown


async def send_confirmation(ctx: cf.FlowContext) -> None:
    await ctx.state.incr("confirmations_sent")


async def check_stock(ctx: cf.FlowContext) -> dict[str, Any]:
    return {"in_stock": True, "items": len(ctx.steps["validate"]["items"])}


def check_fraud(ctx: cf.FlowContext) -> dict[str, Any]:  # plain def: runs on a pool thread
    return {"score": 0.9 if ctx.steps["validate"]["customer"] == "mallory" else 0.1}


FRAUD_LIMIT = 0.5
"""Orders whose fraud score reaches this are refused."""


async def decide(ctx: cf.FlowContext) -> dict[str, Any]:
    stock, fraud = ctx.last
    if not stock["in_stock"]:
        return {"ok": False, "reason": "out of stock"}
    if fraud["score"] >= FRAUD_LIMIT:
        return {"ok": False, "reason": f"fraud score {fraud['score']}"}
    return {"ok": True, "reason": None}


async def refuse(ctx: cf.FlowContext) -> dict[str, Any]:
    order = ctx.steps["validate"]
    return {"order_id": order["order_id"], "status": "refused", "reason": ctx.last["reason"]}


async def ask_manager(ctx: cf.FlowContext, token: str) -> None:
    await ctx.state.set(f"approval:{ctx.run.id}", token)


async def ship(ctx: cf.FlowContext) -> dict[str, Any]:
    """Ship an accepted order; a refused one stays refused (nothing is shipped)."""
    refused = ctx.steps.get("refuse")
    if refused is not None:
        return refused  # type: ignore[no-any-return]
    order = ctx.steps["validate"]
    approval = ctx.steps.get("approve")
    if approval is not None and not approval["approved"]:
        return {"order_id": order["order_id"], "status": "rejected", "by": approval["approved_by"]}
    lane = ctx.steps.get("lane", ctx.steps.get("lane-small"))  # None: approved, no lane chosen
    return {"order_id": order["order_id"], "status": "shipped", "lane": lane}


orders = (
    cf.define("order-processing", concurrency=50, timeout="1d")
    .step(  # a bad order fails at once (ValueError, msgspec's ValidationError is one); any
        # other error (the store or a service it calls hiccups) is tried again
        "validate",
        validate,
        retry=cf.Retry(
            attempts=3,
            backoff="exponential",
            delay="100ms",
            retry_on=lambda error: not isinstance(error, ValueError),
        ),
    )
    .action("confirm", send_confirmation)
    .parallel("checks", [check_stock, check_fraud])
    .step("decision", decide)
    .if_("suspect", lambda ctx: not ctx.steps["decision"]["ok"])
    .step("refuse", refuse)
    .elif_("big", lambda ctx: ctx.steps["validate"]["amount"] > 1000)
    .human_in_the_loop(  # within the run's day: unanswered, it is a rejection, not a failure
        "approve", description="approve a big order", timeout="12h", on_pause=ask_manager
    )
    .elif_("medium", lambda ctx: ctx.steps["validate"]["amount"] > 100)
    .step("lane", lambda ctx: "standard")
    .else_()
    .step("lane-small", lambda ctx: "letter")
    .end_if()
    .step("ship", ship)
    .on_webhook("/webhooks/orders", schema=OrderIn)
)

workflows = [orders]


async def demo(db: str = ":memory:") -> list[cf.RunInfo]:
    """Three orders: a medium one ships at once, a big one waits for (and gets) approval, and
    one with a high fraud score is refused without shipping."""
    paused = asyncio.Event()

    def watch(changes: list[Any]) -> None:
        if any(getattr(c, "task", "") == "approve" and c.next == "started" for c in changes):
            paused.set()

    async with cf.Runtime(db=db, workflows=workflows) as rt:
        rt.observe(watch)
        medium = await rt.trigger(
            "order-processing",
            {"order_id": "o-1", "customer": "ada", "amount": 250, "items": ["book"]},
        )
        big = await rt.trigger(
            "order-processing",
            {"order_id": "o-2", "customer": "grace", "amount": 5000, "items": ["laptop", "dock"]},
        )
        suspect = await rt.trigger(
            "order-processing",
            {"order_id": "o-3", "customer": "mallory", "amount": 40, "items": ["gift card"]},
        )
        await rt.wait(medium)
        await rt.wait(suspect)
        await paused.wait()  # the big order is paused for its approval
        [pause] = await rt.list_paused()
        await rt.resume(pause.token, {"approved": True, "approved_by": "manager"})
        await rt.wait(big)
        return [await rt.inspect(run) for run in (medium, big, suspect)]


def main() -> None:
    for info in asyncio.run(demo(sys.argv[1] if len(sys.argv) > 1 else ":memory:")):
        print(f"{info.id} {info.status}: {info.output}")
        for step in info.steps:
            print(f"    {step.id:<12} {step.status:<10} {step.output}")


if __name__ == "__main__":
    main()
