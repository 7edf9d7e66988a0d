"""The app the console's browser tests serve: a flow with steps and a parallel, one that fails,
one that waits for a person, one started by an event, one on a schedule, one that waits for an
event, and a net workflow whose second task waits for an action (so its net has a token to
draw)."""

import cronflow_actors as cf
from cronflow_actors import net


def _boom(ctx: cf.FlowContext) -> None:
    raise RuntimeError("the card was declined")


def review() -> net.NetSpec:
    item = net.work_item("approve").actions(start=net.action(), complete=net.action())
    return (
        net.workflow("review")
        .start_condition("start")
        .end_condition("end")
        .task("prepare", net.task(net.work_item("prepare", handler=lambda ctx: "ready")))
        .task("approve", net.task(item))
        .connect_condition("start", "prepare")
        .connect_task("prepare", "approve")
        .connect_task("approve", "end")
        .actions(initialize=net.action(), cancel=net.action())
        .build()
    )


def sign_off() -> net.NetSpec:
    """A net whose one task waits for a person (a pause item, with a timeout it only shows)."""
    details = {"description": "sign the story off"}
    wait = net.WaitSpec(kind="pause", details=lambda ctx: details, timeout=3600)
    item = net.work_item("sign", wait=wait).actions(complete=net.action())
    item = item.activities(on_initialized=lambda ctx: ctx.work_item.start())
    return (
        net.workflow("sign-off")
        .start_condition("start")
        .end_condition("end")
        .task("sign", net.task(item))
        .connect_condition("start", "sign")
        .connect_task("sign", "end")
        .actions(initialize=net.action())
        .build()
    )


def fork() -> net.NetSpec:
    """Two tasks at once: an AND split before them and an AND join after them."""
    work = net.work_item("w").actions(start=net.action(), complete=net.action())
    return (
        net.workflow("fork")
        .start_condition("start")
        .end_condition("end")
        .dummy_task("split", net.dummy_task().split("and"))
        .task("left", net.task(work))
        .task("right", net.task(work))
        .dummy_task("join", net.dummy_task().join("and"))
        .connect_condition("start", "split")
        .connect_task("split", "left")
        .connect_task("split", "right")
        .connect_task("left", "join")
        .connect_task("right", "join")
        .connect_task("join", "end")
        .actions(initialize=net.action())
        .build()
    )


def desk() -> net.NetSpec:
    """Two pauses at once, and a composite task whose child net has a person's task, then a
    pause of its own."""
    sign, countersign, seal = [
        net.work_item(name, wait=net.WaitSpec(kind="pause"))
        .actions(complete=net.action())
        .activities(on_initialized=lambda ctx: ctx.work_item.start())
        for name in ("sign", "countersign", "seal")
    ]
    stamp = net.work_item("stamp").actions(start=net.action(), complete=net.action())
    stamping = (
        net.workflow("stamping")
        .start_condition("start")
        .end_condition("end")
        .task("stamp", net.task(stamp))
        .task("seal", net.task(seal))
        .connect_condition("start", "stamp")
        .connect_task("stamp", "seal")
        .connect_task("seal", "end")
    )
    return (
        net.workflow("desk")
        .start_condition("start")
        .end_condition("end")
        .dummy_task("split")
        .task("sign", net.task(sign))
        .task("countersign", net.task(countersign))
        .composite_task("stamping", net.composite_task(stamping))
        .dummy_task("join")
        .connect_condition("start", "split")
        .connect_task("split", "sign", "countersign", "stamping")
        .connect_task("sign", "join")
        .connect_task("countersign", "join")
        .connect_task("stamping", "join")
        .connect_task("join", "end")
        .actions(initialize=net.action())
        .build()
    )


workflows = [
    cf.define("greet", name="Greeting", description="says hello, twice at once")
    .step("hello", lambda ctx: f"hello {ctx.payload['name']}")
    .parallel("both", [lambda ctx: "left", lambda ctx: "right"])
    .step("done", lambda ctx: {"greeted": ctx.steps["hello"]}),
    cf.define("boom").step("charge", _boom),
    cf.define("hold")
    .human_in_the_loop("approve", description="approve the refund")
    .step("after", lambda ctx: {"approved": ctx.last["approved"], "by": ctx.last["approved_by"]}),
    cf.define("ask").human_in_the_loop(  # a pause that says what its sender sent (hostile h35 F1)
        "approve",
        description=lambda ctx: f"pay {ctx.payload['amount']}",
        approval_url=lambda ctx, token: f"https://approve.example/{ctx.payload['amount']}",
    ),
    cf.define("listen")
    .on_event("order.paid")
    .step("echo", lambda ctx: {"order": ctx.payload["order"]}),
    cf.define("nightly")
    .on_schedule("30 2 * * *", timezone="Europe/Paris")
    .on_interval("1h")
    .step("tick", lambda ctx: "tick"),
    cf.define("settle").wait_for_event("paid", "order.settled").step("done", lambda ctx: ctx.last),
    cf.define("picky")  # a filter that raises on a payload without an amount
    .wait_for_event("w", "order.checked", filter=lambda payload, ctx: payload["amount"] > 0)
    .step("done", lambda ctx: ctx.last),
    review(),
    sign_off(),
    fork(),
    desk(),
]
