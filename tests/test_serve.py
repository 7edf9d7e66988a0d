"""``cronflow-actors serve`` (what ``make run`` starts) in a real process: it serves the bundled
example's webhook, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving import ROOT, free_port, reap
from tests.test_cli import cli


def test_serve_runs_the_bundled_example_and_drains_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cronflow_actors",
            "serve",
            "--db",
            str(tmp_path / "run.db"),
            "--port",
            str(port),
            "--log-format",
            "json",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        order = {"order_id": "o-9", "customer": "ada", "amount": 250, "items": ["book"]}
        response = httpx.post(f"{base}/webhooks/orders", json=order)
        assert response.status_code == 202
        run_id = response.json()["run_id"]
        for _ in range(200):
            run = httpx.get(f"{base}/runs/{run_id}").json()
            if run["status"] == "completed":
                break
            time.sleep(0.05)
        assert run["output"] == {"order_id": "o-9", "status": "shipped", "lane": "standard"}
        invalid = httpx.post(f"{base}/webhooks/orders", json={"order_id": "o-10"})
        assert invalid.status_code == 400
        assert httpx.get(f"{base}/metrics").status_code == 200  # a scrape: not an access line
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    records = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert any("Uvicorn bound to" in r["message"] for r in records)  # every line is JSON
    # what it serves, once started: its flows, their webhooks, the console
    database = [r["message"] for r in records if r["message"].startswith("database: ")]
    assert database == [
        f"database: SQLite file {(tmp_path / 'run.db').resolve()} (synchronous FULL)"
    ]
    served = [r["message"] for r in records if r["message"].startswith("serving ")]
    assert served == [
        "serving 1 flow(s): order-processing; webhooks: POST /webhooks/orders "
        "(order-processing); schedules: none; the console is at /ui/"
    ]
    # serve runs on uvloop when it is installed (the uvloop extra, in dev), unless told otherwise
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    assert f"event loop: {loop} (the loop setting: auto)" in [r["message"] for r in records]
    assert {r["level"] for r in records} <= {"info", "warning", "error"}
    # access lines carry their parts as fields; successful scrapes and health checks are left out
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert {"client", "method", "path", "status"} <= set(access[0])
    requests = {(r["method"], r["path"], r["status"]) for r in access}
    assert ("POST", "/webhooks/orders", 202) in requests
    assert ("POST", "/webhooks/orders", 400) in requests
    assert not [r for r in access if r["path"] in ("/metrics", "/healthz")]


SLOW: list[subprocess.Popen[str]] = []
"""What ``_serve_slow`` started, stopped after each test whatever it did."""

# serve as a shell starts it, SIGHUP at its default: an ignored SIGHUP is inherited (these tests
# run under nohup, say), and serve rightly keeps it ignored (the nohup test below)
HANGUP_AT_DEFAULT = (
    "import os, signal, sys; signal.signal(signal.SIGHUP, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


@pytest.fixture(autouse=True)
def _stop_slow_serves() -> Iterator[None]:
    """A failed assertion leaves no ``serve`` running into the next test (nor a ResourceWarning
    that fails the session at its end)."""
    yield
    reap(SLOW)


def _serve_slow(
    tmp_path: Path,
    seconds: float,
    *,
    nohup: bool = False,
    blocking: bool = False,
    drain: int = 30,
    timeout: float | None = None,
) -> tuple[subprocess.Popen[str], str, Path, int]:
    port = free_port()
    mark = tmp_path / "mark.log"
    command = ["-m", "cronflow_actors", "serve", "tests/serve_slow_app.py"]
    command += ["--db", str(tmp_path / "slow.db"), "--port", str(port)]
    command += ["--drain-timeout", str(drain)]
    process = subprocess.Popen(
        # nohup: SIGHUP ignored
        ["nohup", sys.executable, *command]
        if nohup
        else [sys.executable, "-c", HANGUP_AT_DEFAULT, *command],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SLOW_MARK": str(mark),
            "SLOW_SECONDS": str(seconds),
            **({"SLOW_BLOCKING": "1"} if blocking else {}),
            **({"SLOW_TIMEOUT": str(timeout)} if timeout is not None else {}),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    SLOW.append(process)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60  # a start took 20 s on a loaded machine
    while True:
        assert process.poll() is None, "serve ended before it was up"
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        assert time.monotonic() < deadline, "serve was not up in 60 s"
        time.sleep(0.05)
    run_id = httpx.post(f"{base}/runs", json={"workflow": "slow"}).json()["run_id"]
    deadline = time.monotonic() + 30
    while not (mark.exists() and "started" in mark.read_text()):
        assert time.monotonic() < deadline, "the slow step did not start in 30 s"
        time.sleep(0.02)
    return process, run_id, mark, port


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_the_first_sigterm_lets_the_running_step_finish(tmp_path: Path, stop: int) -> None:
    # SIGHUP as SIGTERM: its default ended the process at once, the lease held until it expired
    process, _run_id, mark, _port = _serve_slow(tmp_path, 0.5)
    process.send_signal(stop)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert mark.read_text().split() == ["started", "finished"]
    assert (
        "draining: up to 30 s for 1 running step(s), action(s), notice(s) and run hooks" in output
    )
    assert "the drain ended" not in output


def test_sigterm_starts_no_step_while_a_request_holds_the_shutdown(tmp_path: Path) -> None:
    # the runtime's drain begins with the signal: a client still sending its body held
    # uvicorn's shutdown, and the runtime went on starting steps (the run's next, retries, cron)
    process, run_id, mark, port = _serve_slow(tmp_path, 0.5)
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(b"POST /runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
    time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    for _ in range(200):
        if "finished" in mark.read_text():
            break
        time.sleep(0.02)
    time.sleep(0.5)  # what the step after it would need, had it started
    slow.close()
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert mark.read_text().split() == ["started", "finished"]
    journal = asyncio.run(_journal(tmp_path / "slow.db", run_id))
    assert [entry.step_id for entry in journal] == ["slow"]  # "after" never began


async def _journal(db: Path, run_id: str) -> list[Any]:
    from cronflow_actors.store import SQLiteStore

    async with SQLiteStore(db) as store:
        return await store.load_journal(run_id)


def test_a_sighup_that_nohup_ignores_stays_ignored(tmp_path: Path) -> None:
    process, _run_id, mark, _port = _serve_slow(tmp_path, 0.5, nohup=True)
    process.send_signal(signal.SIGHUP)
    time.sleep(1.5)
    assert process.poll() is None  # still serving: its step finished, not drained
    assert mark.read_text().split() == ["started", "finished"]
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output


@pytest.mark.parametrize("blocking", [False, True], ids=["async-step", "def-step"])
def test_a_second_sigterm_aborts_the_drain(tmp_path: Path, blocking: bool) -> None:
    # a def step holds a pool thread the drain cannot cut: the stop waited for it, and the
    # watchdog ended the process 10 s after the drain's deadline, with exit code 1
    process, _run_id, mark, _port = _serve_slow(tmp_path, 20, blocking=blocking)
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert time.monotonic() - began < 10
    assert process.returncode == 0, output
    assert mark.read_text().split() == ["started"]  # cut short; it runs again on the next start
    assert (
        "the drain ended (aborted) with 1 step(s), action(s), notice(s) and run hooks running"
        in output
    )


def test_a_def_step_past_the_drain_timeout_is_left_and_the_process_ends_cleanly(
    tmp_path: Path,
) -> None:
    process, run_id, mark, _port = _serve_slow(tmp_path, 20, blocking=True, drain=1)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output  # the watchdog's exit is 1
    assert "still running" not in output
    assert "the drain ended (after 1 s) with 1 step(s)" in output
    assert mark.read_text().split() == ["started"]
    journal = asyncio.run(_journal(tmp_path / "slow.db", run_id))
    assert journal == []  # nothing recorded of the step: it runs again at the next start


def test_a_def_step_that_timed_out_still_blocking_its_thread_holds_no_stop(
    tmp_path: Path,
) -> None:
    # its run went on by a fallback, the drain had nothing to wait for, and the stop waited
    # for the thread until the watchdog ended the process, exit code 1 (the crash tester's F1)
    process, run_id, mark, port = _serve_slow(tmp_path, 20, blocking=True, timeout=0.5)
    for _ in range(200):
        run = httpx.get(f"http://127.0.0.1:{port}/runs/{run_id}").json()
        if run["status"] == "completed":
            break
        time.sleep(0.05)
    assert run["output"] == "fell back"
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "still running" not in output
    assert mark.read_text().split() == ["started"]


def test_a_second_sigterm_ends_the_process_with_a_request_still_in_flight(
    tmp_path: Path,
) -> None:
    """A client still sending its body held the shutdown: the second signal cuts it off."""
    from tests.serving import start

    served = start(str(ROOT / "tests" / "serve_edge_app.py"), tmp_path / "cut.db")
    try:
        assert served.up(), served.output()
        slow = socket.create_connection(("127.0.0.1", served.port))
        slow.sendall(
            b"POST /runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        time.sleep(0.2)
        began = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(15) == 0, served.output()
        assert time.monotonic() - began < 10
        slow.close()
    finally:
        served.stop()
    assert "Traceback" not in served.output()


@contextlib.contextmanager
def port_in_use() -> Iterator[int]:
    """A port of 127.0.0.1 that a socket of this test listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_a_port_in_use_is_an_error_that_says_so_and_exits_as_a_failed_start(
    tmp_path: Path,
) -> None:
    with port_in_use() as port:
        finished = cli("serve", "--port", str(port), "--db", str(tmp_path / "busy.db"), cwd=ROOT)
    assert finished.returncode == 2, finished.stderr
    said = (
        f"cronflow-actors: error: could not listen on 127.0.0.1:{port} (--port): expected a "
        "port no other process listens on at 127.0.0.1 (the system said: Address already in "
        "use); pass another --port (PORT=... with make run), or stop the process that listens "
        "there\n"
    )
    assert said in finished.stderr
    # it listens before the runtime starts: nothing of the database was opened (no run of it
    # recovered and run in a process that then exits)
    assert not (tmp_path / "busy.db").exists()


