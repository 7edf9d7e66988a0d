"""Pausing a flow's schedules over HTTP (``POST /flows/{id}/schedules/pause`` and
``.../resume``) and from the command line (``pause-schedules``, ``resume-schedules``; ``flows``
says so): an operator had no way but a code change and two restarts (newcomer h39 F3)."""

from __future__ import annotations

import json

import cronflow_actors as cf
from tests.http.conftest import Serve
from tests.http.test_cli_commands import cli

ADA = {"Authorization": "Bearer t-ada-3f9a"}
GRAFANA = {"Authorization": "Bearer t-grafana-77c1"}
TOKENS = {"t-ada-3f9a": cf.Principal(id="ada"), "t-grafana-77c1": cf.Principal(id="grafana")}


async def test_a_flow_s_schedules_are_paused_and_resumed_over_http_and_the_cli(
    serve: Serve,
) -> None:
    nightly = cf.define("nightly").on_schedule("0 2 * * *").step("s", lambda ctx: 1)
    plain = cf.define("plain").step("s", lambda ctx: 1)
    rt, client = await serve(
        [nightly, plain], tokens=TOKENS, read_only_tokens=frozenset({"t-grafana-77c1"})
    )
    refused = await client.post("/flows/nightly/schedules/pause", headers=GRAFANA)
    assert refused.status_code == 403, refused.text  # a read-only token
    paused = await client.post(
        "/flows/nightly/schedules/pause", json={"note": "billing is down"}, headers=ADA
    )
    assert paused.status_code == 200, paused.text
    said = paused.json()
    assert (said["flow"], said["paused"]["by"], said["paused"]["note"]) == (
        "nightly",
        "ada",
        "billing is down",
    )
    assert (await rt.schedules_paused("nightly")) is not None
    fires = (await client.get("/flows/nightly/next-fires", headers=GRAFANA)).json()
    assert fires["paused"]["note"] == "billing is down"
    for path, body, status, words in [
        ("/flows/plain/schedules/pause", None, 404, "it has no on_schedule or on_interval"),
        ("/flows/nope/schedules/resume", None, 404, "no flow 'nope'"),
        ("/flows/nightly/schedules/pause", {"note": "a\nb"}, 400, "line breaks"),
        ("/flows/nightly/schedules/pause", {"nte": "x"}, 400, "nte"),
        ("/flows/nightly/schedules/resume", {"note": "x"}, 400, "note"),  # (hostile h42 F1:
    ]:  # a resume never read its body, and resumed them)
        answer = await client.post(path, json=body, headers=ADA)
        assert (answer.status_code, words in answer.json()["detail"]) == (status, True), path
    malformed = await client.post(
        "/flows/nightly/schedules/resume",
        content=b"{not json",
        headers={**ADA, "content-type": "application/json"},
    )
    assert malformed.status_code == 400, malformed.text
    assert (await rt.schedules_paused("nightly")) is not None  # the refused ones changed nothing

    url, env = str(client.base_url), {"CRONFLOW_TOKEN": "t-ada-3f9a"}
    code, out, err = await cli("flows", "--url", url, env=env)
    assert code == 0, err
    assert "schedules paused since" in out
    assert "by ada: billing is down" in out
    assert "resume them: cronflow-actors resume-schedules nightly" in out
    code, out, err = await cli("resume-schedules", "nightly", "--url", url, env=env)
    assert (code, out.strip()) == (
        0,
        "the schedules of nightly are resumed: their next tick starts a run",
    ), err
    assert await rt.schedules_paused("nightly") is None
    code, out, err = await cli("resume-schedules", "nightly", "--url", url, "--json", env=env)
    assert (code, json.loads(out)) == (0, {"flow": "nightly", "resumed": False}), err
    code, out, err = await cli("pause-schedules", "nightly", "--note", "again", "--url", url,
                               env=env)  # fmt: skip
    assert code == 0, err
    assert out.startswith("the schedules of nightly are paused (since ")
    assert (await rt.schedules_paused("nightly")).note == "again"  # type: ignore[union-attr]
