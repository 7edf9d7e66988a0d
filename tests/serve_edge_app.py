"""An app for the edge and fault tests: a flow started by hand, a webhook with a schema, a
signed webhook, a flow that pauses for a human, a webhook that asks to keep headers, and one
whose schema holds a set, keyed by a header."""

import msgspec

import cronflow_actors as cf


class Order(msgspec.Struct):
    order_id: str
    amount: int


class Tagged(msgspec.Struct):
    tags: set[str]


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
    cf.define("tagged")
    .step("s", lambda ctx: sorted(ctx.payload["tags"]))
    .on_webhook("/webhooks/tagged", schema=Tagged, idempotency_key="Idempotency-Key"),
]
