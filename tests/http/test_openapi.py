"""The OpenAPI document of a real ``serve`` process: it validates (openapi-spec-validator), it
documents every route the app serves with its parameters, and the API holds up when
schemathesis fuzzes it from the document: no 5xx, every answer as documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

import cronflow_actors as cf
from cronflow_actors.http import console
from cronflow_actors.http.app import create_app
from cronflow_actors.runtime import not_one_line
from tests.http import fuzz_app
from tests.http.conftest import Serve
from tests.serving import ROOT, Served, serving

APP = str(ROOT / "tests" / "http" / "fuzz_app.py")
TOKEN = "fuzz-token"
METHODS = {"get", "post", "put", "patch", "delete"}


def with_tokens(tmp_path: Path) -> list[str]:
    config = tmp_path / "tokens.toml"
    config.write_text(f'[tokens."{TOKEN}"]\nid = "fuzzer"\nscopes = []\n')
    return ["--config", str(config)]


@pytest.mark.parametrize("tokens", [False, True], ids=["open", "tokens"])
def test_the_document_validates_and_says_what_needs_a_token(tmp_path: Path, tokens: bool) -> None:
    extra = with_tokens(tmp_path) if tokens else []
    with serving(APP, tmp_path / "doc.db", *extra) as served:
        document = httpx.get(f"{served.url}/openapi.json").json()
    validate(document)  # raises with every problem it finds
    assert document["openapi"] == "3.1.0"
    assert ("security" in document) is tokens
    runs = document["paths"]["/runs"]["post"]
    assert ("401" in runs["responses"]) is tokens
    assert document["paths"]["/healthz"]["get"].get("security") == ([] if tokens else None)
    # a signed webhook always says so: its signature header and a 401
    signed = document["paths"]["/webhooks/signed"]["post"]
    assert [p["name"] for p in signed["parameters"]] == ["x-signature-256"]
    assert "401" in signed["responses"]
    # what any route may answer (the hostile client's F4): the connection limit's 503, and on a
    # loopback server a Host it does not answer to, 403; a keyed webhook's key may name a run
    # of another flow (409); a publish's key is at most 200 characters
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if path not in ("/healthz", "/readyz"):
                assert {"403", "503"} <= set(operation["responses"]), (method, path)
    assert "409" in document["paths"]["/webhooks/keyed"]["post"]["responses"]
    [name, key] = document["paths"]["/events/{name}"]["post"]["parameters"]
    assert (key["schema"]["type"], key["schema"]["maxLength"]) == ("string", 200)
    # printable, as the server takes it (hostile h42 F9: a tab was in the document's reach)
    printable = re.compile(key["schema"]["pattern"])
    assert printable.match("order 1/é") is not None
    for unprintable in ("a\tb", "a\x00", "a\u2028b", "a\u00a0b"):
        assert printable.match(unprintable) is None, unprintable
    # as the server checks them (hostile h38 F6): a name of 1-200 characters, a slash in it
    # (orders/created is published as orders%2Fcreated), a reason of up to 500, each on one line
    reason = document["components"]["schemas"]["CancelRun"]["properties"]["reason"]
    assert (name["schema"]["maxLength"], reason["maxLength"]) == (200, 500)
    assert name["schema"]["pattern"] == reason["pattern"]
    one_line = re.compile(reason["pattern"])  # as jsonschema (schemathesis) reads it
    assert one_line.match("orders/created")
    for wrong in ("two\nlines", "turned\u202earound", "last\n"):  # ($ took a last \n)
        assert not one_line.match(wrong), wrong
    # every character as the runtime sees it (surrogates are no text)
    every = (chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    assert [c for c in every if bool(one_line.match(f"a{c}b")) == not_one_line(c)] == []
    # a path parameter as the server takes it: one segment, one line, a tab allowed (hostile
    # h44 F3: the document let schemathesis send a control character the server refuses)
    [run_id] = document["paths"]["/runs/{run_id}"]["get"]["parameters"][:1]
    segment = re.compile(run_id["schema"]["pattern"])
    every = (chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and c != ord("/"))
    assert [c for c in every if bool(segment.match(f"a{c}b")) == not_one_line(c)] == ["\t"]
    assert segment.match("a/b") is None
    # a text query parameter as the server takes it: not empty or blank (retest h44 N1)
    workflow = document["paths"]["/runs"]["get"]["parameters"]
    [flow] = [p for p in workflow if p["name"] == "workflow"]
    assert flow["schema"]["minLength"] == 1
    assert re.search(flow["schema"]["pattern"], " ") is None
    assert re.search(flow["schema"]["pattern"], " echoes") is not None
    # what a page of runs leaves out says so (hostile h34 L4: "trigger": null read as none kept)
    run = document["components"]["schemas"]["RunInfo"]["properties"]
    for field in ("trigger", "current_run_id", "migration_pending"):
        assert "null in the pages of GET /runs" in run[field]["description"], field
    assert "in GET /runs' pages too" in run["resumed_as"]["description"]  # (newcomer h35 F5)


async def test_every_served_route_is_documented_with_its_parameters(serve: Serve) -> None:
    app = create_app(cf.Runtime(workflows=fuzz_app.workflows))
    served: dict[str, set[str]] = {}
    for route in app.routes:
        assert isinstance(route, Route)
        if route.path in console.PATHS:
            continue  # the web console's pages, not the API
        # its template as OpenAPI writes it: without a converter ({name}, not {name:path})
        served.setdefault(route.path_format, set()).update(m.lower() for m in route.methods or ())
    _, client = await serve(fuzz_app.workflows)  # the same app, served
    document = (await client.get("/openapi.json")).json()
    documented = {
        path: {m for m in item if m in METHODS} for path, item in document["paths"].items()
    }
    assert documented == {path: methods - {"head"} for path, methods in served.items()}
    for path, item in document["paths"].items():
        in_path = set(re.findall(r"\{([^}]+)\}", path))
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "path"}
            assert declared == in_path, (method, path)
            assert operation["operationId"]


def seed(served: Served, headers: dict[str, str]) -> None:
    """Something for the fuzzer to find: runs paused for a human (so /paused yields resume
    tokens), finished runs, and a net workflow (net actions need a caller: with tokens)."""
    for workflow in ("hold", "hold", "quick"):
        answer = httpx.post(f"{served.url}/runs", json={"workflow": workflow}, headers=headers)
        assert answer.status_code == 202, answer.text
    started = httpx.post(f"{served.url}/workflows", json={"workflow": "review"}, headers=headers)
    assert started.status_code == (201 if headers else 401), started.text


@pytest.mark.parametrize("tokens", [False, True], ids=["open", "tokens"])
def test_schemathesis_fuzzes_the_api_from_its_document(tmp_path: Path, tokens: bool) -> None:
    extra = with_tokens(tmp_path) if tokens else []
    headers = {"Authorization": f"Bearer {TOKEN}"} if tokens else {}
    with serving(APP, tmp_path / "fuzz.db", *extra) as served:
        seed(served, headers)
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{served.url}/openapi.json",
            "--checks",
            "all",
            # An opaque cursor or token that fits the schema but names nothing is refused
            # with a 400 or a 404; that check would take it for a valid request rejected.
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "15",  # (each operation; the suite's time: a helper fuzzes longer each stop)
            "--seed",
            "7",
            "--workers",
            "1",  # Python 3.11's ast is not thread-safe under hypothesis' lambda descriptions
            "--request-timeout",
            "10",
        ]
        if tokens:
            command += ["--header", f"Authorization: Bearer {TOKEN}"]
        fuzzed = subprocess.run(
            command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
        )
        assert fuzzed.returncode == 0, fuzzed.stdout[-8000:] + fuzzed.stderr[-2000:]
        assert httpx.get(f"{served.url}/healthz").status_code == 200
    log = served.output()
    assert "Traceback" not in log, log[-4000:]
    assert " 500 " not in log
