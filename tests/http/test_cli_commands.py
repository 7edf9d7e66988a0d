"""The client commands through real subprocesses against a served runtime, and settings."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import uvicorn

import cronflow_actors as cf
from cronflow_actors.cli.client import Client
from cronflow_actors.cli.exits import Exit
from cronflow_actors.cli.main import main
from cronflow_actors.errors import ApiError, ConfigurationError
from cronflow_actors.http.app import create_app
from cronflow_actors.runtime.config import load_config
from tests.http.conftest import Serve

ROOT = Path(__file__).resolve().parents[2]


async def cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cronflow_actors",
        *args,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(stdin.encode() if stdin is not None else None)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def flows() -> list[cf.Flow]:
    return [
        cf.define("double")
        .step("double", lambda ctx: ctx.payload * 2)
        .step("plus", lambda ctx: ctx.last + 1),
        cf.define("boom").step("boom", _boom),
        cf.define("pause").human_in_the_loop("ok").step("after", lambda ctx: ctx.last["approved"]),
        cf.define("listen").on_event("ping").step("echo", lambda ctx: ctx.payload["n"]),
    ]


def _boom(ctx: object) -> None:
    raise RuntimeError("kaboom")


async def test_replay_runs_a_run_again_from_the_command_line(serve: Serve) -> None:
    # replay was Python and HTTP only (newcomer h22 L5)
    rt, client = await serve(flows())
    url = str(client.base_url)
    first = await rt.trigger("double", 20)
    await rt.wait(first, timeout=5)
    code, out, err = await cli("replay", first, "--url", url, "--json")
    assert code == 0, err
    again = json.loads(out)
    assert (again["status"], again["output"]) == ("completed", 41)
    assert again["id"] != first
    assert (await rt.inspect(again["id"])).replay_of == first
    code, out, err = await cli("replay", first, "--payload", "1", "--url", url)
    assert code == 0, err
    assert "started replay" in err
    assert "output: 3" in out
    code, out, err = await cli("replay", first, "--no-wait", "--url", url)
    assert (code, err) == (0, "")
    assert (await rt.wait(out.strip(), timeout=5)).output == 41
    code, _, err = await cli("replay", "no-such-run", "--url", url)
    assert code == 3, err
    # once under an id of the caller's: a repeat starts nothing (exit 3, says where it is)
    code, out, err = await cli("replay", first, "--instance-id", "again-1", "--url", url, "--json")
    assert (code, json.loads(out)["id"]) == (0, "again-1"), err
    code, out, err = await cli("replay", first, "--instance-id", "again-1", "--url", url)
    assert code == 3, err
    assert "a run with the id 'again-1' exists already" in err
    assert "cronflow-actors inspect again-1" in err
    assert len(await rt.list_runs()) == 5
    # a resume asked again finds the one started before: it said "started resume" (newcomer
    # h34 F3), as if the run's steps had run again
    failed = await rt.trigger("boom")
    await rt.wait(failed, timeout=5)
    code, _, err = await cli("replay", failed, "--resume", "--url", url)
    assert code == 1, err
    assert "started resume resume:" in err
    code, _, err = await cli("replay", failed, "--resume", "--url", url)
    assert code == 1, err
    assert "found the resume started before (nothing new started): resume:" in err


async def test_client_commands(serve: Serve) -> None:
    rt, client = await serve(flows())
    url = str(client.base_url)
    code, out, err = await cli("run", "double", "--payload", "20", "--url", url, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["status"], result["output"]) == ("completed", 41)
    code, out, err = await cli("inspect", result["id"], "--url", url)
    assert code == 0, err
    assert f"run {result['id']}  double v1  completed" in out
    assert "├─ double [step] completed attempts=1" in out
    assert "└─ plus [step] completed attempts=1" in out
    code, out, err = await cli("run", "boom", "--url", url, "--json")
    assert code == 1, err
    assert json.loads(out)["status"] == "failed"
    code, out, err = await cli("runs", "--workflow", "double", "--url", url)
    assert code == 0, err
    assert result["id"] in out
    paused_run = await rt.trigger("pause")
    await rt.wait_idle()
    [pause] = await rt.list_paused()
    code, _, err = await cli("resume", pause.token, "--payload", '{"approved": true}', "--url", url)
    assert code == 0, err
    assert (await rt.wait(paused_run, timeout=5)).output is True
    code, _, err = await cli("resume", pause.token, "--approve", "--url", url)
    assert code == 3  # a conflict: the pause is over
    assert "already over" in err
    code, _, err = await cli("resume", paused_run, "--approve", "--url", url)  # a run id
    assert code == 3
    assert f"(that is the shape of a run id: 'cronflow-actors inspect {paused_run}'" in err
    other = await rt.trigger("pause")
    await rt.wait_idle()
    code, _, err = await cli("cancel", other, "--url", url, "--reason", "two\nlines")
    assert code == 2, err  # the server's 400, in its words
    assert "the body's reason is 'two\\nlines'" in err
    code, _, err = await cli("cancel", other, "--url", url, "--reason", "asked twice")
    assert code == 0, err
    canceled = await rt.wait(other, timeout=5)
    assert (canceled.status, canceled.error) == ("canceled", "asked twice")
    code, out, err = await cli(
        "events", "publish", "ping", "--payload", '{"n": 7}', "--url", url, "--json"
    )
    assert code == 0, err
    [started] = json.loads(out)["started"]
    assert (await rt.wait(started, timeout=5)).output == 7
    code, out, err = await cli("events", "publish", "ping", "--payload", '{"n": 8}', "--url", url)
    assert code == 0, err
    assert "started 1 run(s), woke a waiting step in 0 run(s)" in out


async def test_run_takes_the_run_s_id_and_says_when_a_run_has_it_already(serve: Serve) -> None:
    # POST /runs takes an instance_id, the CLI did not (newcomer h23): a script could not
    # start a run once per order
    rt, client = await serve(flows())
    url = str(client.base_url)
    code, out, err = await cli("run", "double", "--payload", "20", "--instance-id", "order-7",
                               "--url", url, "--json")  # fmt: skip
    assert code == 0, err
    assert (json.loads(out)["run_id"], (await rt.inspect("order-7")).output) == ("order-7", 41)
    code, out, err = await cli("run", "boom", "--instance-id", "order-7", "--url", url)
    assert (code, out) == (3, "")
    assert err == (
        "cronflow-actors: error: a run with the id 'order-7' exists already (an id names one "
        "run, whatever its flow or state), so nothing was started; 'cronflow-actors inspect "
        f"order-7 --url {url}' shows it\n"
    )
    code, out, err = await cli("run", "double", "--instance-id", "no spaces", "--url", url)
    assert (code, out) == (2, ""), err  # the server's 400, in its words
    assert "instance_id" in err
    assert len(await rt.list_runs()) == 1


async def test_a_payload_is_read_from_a_file_or_stdin_by_every_command_that_takes_one(
    serve: Serve, tmp_path: Path
) -> None:
    # a payload of more than a line had to be pasted into the shell, quotes and all (newcomer
    # h23): @FILE reads it, as curl -d does, and @- reads stdin
    rt, client = await serve(flows())
    url = str(client.base_url)
    twenty, ping = tmp_path / "twenty.json", tmp_path / "ping.json"
    twenty.write_text("20\n")
    ping.write_text('{"n": 9}')
    code, out, err = await cli("run", "double", "--payload", f"@{twenty}", "--url", url, "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["output"] == 41
    code, out, err = await cli("replay", first["id"], "--payload", "@-", "--url", url, "--json",
                               stdin="1")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["output"] == 3
    code, out, err = await cli("events", "publish", "ping", "--payload", f"@{ping}", "--url",
                               url, "--json")  # fmt: skip
    assert code == 0, err
    [started] = json.loads(out)["started"]
    assert (await rt.wait(started, timeout=5)).output == 9
    paused_run = await rt.trigger("pause")
    await rt.wait_idle()
    [pause] = await rt.list_paused()
    decision = tmp_path / "decision.json"
    decision.write_text('{"approved": true, "approved_by": "ada"}')
    code, _, err = await cli("resume", pause.token, "--payload", f"@{decision}", "--url", url)
    assert code == 0, err
    assert (await rt.wait(paused_run, timeout=5)).output is True
    # a file that is not there, or not JSON: a usage error that names it, and nothing is sent
    runs = len(await rt.list_runs())
    missing = tmp_path / "nowhere.json"
    code, _, err = await cli("run", "double", "--payload", f"@{missing}", "--url", url)
    assert code == 2
    assert f"cannot read {str(missing)!r} (No such file or directory)" in err
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    code, _, err = await cli("events", "publish", "ping", "--payload", f"@{broken}", "--url", url)
    assert code == 2
    assert f"JSON in the file {str(broken)!r}" in err
    code, _, err = await cli("run", "double", "--payload", "@-", "--url", url, stdin="")
    assert code == 2
    assert "JSON in stdin" in err
    assert len(await rt.list_runs()) == runs


async def test_resume_records_the_decision_it_is_given_and_says_which(serve: Serve) -> None:
    # a bare `resume TOKEN` recorded "not approved" and printed "the run goes on", exit 0
    # (newcomer h23): now it asks for --approve, --reject or a payload, and says what it sent
    rt, client = await serve(flows())
    url = str(client.base_url)

    async def pause() -> tuple[str, str]:
        run_id = await rt.trigger("pause")
        await rt.wait_idle()
        [token] = [p.token for p in await rt.list_paused() if p.run_id == run_id]
        return run_id, token

    async def recorded(run_id: str) -> Any:
        await rt.wait(run_id, timeout=5)
        return (await rt.inspect(run_id)).steps[0].output

    run_id, token = await pause()
    refusals = [
        (),
        ("--approve", "--reject"),
        ("--approve", "--payload", '{"approved": false}'),
        ("--reject", "--payload", "[1]"),
    ]
    said = []
    for flags in refusals:
        code, out, err = await cli("resume", token, *flags, "--url", url)
        assert (code, out) == (2, ""), err
        assert err.startswith("usage: cronflow-actors resume")
        said.append(err.splitlines()[-1])
    assert said[0] == (
        f"cronflow-actors resume: error: the resume of {token!r} says no decision: pass "
        "--approve or --reject (with --payload '{\"reason\": ...}' to add fields), or --payload "
        'JSON that says "approved" itself'
    )
    assert "argument --reject: not allowed with argument --approve" in said[1]
    assert '--approve and a --payload that says "approved" too: pass one decision' in said[2]
    assert '--reject adds "approved" to a --payload object, and this payload is not one' in said[3]
    assert (await rt.get_paused(token)).token == token  # nothing was sent: still open
    code, out, err = await cli("resume", token, "--approve", "--url", url)
    assert (code, out) == (0, "resumed: approved\n"), err
    assert (await recorded(run_id))["approved"] is True
    run_id, token = await pause()
    why = ["--payload", '{"reason": "too much"}']
    code, out, err = await cli("resume", token, "--reject", *why, "--url", url)
    assert (code, out) == (0, "resumed: rejected\n"), err
    record = await recorded(run_id)
    assert (record["approved"], record["reason"]) == (False, "too much")
    run_id, token = await pause()
    yes = ["--payload", '{"approved": true, "approved_by": "ada"}']
    code, out, err = await cli("resume", token, *yes, "--url", url)
    assert (code, out) == (0, "resumed with your payload\n"), err
    record = await recorded(run_id)
    assert (record["approved"], record["approved_by"]) == (True, "ada")
    # a payload that says no decision: recorded as a rejection, which the CLI now says
    # ("resumed with your payload" hid it: devx h43 F1)
    run_id, token = await pause()
    code, out, err = await cli("resume", token, "--payload", '{"note": "ok"}', "--url", url)
    assert (code, out) == (0, 'resumed with your payload, which says no "approved": a flow\'s '
                           "human step records it as not approved (--approve with the payload "
                           "adds it)\n"), err  # fmt: skip
    assert (await recorded(run_id))["approved"] is False


async def test_bad_input_to_the_cli_exits_non_zero_with_the_key() -> None:
    code, _, err = await cli("runs", "--url", "http://127.0.0.1:9")
    assert code == 4  # the server is unreachable
    assert "cannot reach" in err
    code, _, err = await cli("serve", env={"CRONFLOW_PORT": "ninety"})
    assert code == 2
    assert "setting 'port'" in err
    assert "CRONFLOW_PORT" in err
    code, _, err = await cli("run", "x", "--payload", "{broken")
    assert code == 2
    assert "--payload" in err
    # read as the API reads a body: a key given twice, or a NaN, is refused before it is sent
    # (the last of two keys was taken; NaN came back as the server's "byte 40": devx h43 F16)
    code, _, err = await cli("run", "x", "--payload", '{"a": 1, "a": 2}', "--url", "http://h:9")
    assert (code, "the key 'a' is given twice in one object" in err) == (2, True), err
    code, _, err = await cli("run", "x", "--payload", '{"a": NaN}', "--url", "http://h:9")
    assert (code, "NaN is not JSON" in err) == (2, True), err
    # a url with a path (the console's): every call went to /ui/... (devx h43 F6)
    code, _, err = await cli("runs", "--url", "http://127.0.0.1:9/ui")
    assert code == 2
    assert "the console's address, not the server's: give the server's, as in " in err
    assert "'http://127.0.0.1:9' (the console is at its /ui)" in err


def test_settings_come_from_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "cronflow.toml"
    config.write_text(
        'db = "from-file.db"\nport = 9100\n[tokens.t1]\nid = "ada"\nscopes = ["a:b"]\n'
    )
    settings = load_config(config, environ={"CRONFLOW_PORT": "9200"}, overrides={"db": None})
    assert (settings.db, settings.port) == (str(tmp_path / "from-file.db"), 9200)  # its folder
    assert settings.principals() == {"t1": cf.Principal(id="ada", scopes=frozenset({"a:b"}))}
    assert load_config(config, environ={}, overrides={"port": 9300}).port == 9300
    config.write_text("port = 'x'\n")
    with pytest.raises(ConfigurationError, match="setting 'port'") as bad_port:
        load_config(config, environ={})
    assert str(config) in str(bad_port.value)
    config.write_text("colour = 'blue'\n")
    with pytest.raises(ConfigurationError, match="colour"):
        load_config(config, environ={})


def approval(*, changed: bool = False) -> cf.Flow:
    """A flow that pauses for a person; ``changed``: edited without a version bump."""
    flow = cf.define("approval", version="v1").human_in_the_loop("approve")
    if changed:
        return flow.step("ship", lambda ctx: "ship").step("notify", lambda ctx: "notify")
    return flow.step("send", lambda ctx: "send")


async def test_resuming_a_blocked_run_says_the_servers_reason_not_that_the_pause_ended(
    tmp_path: Path,
) -> None:
    db = tmp_path / "blocked.db"
    async with cf.Runtime(db=db, workflows=[approval()]) as rt:
        await rt.trigger("approval")
        await rt.wait_idle()
        [paused] = await rt.list_paused()
    runtime = cf.Runtime(db=db, workflows=[approval(changed=True)])
    app = create_app(runtime)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):  # as the serve fixture waits (tests/http/conftest.py)
            if server.started:
                break
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        code, _, err = await cli("resume", paused.token, "--approve", "--url", url)
        assert code == 3  # a conflict
        assert "already over" not in err
        assert "is blocked" in err
        assert "migrate it to another version" in err
        code, out, err = await cli("paused", "--url", url)
        assert code == 0, err
        assert "(blocked: resume refused; inspect the run)" in out
        assert "approve one with" not in err  # (newcomer h29: no pause here takes a resume)
    finally:
        server.should_exit = True
        await task


def test_the_next_page_s_command_is_shell_quoted_and_parses_as_this_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "my settings.toml"
    config.write_text('url = "http://127.0.0.1:9"\n')
    asked = []

    def runs(self: Client, query: dict[str, Any]) -> dict[str, Any]:
        asked.append(query)
        run = {"id": "r1", "workflow": "it's mine", "status": "waiting", "created_at": 1.0}
        return {"runs": [run], "limit": query["limit"], "next_cursor": "c 1"}

    monkeypatch.setattr(Client, "runs", runs)
    given = ["runs", "--workflow", "it's mine", "--blocked", "--limit", "7", "--config"]
    assert main([*given, str(config)]) == 0
    [more] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("more:")]
    argv = shlex.split(more.removeprefix("more: "))
    assert argv == ["cronflow-actors", *given[:1], "--cursor", "c 1", *given[1:], str(config)]
    assert main(argv[1:]) == 0
    assert asked[1] == {**asked[0], "cursor": "c 1"}  # the same filters, the next page


def test_a_refused_cancel_of_a_run_that_goes_on_keeps_the_servers_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = "cannot cancel 'r1' as an external caller: instance 'r1' is blocked: ..."

    def call(self: Client, method: str, path: str, *_: Any, **__: Any) -> Any:
        if method == "POST":
            raise ApiError(reason, status=409, slug=slug, exit_code=Exit.NOT_FOUND_OR_CONFLICT)
        if path == "/runs/r3":
            return {"id": "r3", "status": r3_status}
        return {"id": "r1", "status": status, "migrated_to": migrated_to, "current_run_id": current}

    monkeypatch.setattr(Client, "call", call)
    status, slug, migrated_to, current, r3_status = "running", "refused", None, None, "waiting"
    assert main(["cancel", "r1", "--url", "http://127.0.0.1:9"]) == 3
    assert reason in capsys.readouterr().err
    status, slug = "completed", "conflict"  # an ended run: said in plain words
    assert main(["cancel", "r1", "--url", "http://127.0.0.1:9"]) == 3
    assert "run r1 already ended (completed); there is nothing to cancel" in capsys.readouterr().err
    # canceled for its migration: where its work went on, which can be canceled (chaos h32 F3)
    status, migrated_to = "canceled", "r2"
    assert main(["cancel", "r1", "--url", "http://127.0.0.1:9"]) == 3
    said = "already ended (canceled); there is nothing to cancel; its work went on in run r2"
    assert said in capsys.readouterr().err
    # and on through resumes: the chain's end, ended or not (newcomer h33 F4)
    current = "r3"
    assert main(["cancel", "r1", "--url", "http://127.0.0.1:9"]) == 3
    assert "its work went on in run r3: cancel that one" in capsys.readouterr().err
    r3_status = "failed"
    assert main(["cancel", "r1", "--url", "http://127.0.0.1:9"]) == 3
    assert "its work went on in run r3, which has ended too (failed)" in capsys.readouterr().err
    # ended, but its pending migration is another process's to give up: the server's words
    # (the verifier's h27 N2: "already ended ... nothing to cancel" hid where to ask)
    reason, slug = "the migration of run 'r1': process B carries it out; ask again ...", "refused"
    assert main(["cancel", "r1", "--url", "http://127.0.0.1:9"]) == 3
    assert reason in capsys.readouterr().err


async def test_inspect_reads_a_runs_own_pause_never_the_listing(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, client = await serve([*flows(), cf.define("naps").sleep("nap", "1h")])
    url = str(client.base_url)
    paused_run = await rt.trigger("pause")
    asleep = await rt.trigger("naps")  # waiting, but for a timer: not paused
    await rt.wait_idle()
    [pause] = await rt.list_paused()

    listed = rt.list_paused

    async def no_listing(**given: Any) -> Any:
        if given.get("run_id") is None:
            raise AssertionError("inspect listed every pause to find one run's")
        return await listed(**given)  # (its own: how many it waits at)

    monkeypatch.setattr(rt, "list_paused", no_listing)
    code, out, err = await cli("inspect", paused_run, "--url", url, "--json")
    assert code == 0, err
    assert json.loads(out)["pause"]["token"] == pause.token
    code, out, err = await cli("inspect", paused_run, "--url", url)
    assert code == 0, err
    assert f"cronflow-actors resume {pause.token}" in out
    code, out, err = await cli("inspect", asleep, "--url", url, "--json")
    assert code == 0, err
    assert json.loads(out)["pause"] is None


async def test_a_schedule_is_fired_now_over_http_and_from_the_command_line(serve: Serve) -> None:
    """``POST /flows/{id}/fire`` and ``cronflow-actors fire`` start a run now as a tick of the
    flow's schedule would (newcomer h29 F8: ``run`` gave no ``scheduled_at``); a schedule the
    flow does not have, a flow without one and a body it does not take are refused, nothing
    started."""
    nightly = cf.define("nightly").on_schedule("0 2 * * *").step("s", lambda ctx: ctx.payload)
    rt, client = await serve([nightly, *flows()])
    url = str(client.base_url)
    fired = await client.post("/flows/nightly/fire")
    assert fired.status_code == 202, fired.text
    run_id = fired.json()["run_id"]
    assert fired.headers["Location"] == f"/runs/{run_id}"
    output = (await rt.wait(run_id, timeout=5)).output
    assert (output["trigger_type"], output["schedule"], output["fired_now"]) == (
        "schedule",
        "0 2 * * *",
        True,
    )
    refusals = {
        "nightly": ({"schedule": "0 3 * * *"}, 404, "its schedules: '0 2 * * *'"),
        "double": (None, 404, "it has no on_schedule or on_interval"),
        "nope": (None, 404, "no flow 'nope'"),
    }
    for flow, (body, status, words) in refusals.items():
        refused = await client.post(f"/flows/{flow}/fire", json=body)
        assert (refused.status_code, words in refused.json()["detail"]) == (status, True), flow
    bad = await client.post("/flows/nightly/fire", json={"shedule": "0 2 * * *"})
    assert (bad.status_code, bad.json()["type"]) == (400, "urn:cronflow:problem:invalid-body")
    assert len(await rt.list_runs(workflow="nightly")) == 1
    document = (await client.get("/openapi.json")).json()
    assert document["paths"]["/flows/{id}/fire"]["post"]["operationId"] == "fireSchedule"

    code, out, err = await cli("fire", "nightly", "--instance-id", "by-hand", "--url", url,
                               "--json")  # fmt: skip
    assert code == 0, err
    shown = json.loads(out)
    assert (shown["id"], shown["status"], shown["output"]["fired_now"]) == (
        "by-hand",
        "completed",
        True,
    )
    code, out, err = await cli("fire", "nightly", "--schedule", "@hourly", "--url", url)
    assert (code, out) == (3, ""), err
    assert "no schedule '@hourly' in flow 'nightly'; its schedules: '0 2 * * *'" in err
    assert len(await rt.list_runs(workflow="nightly")) == 2