def test_a_busy_metrics_port_is_named_and_nothing_starts(tmp_path: Path) -> None:
    with port_in_use() as busy:
        ports = ["--port", str(free_port()), "--metrics-port", str(busy)]
        finished = cli("serve", *ports, "--db", str(tmp_path / "busy.db"), cwd=ROOT)
    assert finished.returncode == 2, finished.stderr
    # the port that was in use, not the main one, and the flag that set it
    assert f"could not listen on 127.0.0.1:{busy} (--metrics-port" in finished.stderr
    assert not (tmp_path / "busy.db").exists()


def test_a_host_that_is_not_this_machine_s_is_named(tmp_path: Path) -> None:
    port = str(free_port())
    host = ["--host", "192.0.2.1", "--port", port]  # TEST-NET-1: never this machine's
    finished = cli("serve", *host, "--db", str(tmp_path / "host.db"), cwd=ROOT)
    assert finished.returncode == 2, finished.stderr
    assert f"could not listen on 192.0.2.1:{port} (--host): " in finished.stderr
    assert "an address of this machine" in finished.stderr
    assert not (tmp_path / "host.db").exists()


def test_a_metrics_port_that_is_the_api_port_is_refused(tmp_path: Path) -> None:
    # both would be bound (SO_REUSEADDR): every API route answered 404 and /metrics 200
    port = str(free_port())
    ports = ["--port", port, "--metrics-port", port]
    finished = cli("serve", *ports, "--db", str(tmp_path / "same.db"), cwd=ROOT)
    assert finished.returncode == 2, finished.stderr
    assert f"metrics_port {port} is the API's port too" in finished.stderr
    assert not (tmp_path / "same.db").exists()


