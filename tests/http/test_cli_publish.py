"""``cronflow-actors events publish`` says what became of the event where the server's answer
says it: a flow that refused it (its schema), a waiting step whose filter raised."""

from __future__ import annotations

from pathlib import Path

import msgspec

import cronflow_actors as cf
from tests.http.conftest import Serve
from tests.http.test_cli_commands import cli
from tests.runtime.test_pinning import paying, waiting_to_pay


class Order(msgspec.Struct, forbid_unknown_fields=True):
    id: int


async def test_publish_names_a_refusal_and_a_filter_that_raised(serve: Serve) -> None:
    flows = [
        cf.define("strict").on_event("paid", schema=Order).step("s", lambda ctx: ctx.payload),
        cf.define("loose").on_event("paid").step("s", lambda ctx: ctx.payload),
        cf.define("picky")
        .wait_for_event("wait", "paid", filter=lambda ctx, event: event["id"] == 1)
        .step("after", lambda ctx: ctx.last),
    ]
    rt, client = await serve(flows)
    stuck = await rt.trigger("picky")
    await rt.wait_idle()
    url = str(client.base_url)
    code, out, err = await cli("events", "publish", "paid", "--payload", '{"x": 1}', "--url", url)
    assert code == 0, err
    assert out.startswith("published 'paid': started 1 run(s), woke a waiting step in 0 run(s)")
    # the refusal's words, where it printed "None" (the answer's field is "detail")
    assert "refused by strict: Object contains unknown field `x`" in err
    assert (
        f"the filter of the step waiting in run {stuck} raised TypeError: " in err
    )  # (ctx, event) where it is called (payload, ctx)
    assert "it did not take the event and waits on" in err


async def test_a_publish_of_a_name_nothing_hears_says_so_and_the_closest_one(
    serve: Serve,
) -> None:
    """A misspelt event name was a 202 that woke 0 runs, said as when every waiting step's
    filter refused it (newcomer h38 F5): the answer's ``note`` says no flow starts on the name
    and no step waits for it, and names the closest one that does; nothing is refused."""
    flows = [
        cf.define("replies")
        .wait_for_event("wait", "ticket.reply", filter=lambda event, ctx: event["id"] == 1)
        .step("after", lambda ctx: ctx.last),
        cf.define("opened").on_event("ticket.opened").step("s", lambda ctx: ctx.payload),
    ]
    rt, client = await serve(flows)
    waiting = await rt.trigger("replies")
    await rt.wait_idle()
    url = str(client.base_url)
    code, out, err = await cli(
        "events", "publish", "ticket.replied", "--payload", '{"id": 1}', "--url", url
    )
    assert code == 0, err
    assert "woke a waiting step in 0 run(s)" in out
    assert "no flow starts on 'ticket.replied' and no step waits for it" in err
    assert "(did you mean 'ticket.reply'?)" in err
    assert "start on or wait for: ticket.opened, ticket.reply" in err
    # a name something hears, whose filter said no: no note
    answer = (await client.post("/events/ticket.reply", json={"id": 2})).json()
    assert (answer["delivered"], answer["note"]) == ([], None)
    assert (await rt.inspect(waiting)).status == "waiting"
    heard = await rt.publish_event("ticket.reply", {"id": 1})
    assert (heard.delivered, heard.note) == ([waiting], None)


async def test_a_publish_where_nothing_hears_any_event_says_so_in_words() -> None:
    """The note read "... start on or wait for: none" (retest h38 R9)."""
    async with cf.Runtime(workflows=[cf.define("quiet").step("s", lambda ctx: 1)]) as rt:
        published = await rt.publish_event("order.shiped", {})
    assert published.note == (
        "no flow starts on 'order.shiped' and no step waits for it; no flow here starts on or "
        "waits for any event"
    )


async def test_publish_names_the_runs_it_was_kept_for(serve: Serve, tmp_path: Path) -> None:
    """A run held on a changed definition keeps the event for its step: the command said "woke
    a waiting step in 0 run(s)" and nothing more, so an operator published it again (newcomer
    h24 F3); the answer's ``held`` names each run."""
    held = await waiting_to_pay(tmp_path / "http0.db")  # the file the server opens
    _rt, client = await serve([paying(changed=True)])
    url = str(client.base_url)
    code, out, err = await cli(
        "events", "publish", "payment", "--payload", '{"amount": 1}', "--url", url
    )
    assert code == 0, err
    assert f"kept for {held}, which cannot run here now" in out
    assert "no need to publish it again" in out


