"""What the edge refuses before any route acts, over real HTTP: HEAD on a webhook (HEAD is
safe, a GET webhook starts a run), and an unsafe method naming a media type other than JSON,
with a body or without (a page of another site may post a form or text without a CORS
preflight)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import httpx
import pytest

import cronflow_actors as cf
from cronflow_actors.errors import ConfigurationError
from cronflow_actors.http.hosts import allowed_hosts_for
from tests.http.conftest import Serve

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def flows() -> list[cf.Flow]:
    return [
        cf.define("hold").human_in_the_loop("approve", description="ok?").step("s", str),
        cf.define("quick").step("echo", lambda ctx: ctx.payload),
        cf.define("hooked")
        .step("echo", lambda ctx: ctx.payload)
        .on_webhook("/h/get", method="GET")
        .on_webhook("/h/post")
        .on_event("ping"),
    ]


async def test_head_on_a_webhook_starts_nothing(serve: Serve) -> None:
    rt, client = await serve(flows())
    head = await client.head("/h/get", params={"x": "1"})
    assert (head.status_code, head.headers["allow"]) == (405, "GET")
    assert await rt.list_runs() == []
    assert (await client.head("/h/post")).status_code == 405
    # The read-only routes still answer HEAD as GET, without the body.
    assert (await client.head("/runs")).status_code == 200
    assert (await client.head("/healthz")).status_code == 200
    assert await rt.list_runs() == []
    # GET is the webhook's method: it starts a run.
    assert (await client.get("/h/get", params={"x": "1"})).status_code == 202
    assert len(await rt.list_runs()) == 1


async def test_a_post_of_another_media_type_is_refused_without_a_body_too(serve: Serve) -> None:
    rt, client = await serve(flows())
    held = (await client.post("/runs", json={"workflow": "hold"})).json()["run_id"]
    [pause] = (await client.get("/paused")).json()["paused"]
    done = (await client.post("/runs", json={"workflow": "quick", "payload": 1})).json()["run_id"]
    await rt.wait(done, timeout=5)
    before = {run.id for run in await rt.list_runs()}
    paths = [
        f"/runs/{held}/cancel",
        f"/runs/{done}/replay",
        f"/resume/{pause['token']}",
        "/events/ping",
        "/h/post",
        "/runs",
    ]
    for path in paths:
        for headers, content in [
            (FORM, b"x=1"),
            (FORM, b""),
            ({"Content-Type": "text/plain"}, b""),
            ({"Content-Type": "multipart/form-data; boundary=b"}, b""),
        ]:
            refused = await client.post(path, content=content, headers=headers)
            assert refused.status_code == 415, (path, headers, content, refused.text)
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["type"] == "urn:cronflow:problem:unsupported-media-type"
            assert headers["Content-Type"] in refused.json()["detail"]
    # nothing changed: the run still waits for its human, no run started
    assert (await rt.inspect(held)).status == "waiting"
    assert {run.id for run in await rt.list_runs()} == before
    # No Content-Type and no body (curl -X POST), or JSON's with none (the CLI): accepted.
    assert (await client.post("/events/ping")).status_code == 202
    resumed = await client.post(
        f"/resume/{pause['token']}", headers={"Content-Type": "application/json"}
    )
    assert resumed.status_code == 200, resumed.text
    assert (await client.post(f"/runs/{done}/replay")).status_code == 202
    assert (await client.post("/h/post")).status_code == 202


async def test_a_browser_page_of_another_origin_cannot_act_even_without_a_body(
    serve: Serve,
) -> None:
    # no body and no Content-Type: a "simple" request a page sends without a preflight
    rt, client = await serve(flows())
    run_id = await rt.trigger("hold")
    await rt.wait_idle()
    evil = {"Origin": "https://evil.example"}
    fetched = {"Sec-Fetch-Site": "cross-site"}
    for headers in (evil, fetched, {"Origin": "null"}):
        for path in (f"/runs/{run_id}/cancel", "/events/ping", "/h/post", f"/runs/{run_id}/replay"):
            refused = await client.post(path, headers=headers)
            assert refused.status_code == 403, (path, headers, refused.text)
            assert refused.json()["type"] == "urn:cronflow:problem:cross-site-request"
    # two Origin headers: ambiguous, as any header sent twice (the first decided: hostile h45 F4)
    own_then_evil = [
        ("Origin", str(client.base_url).rstrip("/")),
        ("Origin", "https://evil.example"),
    ]
    same_then_cross = [("Sec-Fetch-Site", "same-origin"), ("Sec-Fetch-Site", "cross-site")]
    for path, headers in (
        (f"/runs/{run_id}/cancel", own_then_evil),
        ("/events/ping", own_then_evil),
        ("/events/ping", same_then_cross),
    ):
        twice = await client.post(path, headers=headers)
        assert twice.status_code == 400, (path, twice.text)
        assert twice.json()["type"] == "urn:cronflow:problem:ambiguous-headers"
    assert [r.id for r in await rt.list_runs()] == [run_id]  # nothing started
    assert (await rt.inspect(run_id)).status == "waiting"  # nor canceled
    # its own pages (the console: the same origin), and clients that are no browser, pass
    own = {"Origin": str(client.base_url).rstrip("/"), "Sec-Fetch-Site": "same-origin"}
    assert (await client.post(f"/runs/{run_id}/cancel", headers=own)).status_code == 200
    assert (await client.post("/events/ping")).status_code == 202


async def test_a_page_of_a_rebound_name_is_refused_by_its_host(serve: Serve) -> None:
    # DNS rebinding: the attacker's name now points at 127.0.0.1, so its page's requests are
    # of the same origin (Origin and Host both name it) and passed the cross-site check
    rt, client = await serve(
        flows(), allowed_hosts=allowed_hosts_for("127.0.0.1", ["ops.lan", "*.example.com"])
    )
    port = client.base_url.port
    run_id = await rt.trigger("hold")
    await rt.wait_idle()
    rebound = {"Host": f"attacker.example:{port}", "Origin": f"http://attacker.example:{port}"}
    for method, path in [("POST", "/runs"), ("GET", "/runs"), ("POST", f"/runs/{run_id}/cancel")]:
        refused = await client.request(method, path, json={"workflow": "quick"}, headers=rebound)
        assert refused.status_code == 403, (method, path, refused.text)
        assert refused.json()["type"] == "urn:cronflow:problem:host-not-allowed"
        detail = refused.json()["detail"]
        assert "add 'attacker.example' (the name, without its port)" in detail
        assert run_id not in refused.text  # no run of the list reached it
    # shapes no browser sends, but no allowed name either (the second hostile client's N8)
    for odd in ["[::1]evil.example", f"localhost:{port}@evil.example", "localhost:x"]:
        answer = await client.get("/runs", headers={"Host": odd})
        assert answer.status_code == 403, (odd, answer.text)
    assert [r.id for r in await rt.list_runs()] == [run_id]  # nothing started
    assert (await rt.inspect(run_id)).status == "waiting"  # nor canceled
    counted = (await client.get("/metrics")).text
    assert 'method="GET",route="/runs",status="403"} 4.0' in counted  # (with the odd ones)
    assert 'method="POST",route="/runs/{run_id}/cancel",status="403"} 1.0' in counted
    # the names a loopback server is reached by, and the configured one, pass
    # (an address: a probe or a scraper calling it by its IP, which rebinding cannot send)
    for host in [
        "localhost",
        "127.0.0.1",
        "[::1]",
        "app.localhost",
        "OPS.LAN",
        "ops.lan.",
        "a.b.example.com",
        "10.0.0.5",
        "[fe80::1]",
    ]:
        answered = await client.get("/runs", headers={"Host": f"{host}:{port}"})
        assert answered.status_code == 200, (host, answered.text)


async def test_a_refused_query_parameter_or_header_is_named_as_sent_and_not_echoed_whole(
    serve: Serve,
) -> None:
    rt, client = await serve(flows())
    status = await client.get("/runs", params={"status": "bogus"})
    assert status.status_code == 400
    assert status.json()["detail"].startswith("the query parameter 'status' is 'bogus'; expected")
    cursor = await client.get("/paused", params={"cursor": "not-a-cursor"})
    assert cursor.status_code == 400
    assert cursor.json()["detail"].startswith("the query parameter 'cursor' is 'not-a-cursor'")
    # empty (a script's unset variable): it answered "no runs" (hostile h44 F5)
    for path, name in (("/runs", "workflow"), ("/runs", "status"), ("/paused", "run_id")):
        empty = await client.get(path, params={name: ""})
        assert empty.status_code == 400, (path, name, empty.text)
        assert empty.json()["detail"] == (
            f"the query parameter {name!r} is empty; give a value or leave it out"
        )
    blank = await client.get("/runs", params={"workflow": "  "})  # said as sent (h45 F10)
    assert blank.json()["detail"] == (
        "the query parameter 'workflow' is blank (only whitespace); give a value or leave it out"
    )
    no_type = await client.post("/events/ping", content=b"{}", headers={"Content-Type": ""})
    assert no_type.status_code == 415
    assert "(got an empty one)" in no_type.json()["detail"]
    long_key = {"Idempotency-Key": "k" * 10_000}
    refused = await client.post("/events/ping", json={}, headers=long_key)
    assert refused.status_code == 400
    assert refused.json()["detail"].startswith("the Idempotency-Key header is 'kkk")
    assert "(10000 characters)" in refused.json()["detail"]  # the key's (hostile h36 F4)
    assert len(refused.content) < 1000  # it echoed the key whole
    assert await rt.list_runs() == []


async def test_a_key_given_twice_or_two_content_types_are_refused_and_change_nothing(
    serve: Serve,
) -> None:
    # a decoder reads a key given twice as its last value: {"workflow": "hold", "workflow":
    # "quick"} started a run of quick (the hostile client's F7)
    rt, client = await serve(flows())
    twice = b'{"workflow": "hold", "payload": {"n": 1, "n": 2}, "workflow": "quick"}'
    refused = await client.post(
        "/runs", content=twice, headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 400
    assert "gives the key 'n' twice in one object" in refused.json()["detail"]
    nested = b'{"workflow": "quick", "payload": [{"a": ":", "b": {"c": 1, "c": 1}}]}'
    refused = await client.post(
        "/runs", content=nested, headers={"Content-Type": "application/json"}
    )
    assert "gives the key 'c' twice" in refused.json()["detail"]
    alike = b'{"workflow": "quick", "payload": [{"a": "x:y"}, {"a": "\\":"}]}'
    started = await client.post(
        "/runs", content=alike, headers={"Content-Type": "application/json"}
    )
    assert started.status_code == 202, started.text  # the same key in two objects is no twin
    # two Content-Type headers, whichever comes first: the same 400
    for first, second in [("application/json", "text/plain"), ("text/plain", "application/json")]:
        answer = await client.post(
            "/runs",
            content=b'{"workflow": "quick"}',
            headers=[("Content-Type", first), ("Content-Type", second)],
        )
        assert answer.status_code == 400, (first, answer.text)
        assert answer.json()["type"] == "urn:cronflow:problem:ambiguous-headers"
    assert len(await rt.list_runs()) == 1


def test_the_names_a_server_answers_to_follow_where_it_listens() -> None:
    loopback = ["localhost", "127.0.0.1", "::1", ".localhost"]
    assert allowed_hosts_for("127.0.0.1", None) == loopback
    assert allowed_hosts_for("::1", ["*"]) is None  # '*': any name
    assert allowed_hosts_for("0.0.0.0", None) is None  # its names are its operator's
    assert allowed_hosts_for("0.0.0.0", ["", " "]) is None  # (an empty variable)
    # a probe in its container (localhost) still passes once names are listed
    assert allowed_hosts_for("0.0.0.0", ["api.example.com"]) == [*loopback, "api.example.com"]
    # the names under one; a name no Host could match is refused at once (the second hostile
    # client's N3: each was taken, and never matched)
    assert allowed_hosts_for("::1", ["*.Example.com", "[fe80::1]"]) == [
        *loopback,
        ".example.com",
        "fe80::1",
    ]
    for never in ["name:8080", "http://name", "a/b", "x@y", "*.*"]:
        with pytest.raises(ConfigurationError, match="without a scheme, port or path"):
            allowed_hosts_for("127.0.0.1", [never])


async def test_big_bodies_are_handled_a_few_at_a_time_and_small_ones_never_wait(
    serve: Serve,
) -> None:
    # a big body costs many times its size while it is handled: one place here, so a second
    # big request waits its turn (and gives up after the body timeout) while small ones pass
    inside, leave = asyncio.Event(), asyncio.Event()

    async def condition(request: cf.WebhookRequest) -> bool:
        if request.payload.get("hold"):
            inside.set()
            await leave.wait()
        return True

    flow = (
        cf.define("big")
        .step("s", lambda ctx: len(ctx.payload))
        .on_webhook("/hooks/big", condition=condition)
    )
    rt, client = await serve([flow], big_bodies=1, body_timeout=0.5)
    big = {"hold": True, "pad": "x" * 100_000}
    first = asyncio.create_task(client.post("/hooks/big", json=big))
    await inside.wait()
    second = await client.post("/hooks/big", json={"pad": "y" * 100_000})
    assert second.status_code == 503
    assert second.json()["type"] == "urn:cronflow:problem:too-busy"
    assert second.headers["retry-after"] == "5"
    small = await client.post("/hooks/big", json={"small": True})
    assert small.status_code == 202  # a small body does not wait for the big one's place
    leave.set()
    assert (await first).status_code == 202
    after = await client.post("/hooks/big", json={"pad": "z" * 100_000})
    assert after.status_code == 202  # the place is free again
    assert len(await rt.list_runs()) == 3
    # counted under its route, though answered before the router ran (it was 'unmatched')
    assert 'route="/hooks/big",status="503"} 1.0' in (await client.get("/metrics")).text
    # a replay copies its run's payload, however big, with no body to say so: it waits for a
    # place as a big body does (180 at once took 1.3 GB: hostile h23 M3)
    inside.clear()
    leave.clear()
    holding = asyncio.create_task(client.post("/hooks/big", json=big))
    await inside.wait()
    [done, *_] = await rt.list_runs()
    waited = await client.post(f"/runs/{done.id}/replay")
    assert waited.status_code == 503
    assert waited.json()["type"] == "urn:cronflow:problem:too-busy"
    leave.set()
    assert (await holding).status_code == 202
    assert (await client.post(f"/runs/{done.id}/replay")).status_code == 202
    # a body that trickles in holds no place while it arrives: only one that has arrived waits
    # for its turn to be decoded (eight clients sending a byte a second, unauthenticated on an
    # open webhook, held every place for the body timeout: hostile h24 M2)
    reader, writer = await asyncio.open_connection(client.base_url.host, client.base_url.port)
    writer.write(
        b"POST /hooks/big HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100000\r\n\r\n{"pad": "'
    )
    await writer.drain()
    await asyncio.sleep(0.05)
    assert (await client.post("/hooks/big", json={"pad": "w" * 100_000})).status_code == 202
    with pytest.raises(TimeoutError):  # answered before the trickle's 408: it waited for none
        await asyncio.wait_for(reader.read(1), 0.01)
    assert b" 408 " in await reader.readline()
    writer.close()
    await writer.wait_closed()


async def hold_bodies(
    client: httpx.AsyncClient, path: str, headers: Callable[[int], bytes] = lambda n: b""
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """40 connections, each sending a 99,000-byte body to ``path`` but its last 9,000 bytes (40 x
    90 kB: past the 3.2 MB budget of a 100,000-byte ``max_body``); ``headers(n)``: the n-th's own
    header lines."""
    host, port = client.base_url.host, client.base_url.port
    holders = []
    for n in range(40):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + headers(n)
            + b"Content-Type: application/json\r\nContent-Length: 99000\r\n\r\n"
            + b'{"pad": "' + b"x" * 90_000
        )  # fmt: skip
        await writer.drain()
        holders.append((reader, writer))
    await asyncio.sleep(0.3)
    return holders


async def test_the_raw_bytes_of_big_bodies_on_their_way_in_are_bounded(serve: Serve) -> None:
    """A body waits for its place once it has arrived, so its raw bytes were held without a
    bound while others were decoded: a thousand connections of a megabyte each, a gigabyte
    (the reviewer's h24 M4). They are counted as they arrive against a budget (32 bodies at
    --max-body): past it, a body waits for room (a 503 too-busy if none comes in time)."""
    flow = cf.define("big").step("s", lambda ctx: len(ctx.payload)).on_webhook("/hooks/big")
    _rt, client = await serve([flow], max_body=100_000, body_timeout=2)  # a 3.2 MB budget
    holders = await hold_bodies(client, "/hooks/big")  # each body unfinished: past the budget
    waiting = asyncio.create_task(client.post("/hooks/big", json={"pad": "y" * 90_000}))
    small = await client.post("/hooks/big", json={"small": True})
    assert small.status_code == 202  # a small body counts against nothing
    await asyncio.sleep(0.5)
    assert not waiting.done()  # the budget is full: it waits for room (it took 10 ms)
    assert (await waiting).status_code == 202  # room came: the holders' bodies timed out
    answered = []
    for reader, writer in holders:  # by then, those that held the budget were answered 408
        with contextlib.suppress(TimeoutError):
            answered.append(await asyncio.wait_for(reader.readline(), 0.5))
        writer.close()
    assert answered
    assert all(b" 408 " in line for line in answered), answered


async def test_anonymous_senders_holding_the_budget_do_not_delay_a_token_holder(
    serve: Serve,
) -> None:
    """Anonymous senders that send a big body to an open webhook but its last byte filled the
    budget, and every big start of a token holder waited for their body timeout (the hostile
    client's h25 M2). Callers with a token the server knows have a budget of their own; a token
    it does not know is anonymous."""
    flow = cf.define("big2").step("s", lambda ctx: len(ctx.payload)).on_webhook("/hooks/big2")
    tokens = {"s3cret-ops": cf.Principal(id="ops")}
    _rt, client = await serve([flow], max_body=100_000, body_timeout=2, tokens=tokens)
    forged = b"Authorization: Bearer not-a-token\r\n"  # every other one: still anonymous
    holders = await hold_bodies(client, "/hooks/big2", lambda n: forged if n % 2 else b"")
    anonymous = asyncio.create_task(client.post("/hooks/big2", json={"pad": "y" * 90_000}))
    known = await client.post(
        "/runs",
        json={"workflow": "big2", "payload": {"pad": "z" * 90_000}},
        headers={"Authorization": "Bearer s3cret-ops"},
    )
    assert known.status_code == 202, known.text
    for reader, _writer in holders:  # answered while every holder still holds its bytes
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.001)
    assert not anonymous.done()  # an anonymous big body waits for room
    assert (await anonymous).status_code == 202  # the holders' bodies timed out
    for _reader, writer in holders:
        writer.close()


async def test_one_token_holder_holding_the_budget_does_not_delay_another(serve: Serve) -> None:
    """Known tokens shared one budget: one holder (a read-only token, say) that sent big bodies
    but their last byte kept every other holder's big start waiting for its body timeout (the
    hostile client's h26 M2). Each principal has a budget of its own."""
    flow = cf.define("big3").step("s", lambda ctx: len(ctx.payload))
    tokens = {"t-noisy": cf.Principal(id="noisy"), "t-ops": cf.Principal(id="ops")}
    _rt, client = await serve([flow], max_body=100_000, body_timeout=2, tokens=tokens)
    noisy_token = b"Authorization: Bearer t-noisy\r\n"
    holders = await hold_bodies(client, "/runs", lambda n: noisy_token)  # its budget, full
    big = {"workflow": "big3", "payload": {"pad": "z" * 90_000}}
    noisy = asyncio.create_task(
        client.post("/runs", json=big, headers={"Authorization": "Bearer t-noisy"})
    )
    other = await client.post("/runs", json=big, headers={"Authorization": "Bearer t-ops"})
    assert other.status_code == 202, other.text
    for reader, _writer in holders:  # answered while every holder still holds its bytes
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.001)
    assert not noisy.done()  # the holder's own next big body waits for its own room
    assert (await noisy).status_code == 202
    for _reader, writer in holders:
        writer.close()


