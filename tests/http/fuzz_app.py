"""The app the API fuzz test serves: flows started by hand and by webhooks (a schema, path
parameters, a signature, callbacks that validate headers and give the answers), a flow that
pauses for a human, event listeners (one with a schema), and a net workflow with a work item,
so every route group of the API has something behind it."""

import msgspec

import cronflow_actors as cf
from cronflow_actors import net


class Order(msgspec.Struct):
    order_id: str
    amount: int


def review() -> net.NetSpec:
    item = net.work_item("review").actions(start=net.action(), complete=net.action())
    return (
        net.workflow("review")
        .start_condition("start")
        .end_condition("end")
        .task("review", net.task(item))
        .connect_condition("start", "review")
        .connect_task("review", "end")
        .actions(initialize=net.action(), cancel=net.action())
        .build()
    )


workflows = [
    cf.define("quick").step("echo", lambda ctx: ctx.payload),
    cf.define("orders")
    .step("take", lambda ctx: ctx.payload)
    .on_webhook("/webhooks/orders", schema=Order),
    cf.define("by-id")
    .step("take", lambda ctx: ctx.trigger.params)
    .on_webhook("/webhooks/customers/:customer/orders/{order}"),
    cf.define("signed")
    .step("take", lambda ctx: ctx.payload)
    .on_webhook("/webhooks/signed", hmac_secret="fuzz-secret"),
    cf.define("hold").human_in_the_loop("approve", description="ok?").step("s", str),
    cf.define("listener").step("got", lambda ctx: ctx.payload).on_event("fuzzed"),
    cf.define("typed-listener")
    .step("got", lambda ctx: ctx.payload)
    .on_event("typed", schema=Order),
    cf.define("answered")
    .step("take", lambda ctx: ctx.payload)
    .on_webhook(
        "/webhooks/answered",
        schema=Order,
        header_validator=lambda request: request.headers.get("x-shop", "s") != "" or "no shop",
        on_success=lambda request, run_id: cf.WebhookResponse(body={"accepted": run_id}),
        on_error=lambda request, problem: {"refused": problem.detail},
    ),
    cf.define("keyed")
    .step("take", lambda ctx: ctx.payload)
    .on_webhook("/webhooks/keyed", idempotency_key="Idempotency-Key"),
    review(),
]
