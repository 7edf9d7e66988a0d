"""The client commands as people and scripts use them: subprocesses against a real ``serve``
with a token configured. Exit codes: 0 ok, 1 run failed, 2 usage, 3 not found or conflict,
4 server unreachable (``cronflow_actors/cli/exits.py``)."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from tests.serving import ROOT, Served, serving

TOKEN = "cli-test-token"
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("cli")
    config = folder / "cronflow.toml"
    config.write_text(f'[tokens."{TOKEN}"]\nid = "ops"\nscopes = []\n')
    app = "tests.console.console_app:workflows"
    with serving(app, folder / "cli.db", "--config", str(config)) as running:
        yield running


def cli(
    *args: str, served: Served | None = None, token: str | None = TOKEN
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CRONFLOW_TOKEN", None)
    if served is not None:
        env["CRONFLOW_URL"] = served.url
        if token is not None:
            env["CRONFLOW_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "cronflow_actors", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_version_flag() -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert re.fullmatch(r"cronflow-actors \S+\n", result.stdout)


def test_output_to_a_reader_that_stopped_reading_is_not_an_error() -> None:
    # `cronflow-actors runs --json | head -1`: head closes the pipe before the rest is written
    process = subprocess.Popen(
        [sys.executable, "-m", "cronflow_actors", "version"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    assert process.stdout is not None
    process.stdout.close()  # long before the interpreter has started and printed
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert b"Traceback" not in stderr


def test_run_waits_and_prints_for_people_or_as_json(served: Served) -> None:
    result = cli("run", "greet", "--payload", '{"name": "ada"}', served=served)
    assert result.returncode == 0, result.stderr
    assert re.search(r"started run [0-9a-f]{32}", result.stderr)
    assert re.search(r"greet\s+completed in \d", result.stdout)
    assert "hello ada" in result.stdout
    result = cli("run", "greet", "--payload", '{"name": "bo"}', "--json", served=served)
    assert result.returncode == 0
    answer = json.loads(result.stdout)
    assert answer["status"] == "completed"
    assert answer["run_id"] == answer["id"]  # the key --no-wait prints, too
    assert answer["output"] == {"greeted": "hello bo"}
    failed = cli("run", "boom", served=served)
    assert failed.returncode == 1
    assert "the card was declined" in failed.stdout


def test_run_no_wait_prints_the_id_at_once(served: Served) -> None:
    result = cli("run", "hold", "--no-wait", served=served)
    assert result.returncode == 0
    run_id = result.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", run_id)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{served.url}/runs/{run_id}", headers=headers).status_code == 200
    as_json = cli("run", "hold", "--no-wait", "--json", served=served)
    assert set(json.loads(as_json.stdout)) == {"run_id"}


def test_run_timeout_on_a_paused_run_says_how_to_resume_it(served: Served) -> None:
    result = cli("run", "hold", "--timeout", "1.5", served=served)
    assert result.returncode == 5  # under way: 1, "failed", read as start it again
    assert "is paused at step 'approve' for a person" in result.stderr
    assert "this command waits on for its end meanwhile (Ctrl-C stops waiting" in result.stderr
    token = re.search(r"cronflow-actors resume (\S+)", result.stderr)
    assert token is not None
    assert "did not end within 1.5 s" in result.stderr
    run_id = re.search(r"started run (\S+);", result.stderr)
    assert run_id is not None
    inspected = cli("inspect", run_id.group(1), served=served)
    assert inspected.returncode == 0
    assert f"cronflow-actors resume {token.group(1)}" in inspected.stdout
    assert "--url" not in inspected.stdout  # the server came from CRONFLOW_URL: found again
    given = cli("inspect", run_id.group(1), "--url", served.url, served=served)
    assert f"--approve --url {served.url}\n" in given.stdout  # pasted as is
    assert TIME.search(inspected.stdout)
    as_json = json.loads(cli("inspect", run_id.group(1), "--json", served=served).stdout)
    assert as_json["pause"]["token"] == token.group(1)
    resumed = cli("resume", token.group(1), "--payload", '{"approved": true}', served=served)
    assert resumed.returncode == 0
    assert "resumed" in resumed.stdout
    again = cli("resume", token.group(1), "--approve", served=served)
    assert again.returncode == 3
    # why, as the server says it (it said "resumed before, or timed out", either way)
    assert re.search(r"is already over: it was resumed at .* UTC by ops; nothing", again.stderr)
    for bad in ("0", "-1", "soon"):
        refused = cli("run", "hold", "--timeout", bad, served=served)
        assert refused.returncode == 2
        assert "--timeout" in refused.stderr


def test_paused_lists_the_tokens_with_a_header(served: Served) -> None:
    started = cli("run", "hold", "--no-wait", served=served).stdout.strip()
    result = cli("paused", served=served)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "TOKEN", "RUN", "ID", "WORKFLOW", "STEP", "PAUSED", "EXPIRES", "DESCRIPTION"
    ]  # fmt: skip
    [row] = [line for line in lines if started in line]
    assert "approve the refund" in row
    assert TIME.search(row)
    page = json.loads(cli("paused", "--json", served=served).stdout)
    assert started in [p["run_id"] for p in page["paused"]]
    # one run's pauses only (a net's several, a flow's item flows')
    other = cli("run", "hold", "--no-wait", served=served).stdout.strip()
    mine = json.loads(cli("paused", "--run", started, "--json", served=served).stdout)
    assert [p["run_id"] for p in mine["paused"]] == [started]
    done = cli("run", "greet", "--payload", '{"name": "x"}', "--json", served=served)
    greeted = json.loads(done.stdout)
    none = cli("paused", "--run", greeted["run_id"], served=served)
    assert (none.returncode, none.stdout) == (
        0,
        f"run {greeted['run_id']} waits for no person (asked the server at {served.url})\n",
    )
    typo = cli("paused", "--run", "no-such-run", served=served)
    assert typo.returncode == 3
    assert "no-such-run" in typo.stderr
    assert other != started


def test_runs_has_a_header_readable_times_and_checked_choices(served: Served) -> None:
    cli("run", "greet", "--payload", '{"name": "x"}', served=served)
    result = cli("runs", "--workflow", "greet", served=served)
    assert result.returncode == 0
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["RUN", "ID", "WORKFLOW", "STATUS", "STARTED", "DURATION"]
    assert rows
    assert all("greet" in row and TIME.search(row) for row in rows)
    assert re.search(r"\d+(\.\d)? (ms|s)$", rows[0])
    page = json.loads(cli("runs", "--status", "failed", "--json", served=served).stdout)
    assert {run["status"] for run in page["runs"]} <= {"failed"}
    bogus = cli("runs", "--status", "bogus", served=served)
    assert bogus.returncode == 2
    assert "'bogus' is none of running, waiting, completed" in bogus.stderr  # the choices
    # the metrics' word for a run waiting on a person: pointed to where those are (the
    # newcomer's L5)
    paused = cli("runs", "--status", "paused", served=served)
    assert paused.returncode == 2
    assert "`cronflow-actors paused` lists those" in paused.stderr
    assert cli("runs", "--limit", "0", served=served).returncode == 2
    paged = cli("runs", "--limit", "1", served=served)
    assert "more: cronflow-actors runs --cursor" in paged.stderr
    # a misspelled flow id matches nothing: said, with the flows there are
    typo = cli("runs", "--workflow", "gret", served=served)
    assert typo.returncode == 0
    # (and which server said so: a CRONFLOW_URL naming another read as runs lost, h42 F2)
    assert typo.stdout.splitlines()[0] == f"no runs match (asked the server at {served.url})"
    assert "'gret' is not one of the flows registered on this server: [" in typo.stdout
    assert "'greet'" in typo.stdout


def test_the_next_page_s_command_keeps_every_filter_of_the_page(served: Served) -> None:
    # "more: cronflow-actors runs --cursor X" dropped --workflow, --status, --limit and --url:
    # following it gave an unfiltered page of 50 (newcomer h23)
    for name in ("p1", "p2", "p3", "p4"):  # two full pages at least
        cli("run", "greet", "--payload", json.dumps({"name": name}), served=served)
    cli("run", "boom", served=served)  # a run of another flow, failed
    filters = ["--workflow", "greet", "--status", "completed", "--limit", "2"]
    first = cli("runs", *filters, "--url", served.url, served=served)
    assert first.returncode == 0, first.stderr
    more = re.search(r"^more: (.+)$", first.stderr, re.MULTILINE)
    assert more is not None, first.stderr
    argv = shlex.split(more.group(1))
    assert argv[:3] == ["cronflow-actors", "runs", "--cursor"]
    assert argv[4:] == [*filters, "--url", served.url]
    second = cli(*argv[1:], served=served)
    assert second.returncode == 0, second.stderr
    rows = second.stdout.splitlines()[1:]
    assert len(rows) == 2
    assert all(re.search(r"\sgreet\s+completed\s", row) for row in rows)
    assert not set(rows) & set(first.stdout.splitlines()[1:])  # the next page, not this one
    cli("run", "hold", "--no-wait", served=served)
    cli("run", "hold", "--no-wait", served=served)
    paused = cli("paused", "--limit", "1", served=served)
    more = re.search(r"^more: (.+)$", paused.stderr, re.MULTILINE)
    assert more is not None, paused.stderr
    argv = shlex.split(more.group(1))
    assert argv[:3] == ["cronflow-actors", "paused", "--cursor"]
    assert argv[4:] == ["--limit", "1"]  # the server came from CRONFLOW_URL: found again


def test_cancel_not_found_and_conflict_exit_3_in_plain_words(served: Served) -> None:
    run_id = cli("run", "hold", "--no-wait", served=served).stdout.strip()
    first = cli("cancel", run_id, served=served)
    assert first.returncode == 0
    assert f"canceled run {run_id}" in first.stdout
    again = cli("cancel", run_id, served=served)
    assert again.returncode == 3
    assert f"run {run_id} already ended (canceled" in again.stderr
    assert "nothing to cancel" in again.stderr
    assert "cannot become" not in again.stderr  # no engine jargon
    missing = cli("cancel", "no-such-run", served=served)
    assert missing.returncode == 3
    assert "no run 'no-such-run'" in missing.stderr
    assert "'cronflow-actors runs' lists" in missing.stderr
    assert cli("inspect", "no-such-run", served=served).returncode == 3
    # a part's id (a child workflow's, as `net show` prints it): the server's words name its
    # run, and the CLI kept only its own "no run" (the newcomer's h26 F6)
    part = cli("inspect", f"{run_id}.f7", served=served)
    assert part.returncode == 3
    assert f"it names a part of run '{run_id}'" in part.stderr
    unknown = cli("resume", "no-such-token", "--reject", served=served)
    assert unknown.returncode == 3
    assert "'cronflow-actors paused' lists" in unknown.stderr


def test_events_publish(served: Served) -> None:
    result = cli("events", "publish", "order.paid", "--payload", '{"order": 3}', served=served)
    assert result.returncode == 0
    assert "started 1 run(s)" in result.stdout
    as_json = cli("events", "publish", "order.paid", "--payload", '{"order": 4}', "--json",
                  served=served)  # fmt: skip
    assert len(json.loads(as_json.stdout)["started"]) == 1
    bad = cli("events", "publish", "order.paid", "--payload", "{nope", served=served)
    assert bad.returncode == 2
    assert "--payload" in bad.stderr
    keyed = ["events", "publish", "order.paid", "--payload", '{"order": 5}', "--json"]
    once = cli(*keyed, "--idempotency-key", "order-5", served=served)
    again = cli(*keyed, "--idempotency-key", "order-5", served=served)
    started = json.loads(once.stdout)["started"]
    assert len(started) == 1
    assert json.loads(again.stdout)["started"] == started  # sent again: not started twice


def test_tokens_and_an_unreachable_server(served: Served) -> None:
    missing = cli("runs", served=served, token=None)
    assert missing.returncode == 2
    assert "needs a token: pass --token" in missing.stderr
    wrong = cli("runs", "--token", "nope", served=served)
    assert wrong.returncode == 2
    assert "does not know this token" in wrong.stderr
    down = cli("runs", "--url", "http://127.0.0.1:9")
    assert down.returncode == 4
    assert "cannot reach the server at http://127.0.0.1:9" in down.stderr
    assert "--url" in down.stderr


def test_a_url_without_its_scheme_is_bad_usage_that_says_so() -> None:
    bare = cli("runs", "--url", "localhost:8743")
    assert bare.returncode == 2  # usage, not "unreachable" (4)
    assert "url 'localhost:8743' has no scheme" in bare.stderr
    assert "'http://localhost:8743'" in bare.stderr
    assert "cannot reach" not in bare.stderr
    other = cli("inspect", "r1", "--url", "ftp://localhost:8743")
    assert other.returncode == 2
    assert "not an http:// or https:// URL" in other.stderr


def test_help_documents_the_exit_codes() -> None:
    result = cli("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "Exit codes: 0 ok; 1 the run failed" in text
    assert "3 not found or conflict; 4 server unreachable" in text
    assert "5 a run started, only waiting for its end failed" in text


def test_inspect_shows_one_attempt_for_a_parallel_step_that_was_not_retried(
    served: Served,
) -> None:
    run = json.loads(cli("run", "greet", "--payload", '{"name": "p"}', "--json",
                         served=served).stdout)  # fmt: skip
    shown = cli("inspect", run["id"], served=served).stdout
    assert "both [parallel] completed attempts=1" in shown, shown


def test_the_packaged_example_is_what_serve_runs_by_default(tmp_path: Path) -> None:
    from cronflow_actors.cli.serve import DEFAULT_APP, load_app

    assert DEFAULT_APP.startswith("cronflow_actors.examples.")
    assert [flow.id for flow in load_app(DEFAULT_APP)] == ["order-processing"]


class _Stranger(http.server.BaseHTTPRequestHandler):
    """Another server on the address the CLI was given: each path answers as ``ANSWERS``."""

    ANSWERS: ClassVar[dict[str, tuple[int, str, bytes]]] = {
        "/json": (200, "application/json", b"{}"),
        "/null": (200, "application/json", b"null"),
        "/login": (200, "text/html", b"<!DOCTYPE html><title>Sign in</title>"),
        "/missing": (404, "text/html", b"<!DOCTYPE HTML><title>Error response</title>"),
        "/ok": (200, "application/json", b'{"status": "ok", "run_id": "abc"}'),
        "/api": (404, "application/json", b'{"error": "no such resource"}'),
        "/gateway": (502, "text/html", b"<html><title>502 Bad Gateway</title></html>"),
    }

    def _answer(self) -> None:
        status, kind, body = self.ANSWERS["/" + self.path.split("/")[1]]  # /json/runs/abc
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def stub(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A server on loopback whose answers ``handler`` makes up: its URL while it serves."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def stranger() -> Iterator[str]:
    with stub(_Stranger) as url:
        yield url


@pytest.mark.parametrize(
    ("kind", "command"),
    [
        ("json", ("cancel", "abc")),
        ("json", ("resume", "tok", "--approve")),
        ("json", ("events", "publish", "e")),
        ("null", ("run", "flow", "--no-wait")),
        ("json", ("trace", "abc")),
        ("login", ("runs",)),
        ("login", ("cancel", "abc")),
        ("missing", ("inspect", "abc")),
        (
            "ok",
            ("resume", "tok", "--reject"),
        ),  # fields of the right names, not the values ours carry
        ("ok", ("cancel", "abc")),
        ("api", ("inspect", "abc")),  # another API's JSON error, not one of our problems
    ],
)
def test_another_server_at_the_url_is_named_not_taken_for_an_answer(
    stranger: str, kind: str, command: tuple[str, ...]
) -> None:
    """A wrong --url whose server answers 200 with JSON of its own, or an HTML page (a proxy's
    login page, a 404): never "canceled" or "resumed" with exit 0, never a traceback."""
    result = cli(*command, "--url", f"{stranger}/{kind}")
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert "did not answer as cronflow-actors" in result.stderr
    assert "--url" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_proxy_s_bad_gateway_page_is_a_retry_later(stranger: str) -> None:
    """A proxy in front of serve answers 502 while serve restarts: that is no other server."""
    result = cli("runs", "--url", f"{stranger}/gateway")
    assert result.returncode == 4, result.stderr
    assert "cannot take this now (HTTP 502, text/html" in result.stderr
    assert "retry later" in result.stderr
    assert "Traceback" not in result.stderr


class _Older(http.server.BaseHTTPRequestHandler):
    """A server from before long polls, as ``run`` sees it: its run ends at the third read, and a
    read with ``wait`` is refused as our server refuses a query parameter it does not know."""

    reads: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self._json(202, {"run_id": "r1"})

    def do_GET(self) -> None:
        self.reads.append(self.path)
        if "wait=" in self.path:
            detail = "GET /runs/{run_id} takes no query parameter (given: 'wait')"  # (its words)
            problem = {"type": "urn:cronflow:problem:invalid-argument", "detail": detail}
            self._json(400, problem, "application/problem+json")
            return
        done = sum("wait=" not in read for read in self.reads) >= 3
        run = {"id": "r1", "workflow": "w", "status": "completed" if done else "running"}
        self._json(200, run | {"output": 7, "steps": []})

    def _json(self, status: int, body: Any, kind: str = "application/json") -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


def test_run_waits_by_long_polls_and_polls_a_server_without_them() -> None:
    # the run's end answers the read that waits for it (it polled every second, up to a second
    # late); a server from before long polls is polled as before
    with stub(_Older) as url:
        older = cli("run", "w", "--url", url)
    assert older.returncode == 0, older.stderr
    assert "run r1  w  completed" in older.stdout
    assert _Older.reads[0] == "/runs/r1"  # at once: a pause to tell of
    assert _Older.reads[1] == "/runs/r1?wait=1"  # refused: polled from then on
    assert all("wait" not in read for read in _Older.reads[2:])


class _Hasty(_Older):
    """A server (or a proxy in front of one) that takes ``wait`` and answers at once anyway."""

    reads: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.reads.append(self.path)
        self._json(200, {"id": "r1", "workflow": "w", "status": "running", "steps": []})


def test_run_does_not_spin_on_a_server_that_answers_a_long_poll_at_once() -> None:
    # it asked again at once, thousands of times a second (review h33 F1), and its last wait
    # went past --timeout by up to a second (F5)
    with stub(_Hasty) as url:
        result = cli("run", "w", "--timeout", "2", "--url", url)
    assert result.returncode == 5, result.stderr
    assert "did not end within 2 s" in result.stderr
    assert 3 <= len(_Hasty.reads) < 60, len(_Hasty.reads)


class _Pretender(_Older):
    """A server that took the start, then answers every read with a page of its own."""

    reads: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        page = b"<!DOCTYPE html><title>Sign in</title>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)


def test_run_whose_wait_fails_after_its_start_says_the_run_started() -> None:
    # "nothing was done that this command can tell", right after "started run r1", invited a
    # second start (retest2 h33 F6)
    with stub(_Pretender) as url:
        result = cli("run", "w", "--url", url)
    assert result.returncode == 5, result.stderr  # (4 read "retry": review h34 F4)
    assert "run r1 started, only waiting for it failed" in result.stderr
    assert "nothing was done" not in result.stderr


def restarting(*, gone: bool) -> type[_Older]:
    """A server of its own (each test its own record) that took the start, then went away for
    two seconds (a restart), then answers the run ended; ``gone``: it never answers again."""
    return type("Restarting", (_Restarting,), {"reads": [], "first": [], "gone": gone})


class _Restarting(_Older):
    reads: ClassVar[list[str]] = []
    first: ClassVar[list[float]] = []
    gone: ClassVar[bool] = False

    def do_GET(self) -> None:
        self.reads.append(self.path)
        self.first.append(time.monotonic())
        if self.gone or time.monotonic() - self.first[0] < 2.0:
            self.close_connection = True  # no answer: the client reads a closed connection
            return
        self._json(200, {"id": "r1", "workflow": "w", "status": "completed", "output": 7})


def test_run_waits_through_a_restart_and_says_when_the_server_stays_away() -> None:
    # it said "cannot reach the server ... Is 'cronflow-actors serve' running there?" at the
    # first closed connection of a restart, of a run it had started (retest h33 F6)
    back = restarting(gone=False)
    with stub(back) as url:
        result = cli("run", "w", "--url", url)
    assert result.returncode == 0, result.stderr
    assert "run r1  w  completed" in result.stdout
    assert 2 <= len(back.reads) < 10, back.reads
    with stub(restarting(gone=True)) as url:
        result = cli("run", "w", "--timeout", "3", "--url", url)
    assert result.returncode == 5, result.stderr
    said = result.stderr
    assert "run r1 started; only waiting for it failed: as this command waited" in said, said
    assert "stopped answering" in said
    assert "'cronflow-actors inspect r1'" in said
    assert "Is 'cronflow-actors serve' running there?" not in said


def test_run_json_names_the_run_it_started_when_only_the_wait_failed() -> None:
    # with --json, nothing reached stdout: a script could only start it again (chaos h34 F2)
    with stub(restarting(gone=True)) as url:
        result = cli("run", "w", "--json", "--timeout", "2", "--url", url)
    assert result.returncode == 5, result.stderr
    assert json.loads(result.stdout) == {"run_id": "r1"}
    assert "run r1 started; only waiting for it failed" in result.stderr


class _Migrated(_Older):
    """A server whose run r1 a migration replaced with r2, which then completed."""

    reads: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.reads.append(self.path)
        if self.path.startswith("/runs/r1"):
            run = {"id": "r1", "workflow": "w", "status": "canceled", "migrated_to": "r2"}
            self._json(200, run | {"current_run_id": "r2"})
            return
        self._json(200, {"id": "r2", "workflow": "w", "status": "completed", "output": 7})


def test_run_follows_its_run_to_where_a_migration_took_its_work() -> None:
    # it said "canceled", exit 1, of a run whose work went on in its migration's (chaos h34 F3)
    with stub(_Migrated) as url:
        result = cli("run", "w", "--url", url)
        as_json = cli("run", "w", "--json", "--url", url)
    assert result.returncode == 0, result.stderr
    assert "run r1 canceled: its work goes on in run r2; waiting for that one" in result.stderr
    assert "run r2  w  completed" in result.stdout
    assert as_json.returncode == 0, as_json.stderr
    summary = json.loads(as_json.stdout)
    assert (summary["run_id"], summary["started_run_id"], summary["output"]) == ("r2", "r1", 7)


class _MigratingSlowly(_Older):
    """A server whose run r1 reads, for its first two reads, canceled for a migration whose run
    has not started yet; then that run r2, which completed."""

    reads: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.reads.append(self.path)
        if self.path.startswith("/runs/r1"):
            pending = sum(read.startswith("/runs/r1") for read in self.reads) <= 2
            run = {"id": "r1", "workflow": "w", "status": "canceled", "migrated_to": "r2"}
            went = {"migration_pending": True} if pending else {"current_run_id": "r2"}
            self._json(200, run | went)
            return
        self._json(200, {"id": "r2", "workflow": "w", "status": "completed", "output": 7})


def test_run_waits_for_a_migration_whose_run_is_starting() -> None:
    # its long poll answered as the old run's cancel was durable, the new run not started yet:
    # "canceled", exit 1, still (retest h34 F1)
    with stub(_MigratingSlowly) as url:
        result = cli("run", "w", "--url", url)
    assert result.returncode == 0, result.stderr
    assert "its work goes on in run r2" in result.stderr
    assert "run r2  w  completed" in result.stdout


class _StuckMigration(_Older):
    """A server whose run r1 was canceled for a migration whose run never starts."""

    reads: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.reads.append(self.path)
        run = {"id": "r1", "workflow": "w", "status": "canceled", "migrated_to": "r2"}
        self._json(200, run | {"migration_pending": True})


def test_run_says_a_migration_left_pending_carries_its_work_and_exits_5() -> None:
    # "canceled", exit 1, and nothing of the migration: a script would start the work again
    # (retest2 h34 F1)
    with stub(_StuckMigration) as url:
        result = cli("run", "w", "--json", "--timeout", "2", "--url", url)
    assert result.returncode == 5, result.stderr
    assert "its migration to r2, which is pending" in result.stderr
    assert "do not start it again" in result.stderr
    assert json.loads(result.stdout)["migration_pending"] == "r2"