async def test_a_path_whose_percent_encoding_is_not_utf8_is_refused(serve: Serve) -> None:
    """``/events/%FF`` reached the route as an event named U+FFFD, a name nobody sent, and was
    published to it (hostile2 h22): a 400 now, nothing published, nothing started."""
    rt, client = await serve(
        [*flows(), cf.define("named").step("s", str).on_webhook("/w/{tenant}").on_event("é")]
    )
    for path in ("/events/%FF", "/events/ping%C3", "/w/%E9", "/runs/%FF%FE/cancel"):
        refused = await client.post(path, json={})
        assert refused.status_code == 400, (path, refused.text)
        assert refused.json()["type"] == "urn:cronflow:problem:invalid-path"
        assert "percent-encode the UTF-8 bytes" in refused.json()["detail"]
    # a query's too: "?k=%fe" and "?k=%ff" reached a run as one value (hostile h32 L7)
    for path in ("/w/a?k=%FE", "/w/a?%FF=1", "/runs?status=%E9"):
        refused = await client.request("GET" if path.startswith("/runs") else "POST", path)
        assert refused.status_code == 400, (path, refused.text)
        assert refused.json()["type"] == "urn:cronflow:problem:invalid-argument"
        assert "the query's percent-encoding is not UTF-8" in refused.json()["detail"]
    assert await rt.list_runs() == []
    # UTF-8, percent-encoded or not, is a name like any other
    assert len((await client.post("/events/%C3%A9", json={})).json()["started"]) == 1
    assert (await client.post("/w/%C3%A9", json={})).status_code == 202
    assert (await client.post("/w/a?k=%C3%A9", json={})).status_code == 202


