"""``on_event(name, schema=...)``: a payload that does not match does not start that flow;
``publish_event`` lists the refusals, and refuses the event as a whole (changing nothing) when
every flow listening refused it."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

import cronflow_actors as cf


class Signup(msgspec.Struct):
    user: str
    plan: str = "free"


def listener(flow_id: str, schema: Any = None) -> cf.Flow:
    return (
        cf.define(flow_id)
        .step("got", lambda ctx: ctx.payload)
        .on_event("user.signup", schema=schema)
    )


async def test_a_matching_payload_starts_the_flow_as_the_schema_reads_it(rt: cf.Runtime) -> None:
    rt.register(listener("typed", Signup))
    started = await rt.publish_event("user.signup", {"user": "ada"})
    assert started.refused == []
    [run_id] = started
    output = (await rt.wait(run_id)).output
    assert output["user"] == "ada"
    assert output["plan"] == "free"  # the schema's default filled in
    assert output["event"]["payload"] == {"user": "ada", "plan": "free"}


async def test_flows_whose_schema_refuses_are_listed_and_the_others_start(rt: cf.Runtime) -> None:
    rt.register(listener("typed", Signup))
    rt.register(listener("open"))
    rt.register(listener("by-age", dict[str, int]))
    result = await rt.publish_event("user.signup", {"user": "ada", "plan": 3})
    [run_id] = result
    assert (await rt.wait(run_id)).output["plan"] == 3
    assert [(r.workflow, r.path) for r in result.refused] == [
        ("by-age", "$[...]"),
        ("typed", "$.plan"),
    ]
    assert "Expected `str`, got `int`" in result.refused[1].detail
    assert [s.workflow for s in await rt.store.list_snapshots()] == ["open"]


async def test_an_event_every_listener_refuses_changes_nothing(rt: cf.Runtime) -> None:
    rt.register(listener("typed", Signup))
    waiter = cf.define("waiter").wait_for_event("signed-up", "user.signup").step("s", str)
    rt.register(waiter)
    waiting = await rt.trigger("waiter")
    await rt.wait_idle()
    with pytest.raises(cf.errors.InvalidEventError) as refused:
        await rt.publish_event("user.signup", {"plan": "pro"})
    error = refused.value
    assert error.event == "user.signup"
    assert [(r.workflow, r.path) for r in error.refused] == [("typed", "$")]
    assert "refused by every flow listening for it, nothing was started" in str(error)
    assert "flow 'typed': Object missing required field `user`" in str(error)
    assert (await rt.inspect(waiting)).status == "waiting"  # the waiting step heard nothing
    assert [s.workflow for s in await rt.store.list_snapshots()] == ["waiter"]
    # an event nobody listens for with a schema is not refused: it wakes the waiting step
    await rt.publish_event("user.signup", {"user": "ada"})
    assert (await rt.wait(waiting)).status == "completed"


def test_event_definitions_are_checked() -> None:
    class NotASchema:
        pass

    flow = (
        cf.define("bad-events")
        .step("s", str)
        .on_event("a", schema=NotASchema)
        .on_event("b")
        .on_event("b", schema=Signup)
    )
    with pytest.raises(cf.errors.InvalidWorkflowError) as invalid:
        flow.build()
    text = str(invalid.value)
    assert "on_event('a'): schema" in text
    assert "cannot check JSON (type" in text
    assert "use a msgspec.Struct, a dataclass, a TypedDict" in text
    assert "on_event('b') is given twice" in text