async def test_flows_lists_the_flows_their_triggers_and_the_next_tick(serve: Serve) -> None:
    """No command listed the flows or their schedules (newcomer h23 L13): the console and
    GET /flows did."""
    flows = [
        cf.define("nightly", name="Nightly report")
        .on_schedule("0 3 * * *")
        .on_webhook("/hooks/nightly")
        .step("s", str),
        cf.define("plain").step("s", str),
        cf.define("plain", version="v2").step("s", str),
    ]
    _rt, client = await serve(flows)
    url = str(client.base_url)
    code, out, err = await cli("flows", "--url", url)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "nightly v1  Nightly report"
    assert "  schedule 0 3 * * * (UTC)" in lines
    assert "  webhook POST /hooks/nightly" in lines
    [fire] = [line for line in lines if line.startswith("  next schedule 0 3 * * * (UTC): 20")]
    assert fire.endswith(" 03:00:00 UTC")  # in the schedule's zone, named (newcomer h25 F6)
    assert "  run one now: cronflow-actors fire nightly" in lines  # (newcomer h30 F3)
    assert "plain v2" in lines  # the version new runs take, and the others (newcomer h24 F9)
    assert "  also registered: v1 (new runs take v2)" in lines
    assert "  no trigger (started by a call)" in lines
    code, out, err = await cli("flows", "--url", url, "--json")
    assert code == 0, err
    assert "next_fires" in out


async def test_flows_says_how_to_fire_a_schedule_and_the_command_it_says_fires_it(
    serve: Serve,
) -> None:
    """``flows`` listed schedules without a word of ``fire`` (newcomer h30 F3); of a flow with
    several it names the first, with its zone where its expression alone names two, and the
    command it prints starts that schedule's run."""
    zoned = (
        cf.define("zoned")
        .on_schedule("0 9 * * *")
        .on_schedule("0 9 * * *", timezone="Europe/Paris")
        .on_interval("1d")  # (a day's tick, at midnight UTC: "1m" ticked during the test)
        .step("s", lambda ctx: ctx.payload.get("timezone"))
    )
    _rt, client = await serve([zoned])
    url = str(client.base_url)
    code, out, err = await cli("flows", "--url", url)
    assert code == 0, err
    [hint] = [line for line in out.splitlines() if line.startswith("  run one now: ")]
    assert hint == (
        "  run one now: cronflow-actors fire zoned --schedule '0 9 * * * (UTC)' "
        "(or another of its schedules)"
    )
    code, out, err = await cli("fire", "zoned", "--schedule", "0 9 * * * (UTC)", "--url", url)
    assert code == 0, err
    code, out, err = await cli("fire", "zoned", "--schedule", "every 1d", "--url", url)
    assert code == 0, err
    runs = (await client.get("/runs", params={"workflow": "zoned"})).json()["runs"]
    assert sorted(str(run.get("output")) for run in runs) == ["None", "UTC"]


async def test_flows_lists_the_nets_their_versions_and_migrations(serve: Serve) -> None:
    """Nothing listed the nets, their versions or the migrations between them: a rolling
    upgrade could not check from outside that claim v1, v2 and v1 -> v2 were registered
    (newcomer h27 F7). ``GET /nets`` does, and ``flows`` prints them."""
    from cronflow_actors import net
    from tests.nets import chain

    def claim(version: str) -> net.NetSpec:
        return chain("claim", version, "assess").actions(initialize=net.action()).build()

    _rt, client = await serve([claim("v1"), claim("v2"), cf.define("plain").step("s", str)])
    _rt.register(net.migration("v1", "v2", workflow="claim").build())
    _rt.deprecate("claim", "v1")
    answer = (await client.get("/nets")).json()
    assert answer == {
        "nets": [
            {
                "name": "claim",
                "version": "v2",
                "versions": ["v1", "v2"],
                "deprecated": ["v1"],
                "migrations": [["v1", "v2"]],
                "actions": ["initialize"],
                "awaits": [],
                "item_actions": {},
            }
        ]
    }
    code, out, err = await cli("flows", "--url", str(client.base_url))
    assert code == 0, err
    lines = out.splitlines()
    assert "claim v2  (net)" in lines
    assert "  also registered: v1 (deprecated)" in lines
    assert "  migration v1 -> v2" in lines
    assert "  callers may: initialize" in lines
    assert "plain v1" in lines  # the flows first, as before