def test_serve_leaves_no_filter_on_uvicorns_log(tmp_path: Path) -> None:
    # a second serve() in one process must not inherit the first one's start failures
    import logging

    from cronflow_actors.cli.serve import serve
    from cronflow_actors.runtime.config import load_config

    with port_in_use() as port:
        overrides = {"db": str(tmp_path / "f.db"), "port": port}
        settings = load_config(None, environ={}, overrides=overrides)
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            assert serve(settings) == 2
        finally:
            root.handlers[:], root.level = handlers, level
    assert logging.getLogger("uvicorn.error").filters == []


def test_serve_takes_one_flow_as_its_app(tmp_path: Path) -> None:
    """``serve module:flow``: the first guess for one flow, refused until now ("expected a
    Runtime or a list of workflows")."""
    from tests.serving import serving

    app = "cronflow_actors.examples.order_processing:orders"
    with serving(app, tmp_path / "one.db") as served:
        flows = httpx.get(f"{served.url}/flows", timeout=5).json()
        assert [flow["id"] for flow in flows["flows"]] == ["order-processing"]


def test_serve_on_a_database_in_memory_warns_that_it_keeps_nothing(tmp_path: Path) -> None:
    """A 202 says a run is durable; in memory it is lost at the next start, so serve says so."""
    from tests.serving import serving

    app = "cronflow_actors.examples.order_processing:orders"
    with serving(app, tmp_path / "unused.db", "--db", ":memory:") as served:
        assert httpx.get(f"{served.url}/flows", timeout=5).status_code == 200
    said = served.output()
    assert "WARNING cronflow_actors.serve: database: in memory: nothing is kept" in said
    assert "give --db a file for durable runs" in said
    assert not (tmp_path / "unused.db").exists()


