"""The options of ``cf.define``: every bad one reported by ``build()`` with the others; what a
flow says about itself in ``get_workflows()``, ``get_workflow()`` and run listings."""

from __future__ import annotations

import pytest

import cronflow_actors as cf
from cronflow_actors.errors import InvalidWorkflowError, NotFoundError


async def noop(ctx: object) -> None:
    return None


def test_every_bad_option_is_reported_with_the_rest() -> None:
    flow = cf.define(
        "broken",
        name="  ",
        description=7,  # type: ignore[arg-type]
        tags="billing",
        rate_limit={"count": 0, "every": "1m"},
        queue="no spaces allowed",
        secrets={"": cf.env("API_KEY"), "token": cf.env("not a variable"), "fn": noop},
        concurrency=True,
        version=2,  # type: ignore[arg-type]
    ).step("a", noop)
    with pytest.raises(InvalidWorkflowError) as caught:
        flow.build()
    problems = "\n".join(caught.value.problems)
    for expected in (
        "name must be a non-empty string",
        "description must be a string",
        "tags must be a list of strings, got 'billing'",
        "rate_limit takes cf.RateLimit(count=..., per=...) or a dict with the keys",
        "queue must be a name of 1-100 letters",
        "secrets: every name must be a non-empty string",
        "secrets['token']: cf.env() needs an environment variable name",
        "secrets['fn']: give cf.env('NAME') or a value, not a function",
        "concurrency must be a whole number >= 1",
        # an int was taken, and each of its runs then read as damaged (devx h40 F1)
        "version must be a non-empty string of at most 200 characters, as in version='v2', got 2",
    ):
        assert expected in problems, expected


@pytest.mark.parametrize(
    ("rate_limit", "message"),
    [
        (cf.RateLimit(count=0, per="1m"), "rate_limit count must be a whole number >= 1"),
        (cf.RateLimit(count=True, per="1m"), "rate_limit count must be a whole number >= 1"),
        (cf.RateLimit(count=3, per="soon"), "rate_limit per must be a number of seconds"),
        (cf.RateLimit(count=3, per=0), "rate_limit per must be longer than 0"),
        ({"count": 3}, "with the keys 'count' and 'per'"),
        (10, "rate_limit takes cf.RateLimit"),
    ],
)
def test_a_bad_rate_limit_says_what_is_wrong(rate_limit: object, message: str) -> None:
    flow = cf.define("limited", rate_limit=rate_limit).step("a", noop)  # type: ignore[arg-type]
    with pytest.raises(InvalidWorkflowError, match=message.replace("(", r"\(").replace(")", r"\)")):
        flow.build()


def test_a_rate_limit_may_be_a_dict() -> None:
    flow = cf.define("limited", rate_limit={"count": 10, "per": "1m"}).step("a", noop)
    flow.build()
    assert flow.rate_limit == cf.RateLimit(count=10, per="1m")
    assert flow.rate_limit.seconds == 60


async def test_get_workflows_shows_what_flows_say_about_themselves(rt: cf.Runtime) -> None:
    orders = (
        cf.define(
            "orders",
            name="Order processing",
            description="Takes an order from payment to shipping",
            tags=["billing", "core"],
            version="v2",
            concurrency=4,
            rate_limit=cf.RateLimit(count=10, per="1m"),
            queue="shop",
            secrets={"api_key": "plain value"},
        )
        .on_webhook("/webhooks/orders", method="PUT")
        .on_schedule("0 2 * * *", timezone="Europe/Paris")
        .on_interval("15m")
        .on_event("order.created")
        .step("take", noop)
    )
    plain = cf.define("plain").step("a", noop)
    rt.register(plain)
    rt.register(orders)
    flows = rt.get_workflows()
    assert [flow.id for flow in flows] == ["orders", "plain"]
    described = rt.get_workflow("orders")
    assert described == flows[0]
    assert (described.name, described.description, described.tags, described.version) == (
        "Order processing",
        "Takes an order from payment to shipping",
        ["billing", "core"],
        "v2",
    )
    assert [(t.kind, t.method, t.path) for t in described.triggers if t.kind == "webhook"] == [
        ("webhook", "PUT", "/webhooks/orders")
    ]
    kinds = {t.kind: t for t in described.triggers}
    assert (kinds["schedule"].cron, kinds["schedule"].timezone) == ("0 2 * * *", "Europe/Paris")
    assert kinds["interval"].every == 900
    assert kinds["event"].event == "order.created"
    assert described.concurrency == 4
    assert described.rate_limit is not None
    assert (described.rate_limit.count, described.rate_limit.per_seconds) == (10, 60)
    assert described.queue == "shop"
    assert described.secrets == ["api_key"]  # the names, never the values
    assert "plain value" not in repr(described)
    # defaults: the name is the id, no description, no tags
    assert (flows[1].name, flows[1].description, flows[1].tags, flows[1].triggers) == (
        "plain",
        "",
        [],
        [],
    )
    with pytest.raises(NotFoundError, match="registered flows: \\['orders', 'plain'\\]"):
        rt.get_workflow("nope")


async def test_runs_show_the_name_of_their_flow(rt: cf.Runtime) -> None:
    rt.register(cf.define("orders", name="Order processing").step("a", lambda ctx: 1))
    run_id = await rt.trigger("orders")
    await rt.wait(run_id)
    assert (await rt.inspect(run_id)).workflow_name == "Order processing"
    [listed] = await rt.list_runs()
    assert (listed.workflow, listed.workflow_name) == ("orders", "Order processing")


def test_a_step_option_of_the_wrong_kind_is_reported_not_raised() -> None:
    flow = (
        cf.define("options")
        .step("a", noop, retry=3)  # type: ignore[arg-type]
        .step("b", noop, cache="yes")  # type: ignore[arg-type]
    )
    with pytest.raises(InvalidWorkflowError) as caught:
        flow.build()
    problems = "\n".join(caught.value.problems)
    assert "retry must be a cf.Retry(...), got 3" in problems
    assert "cache must be a cf.Cache(...)" in problems


def test_a_hook_that_is_no_function_is_one_problem() -> None:
    """It was two, in two wordings (devx h40 F11)."""
    flow = cf.define("hooked", hooks=cf.Hooks(on_success="print")).step("a", noop)
    with pytest.raises(InvalidWorkflowError) as caught:
        flow.validate()
    assert caught.value.problems == [
        "hooks on_success must be a function, on_success(ctx); got 'print'"
    ]
