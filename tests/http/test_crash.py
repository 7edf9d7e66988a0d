"""Crash recovery of the real process: SIGKILL ``serve`` with runs mid-step, sleeping and paused;
restart it on the same database; every accepted run completes exactly once with the right
output, no recorded step runs again, and paused runs can still be resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.http import crash_app
from tests.serving import free_port

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "tests" / "http" / "crash_app.py")


def start(db: Path, log: Path, port: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "cronflow_actors", "serve", APP, "--db", str(db)]
    command += ["--port", str(port), "--log-level", "warning"]
    # A short lease: the restart after the kill waits for it to expire, then takes over.
    command += ["--lease-seconds", "0.5", "--wait-for-lease"]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "CRASH_LOG": str(log)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 60  # a start took 20 s on a loaded machine
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.025)
    process.kill()
    process.wait()
    raise AssertionError("serve did not come up")


def recorded_steps(db: Path) -> set[tuple[str, str]]:
    import sqlite3

    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT instance_id, step_id FROM journal WHERE outcome = 'completed'"
        ).fetchall()
    return {(run, step) for run, step in rows}


def log_lines(log: Path) -> list[tuple[str, str]]:
    if not log.exists():
        return []
    return [tuple(line.split()) for line in log.read_text().splitlines() if line]  # type: ignore[misc]


@pytest.mark.parametrize("kill_after", [0.0, 0.15, 0.5])
def test_sigkill_and_restart_completes_every_run_once(tmp_path: Path, kill_after: float) -> None:
    db, log, port = tmp_path / "crash.db", tmp_path / "steps.log", free_port()
    base = f"http://127.0.0.1:{port}"
    process = start(db, log, port)
    try:
        chains = {
            httpx.post(f"{base}/webhooks/chain", json={"n": n}).json()["run_id"]: n
            for n in range(40)
        }
        napping = httpx.post(f"{base}/runs", json={"workflow": "napper", "payload": {"n": 1}})
        paused = httpx.post(f"{base}/runs", json={"workflow": "approval", "payload": {"n": 2}})
        time.sleep(kill_after)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    recorded = recorded_steps(db)
    ran_before = len(log_lines(log))
    process = start(db, log, port)
    try:
        deadline = time.monotonic() + 30
        pending = set(chains)
        while pending and time.monotonic() < deadline:
            for run_id in list(pending):
                run = httpx.get(f"{base}/runs/{run_id}").json()
                if run["status"] == "completed":
                    assert run["output"] == crash_app.expected(chains[run_id])
                    pending.discard(run_id)
            time.sleep(0.05)
        assert not pending, f"{len(pending)} runs did not complete"
        nap_id = napping.json()["run_id"]
        while httpx.get(f"{base}/runs/{nap_id}").json()["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        pause_id = paused.json()["run_id"]
        while not (pauses := httpx.get(f"{base}/paused").json()["paused"]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        [token] = [p["token"] for p in pauses if p["run_id"] == pause_id]
        assert httpx.post(f"{base}/resume/{token}", json={"approved": True}).status_code == 200
        while (run := httpx.get(f"{base}/runs/{pause_id}").json())["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert run["output"] == {"approved": True, "asked": 5}
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    after = log_lines(log)[ran_before:]
    assert not recorded & set(after), "a recorded step ran again after the restart"
    runs_of_chain = [line for line in log_lines(log) if line[0] in chains]
    completed = recorded_steps(db)
    assert {(run, step) for run, step in runs_of_chain} == {
        (run, step) for run in chains for step in ("one", "two", "three")
    }
    assert len([1 for run, step in completed if run in chains]) == 3 * len(chains)