async def test_the_events_a_flows_or_a_nets_steps_wait_for_are_listed(serve: Serve) -> None:
    """The console offered to publish only the events that start a flow, none that a waiting
    step takes (newcomer h33 F8): ``GET /flows`` and ``GET /nets`` list them as ``awaits``."""
    from cronflow_actors import net

    answered = net.WaitSpec(kind="event", event="offer.answered")
    answer = net.work_item("answer", wait=answered)
    inner = (
        net.workflow("inner")
        .start_condition("start")
        .end_condition("end")
        .task(
            "signed",
            net.task(net.work_item("sign", wait=net.WaitSpec(kind="event", event="signed"))),
        )
        .connect_condition("start", "signed")
        .connect_task("signed", "end")
        .build()
    )
    offer = (
        net.workflow("offer")
        .start_condition("start")
        .end_condition("end")
        .task("answer", net.task(answer))
        .composite_task("contract", net.composite_task(inner))
        .connect_condition("start", "answer")
        .connect_task("answer", "contract")
        .connect_task("contract", "end")
        .build()
    )
    settle = (
        cf.define("settle")
        .on_event("order.placed")
        .wait_for_event("paid", "order.settled")
        .if_("big", lambda ctx: True)
        .wait_for_event("checked", "order.checked")
        .end_if()
        # a subflow given inline, which no other flow lists (conform h34 F3)
        .subflow("ship", cf.define("ship").wait_for_event("picked", "order.picked"))
    )
    _rt, client = await serve([offer, settle])
    [flow] = (await client.get("/flows")).json()["flows"]
    # (not the one that starts it)
    assert flow["awaits"] == ["order.checked", "order.picked", "order.settled"]
    [described] = (await client.get("/nets")).json()["nets"]
    assert described["awaits"] == ["offer.answered", "signed"]
    # and the command line's flows says them too (newcomer h34 F7)
    code, out, err = await cli("flows", "--url", str(client.base_url))
    assert code == 0, err
    assert "  its steps wait for: order.checked, order.picked, order.settled" in out
    assert "  its steps wait for: offer.answered, signed" in out


async def test_a_net_is_described_by_the_version_new_instances_take(serve: Serve) -> None:
    """Its newest version was described, deprecated or not: the event every new instance waits
    for was missing, one none waits for listed (conform h35 F4)."""
    from cronflow_actors import net

    def offer(version: str, event: str) -> net.NetSpec:
        item = net.work_item("answer", wait=net.WaitSpec(kind="event", event=event))
        item = item.actions(cancel=net.action())
        builder = net.workflow("offer", version=version).start_condition("start")
        builder = builder.end_condition("end").task("answer", net.task(item))
        return builder.connect_condition("start", "answer").connect_task("answer", "end").build()

    rt, client = await serve([offer("v1", "offer.answered"), offer("v2", "offer.replied")])
    [newest] = (await client.get("/nets")).json()["nets"]
    assert (newest["version"], newest["awaits"]) == ("v2", ["offer.replied"])
    rt.deprecate("offer", "v2")
    [described] = (await client.get("/nets")).json()["nets"]
    assert (described["version"], described["awaits"]) == ("v1", ["offer.answered"])
    assert described["item_actions"] == {"answer": ["cancel"]}
    rt.deprecate("offer", "v1")  # none new: its newest, as before
    [described] = (await client.get("/nets")).json()["nets"]
    assert (described["version"], described["awaits"]) == (None, ["offer.replied"])


async def test_a_key_in_any_script_names_one_publish_from_python_http_or_the_cli(
    serve: Serve,
) -> None:
    """A printable key like ``ключ`` came out of HTTP garbled (read as Latin-1) and was refused,
    ``é`` became ``Ã©`` (another key than the same one given in Python), and the CLI died on it
    with a traceback (newcomer h30 F2): the key is read as UTF-8 wherever it comes from."""
    flow = cf.define("listen").on_event("paid").step("s", lambda ctx: ctx.payload)
    rt, client = await serve([flow])
    url = str(client.base_url)
    first = await rt.publish_event("paid", {"n": 1}, idempotency_key="ключ-é")
    assert len(first) == 1
    again = await client.post(
        "/events/paid", json={"n": 1}, headers={"Idempotency-Key": "ключ-é".encode()}
    )
    assert again.status_code == 202, again.text
    assert again.json()["started"] == list(first)  # the same key: its first publish's run
    other = await client.post(
        "/events/paid", json={"n": 2}, headers={"Idempotency-Key": "ключ-é".encode()}
    )
    assert other.status_code == 422  # the same key with another payload: refused
    code, _, err = await cli(
        "events", "publish", "paid", "--payload", '{"n": 1}', "--idempotency-key", "ключ-é",
        "--url", url,
    )  # fmt: skip
    assert code == 0, err
    assert len(await rt.list_runs(workflow="listen")) == 1
    not_utf8 = await client.post("/events/paid", json={}, headers={"Idempotency-Key": b"\xff\xfe"})
    assert (not_utf8.status_code, not_utf8.json()["type"]) == (
        400,
        "urn:cronflow:problem:invalid-header",
    )