async def test_a_lone_surrogate_escape_is_named_not_called_truncated(serve: Serve) -> None:
    """``"\\ud800"`` was refused as "Input data was truncated" (hostile h23): it is half of a
    character; a pair of escapes, or the character itself, is taken."""
    rt, client = await serve(flows())
    json_type = {"Content-Type": "application/json"}
    for body in (rb'{"workflow": "quick", "payload": "\ud800"}', rb'{"payload": "a\udc00"}'):
        refused = await client.post("/runs", content=body, headers=json_type)
        assert refused.status_code == 400
        assert "has a lone surrogate escape, \\u" in refused.json()["detail"]
        assert "truncated" not in refused.json()["detail"]
    paired = rb'{"workflow": "quick", "payload": "\ud83d\ude00"}'
    started = await client.post("/runs", content=paired, headers=json_type)
    assert (await rt.wait(started.json()["run_id"])).output == "\U0001f600"


async def test_an_unknown_id_is_said_of_what_the_caller_named(serve: Serve) -> None:
    """A 404 names what the path names: an unknown work item was "no workflow instance
    'abc'", a cancel and '..' said "workflow instance" where every other door of a run says
    "run", and an id with a dot was said to be part of a run that is not there either, the
    hint leading to a second 404 (hostile h38 F4, newcomer h38 F7)."""
    rt, client = await serve(flows())
    held = (await client.post("/runs", json={"workflow": "hold"})).json()["run_id"]
    asked = {
        ("POST", "/runs/nosuch/cancel"): "no run 'nosuch'; check the id",
        ("POST", "/work-items/abc/start"): "no work item 'abc'; check the id",
        ("GET", "/runs/%2e%2e"): "no run '..'; check the id",
        ("GET", "/runs/nosuch.w1"): "no run 'nosuch.w1'; check the id",
        ("GET", f"/runs/{held}.w9"): f"it names a part of run '{held}'",
    }
    for (method, path), said in asked.items():
        answer = await client.request(method, path, json={} if method == "POST" else None)
        assert answer.status_code == 404, (path, answer.text)
        assert said in answer.json()["detail"], (path, answer.json()["detail"])
    assert [run.id for run in await rt.list_runs()] == [held]


async def test_a_path_parameter_with_a_control_character_starts_no_run(serve: Serve) -> None:
    """A webhook's path parameters are kept by its run (``ctx.trigger.params``) and shown as a
    kept header is: a control character, a line break or a bidi control there was taken where
    a header's is refused (hostile h42 F6). A query keeps its lines."""
    tenants = cf.define("tenants").step("echo", lambda ctx: ctx.trigger.params)
    rt, client = await serve([tenants.on_webhook("/t/{tenant}")])
    for sent in ("%1b%5b31mRED", "a%00b", "%0d%0aFAKE", "x%e2%80%aey"):
        refused = await client.post(f"/t/{sent}", json={})
        assert refused.status_code == 400, (sent, refused.text)
        assert refused.json()["detail"] == (
            "the path parameter 'tenant' holds a control character, a line separator or a bidi "
            "control; a path parameter is text of one line (a tab aside)"
        )
    assert await rt.list_runs() == []
    taken = await client.post("/t/acme%20co", params={"note": "two\nlines"}, json={})
    assert taken.status_code == 202, taken.text
    assert (await rt.wait(taken.json()["run_id"], timeout=5)).output == {"tenant": "acme co"}
