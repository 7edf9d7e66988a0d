"""``serve`` owns its database: a second one on the same file is refused with exit code 2 and a
message naming the owner, or waits with ``--wait-for-lease`` and takes over once the first one
has stopped. Resume tokens never reach the access log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving import free_port, reap

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "tests" / "serve_pause_app.py")
STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _stop_what_was_started() -> Iterator[None]:
    """A failed assertion leaves no ``serve`` running into the next test (nor a ResourceWarning
    that fails the session at its end): ``first`` is started before its test's ``try``."""
    yield
    reap(STARTED)


def serve(db: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "cronflow_actors", "serve", APP, "--db", str(db)),
            *("--port", str(port), "--lease-seconds", "1", *extra),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    STARTED.append(process)
    return process


def standby(db: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``serve`` on ``db`` with ``--wait-for-lease``, its output in ``log``."""
    with log.open("w") as handle:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "cronflow_actors", "serve", APP, "--db", str(db)),
                *("--port", str(port), "--lease-seconds", "1", "--wait-for-lease"),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def up(port: int, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return True
        except httpx.TransportError:
            time.sleep(0.05)
    return False


def stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=20)
    return out


def test_a_second_serve_on_the_same_database_exits_2_naming_the_owner(tmp_path: Path) -> None:
    db = tmp_path / "owned.db"
    first_port = free_port()
    first = serve(db, first_port)
    try:
        assert up(first_port)
        second = serve(db, free_port())
        out, _ = second.communicate(timeout=60)  # a start may take 20 s on a loaded machine
        assert second.returncode == 2
        assert f"pid {first.pid}" in out
        assert "--wait-for-lease" in out
        # said once, plainly: no traceback of an explained failure buries the advice
        assert "Traceback" not in out
        assert out.count("--wait-for-lease") == 1
        # nor uvicorn's "Application startup failed" said first, at ERROR (newcomer h42 F5)
        assert "Application startup failed" not in out
    finally:
        stop(first)


def said(log: Path, text: str, seconds: float = 30) -> bool:
    """Whether ``text`` appears in the file ``log`` within ``seconds`` (a loaded machine may
    take seconds only to start a Python process)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return True
        time.sleep(0.05)
    return False


def test_wait_for_lease_takes_over_once_the_owner_stops(tmp_path: Path) -> None:
    db = tmp_path / "handover.db"
    first_port, second_port = free_port(), free_port()
    first = serve(db, first_port)
    assert up(first_port)
    log = tmp_path / "second.log"
    second = standby(db, second_port, log)
    try:
        # it says it waits, naming the owner, once it has found the lease taken
        assert said(log, "is owned by runtime"), log.read_text()
        time.sleep(1.5)  # past the lease's duration: the owner renews it, the second waits on
        assert not up(second_port, seconds=0.2)
        stop(first)
        assert up(second_port)  # a clean stop releases the lease at once
        assert first.returncode == 0
    finally:
        if second.poll() is None:
            second.send_signal(signal.SIGTERM)
        second.wait(20)
    out = log.read_text()
    # not the advice to start it as it was started
    assert f"(pid {first.pid} on" in out
    assert "this one waits to take it over once that lease expires" in out
    assert "--wait-for-lease" not in out


def test_a_serve_waiting_for_the_lease_stops_at_sigterm_and_takes_nothing(
    tmp_path: Path,
) -> None:
    """A standby waiting for the lease ignored SIGTERM (twice): it ended once the owner went,
    after taking the database over and recovering its runs (chaos h35 F2)."""
    db = tmp_path / "standby.db"
    first_port = free_port()
    first = serve(db, first_port)
    assert up(first_port)
    log = tmp_path / "standby.log"
    waiting = standby(db, free_port(), log)
    try:
        assert said(log, "is owned by runtime"), log.read_text()
        asked = time.monotonic()
        waiting.send_signal(signal.SIGTERM)
        assert waiting.wait(20) == 0, log.read_text()
    finally:
        if waiting.poll() is None:
            waiting.kill()
        waiting.wait()
    assert time.monotonic() - asked < 10
    out = log.read_text()
    assert (
        "the start was given up: a stop was asked while it waited for the database (another" in out
    )
    assert "Traceback" not in out
    assert "ERROR" not in out  # a stop, no failure (retest h35 L3: log alerts fired on it)
    assert httpx.get(f"http://127.0.0.1:{first_port}/healthz").status_code == 200  # still owner
    stop(first)
    assert first.returncode == 0


def test_resume_tokens_never_reach_the_access_log(tmp_path: Path) -> None:
    port = free_port()
    process = serve(tmp_path / "log.db", port, "--log-level", "info")
    try:
        assert up(port)
        base = f"http://127.0.0.1:{port}"
        run_id = httpx.post(f"{base}/runs", json={"workflow": "hold"}).json()["run_id"]
        deadline = time.monotonic() + 10
        paused: list[dict[str, str]] = []
        while not paused and time.monotonic() < deadline:
            paused = httpx.get(f"{base}/paused").json()["paused"]
            time.sleep(0.05)
        token = paused[0]["token"]
        assert httpx.post(f"{base}/resume/{token}", json={"approved": True}).status_code == 200
        assert httpx.post(f"{base}/resume/{token}", json={}).status_code == 409
    finally:
        out = stop(process)
    assert token not in out
    assert out.count("/resume/***") == 2
    assert run_id in out or "POST /runs" in out