def test_the_watchdog_ends_a_stop_that_outlives_the_drain_and_says_what_becomes_of_it() -> None:
    """Its line said only "still running 40 s after the stop began; exiting" where the README
    promised the drain's 30 s (hostile h23 H1): it names both bounds and the runs' fate."""
    code = "from cronflow_actors.http.server import _end_after; _end_after(0.2, 0.1)"
    ended = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert ended.returncode == 1
    assert "still running 0.3 s after the stop began (the drain's 0.2 s and 0.1 s more)" in (
        ended.stderr
    )
    assert "the next start carries them on" in ended.stderr


def test_the_watchdog_names_where_a_blocking_call_holds_the_event_loop(tmp_path: Path) -> None:
    """A stop cut short by an async step's blocking call ended with no word of the step: each
    restart ran into it again, and the loop-lag warning comes only once the block ends (devx
    h43 F14). An idle loop (waiting for I/O) is named nowhere."""
    (tmp_path / "hogging.py").write_text(
        "import socket, subprocess, sys, time\n\nimport httpx\n\n"
        "def hog():\n    time.sleep(30)\n\n"
        "def waits():\n    subprocess.run(['sleep', '30'], capture_output=True)\n\n"
        "def add(n):\n    return sum(range(n))\n\n"
        "def spins():\n    while True:\n        add(1000)\n\n"
        "def calls():\n    server = socket.create_server(('127.0.0.1', 0))\n"
        "    port = server.getsockname()[1]\n"
        "    httpx.get(f'http://127.0.0.1:{port}/', timeout=30)\n"
    )
    start = (
        "import threading, asyncio, hogging\n"
        "from cronflow_actors.http.server import _end_after\n"
        "threading.Thread(target=_end_after, args=(0.2, 0.1, threading.get_ident())).start()\n"
    )
    said = []
    # a subprocess waited for in a selector, as the idle loop waits (review h44 F4); a step
    # that spins, calling function after function, and one held in a library's call (retest
    # h44 N7: nothing was said of the first, the library's file of the second)
    cases = ("hog()", "asyncio.run(asyncio.sleep(30))", "waits()", "spins()", "calls()")
    for then in cases:
        ended = subprocess.run(
            [sys.executable, "-c", start + ("" if "asyncio" in then else "hogging.") + then],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            cwd=tmp_path,
        )
        assert ended.returncode == 1
        said.append(ended.stderr)
    app = tmp_path / "hogging.py"
    assert f"The event loop was held at {app}:6 in hog" in said[0]
    assert "make it a plain def" in said[0]
    assert "held at" not in said[1]
    assert f"The event loop was held at {app}:9 in waits" in said[2]
    assert re.search(rf"The event loop was held at {re.escape(str(app))}:1[56] in spins", said[3])
    assert "httpcore" in said[4]
    assert f", called from {app}:21 in calls" in said[4]
