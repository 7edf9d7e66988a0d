"""An app for the edge and fault tests: a flow started by hand, a webhook with a schema, a
signed webhook, a flow that pauses for a human, and a webhook that asks to keep headers."""

import msgspec

import cronflow_actors as cf


class Order(msgspec.Struct):
    order_id: str
    amount: int


SECRET = "edge-secret"

workflows = [
    cf.define("quick").step("echo", lambda ctx: ctx.payload),
    cf.define("orders")
    .step("take", lambda ctx: ctx.payload)
    .on_webhook("/webhooks/orders", schema=Order),
    cf.define("signed")
    .step("take", lambda ctx: ctx.payload)
    .on_webhook("/webhooks/signed", hmac_secret=SECRET),
    cf.define("hold").human_in_the_loop("approve", description="ok?").step("s", str),
    cf.define("traced")
    .step("headers", lambda ctx: dict(ctx.trigger.headers))
    .on_webhook("/webhooks/traced", keep_headers=["X-Trace", "Authorization", "Cookie"]),
]
