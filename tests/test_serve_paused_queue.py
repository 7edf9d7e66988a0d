"""A real ``serve`` paused (SIGSTOP) past its lease while plain ``def`` steps wait in its
blocking pool's queue: the next process takes the database over and records those steps; the
paused one, continued, starts none of them (it did, at once, before its heartbeat found the
lease gone: the PostgreSQL crash tester's F1, on SQLite too), and stops."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.serving import start


def test_a_process_paused_past_its_lease_starts_none_of_its_queued_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marks = tmp_path / "marks.txt"
    marks.touch()
    monkeypatch.setenv("QUEUED_MARKS", str(marks))  # the servers' environment
    db = tmp_path / "paused.db"
    app = "tests.serve_queued_def_app:workflows"
    lease = ("--lease-seconds", "1", "--wait-for-lease")
    paused = start(app, db, *lease)
    other = None
    try:
        assert paused.up(), paused.output()
        runs = [
            httpx.post(f"{paused.url}/runs", json={"workflow": "queued"}).json()["run_id"]
            for _ in range(12)
        ]
        deadline = time.monotonic() + 10
        while len(marks.read_text().splitlines()) < 8 and time.monotonic() < deadline:
            time.sleep(0.02)  # its 8 threads busy, 4 calls queued behind them
        paused.process.send_signal(signal.SIGSTOP)
        assert len(marks.read_text().splitlines()) < len(runs)  # some were still queued
        other = start(app, db, *lease)
        assert other.up(30), other.output()
        for run_id in runs:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                run = httpx.get(f"{other.url}/runs/{run_id}").json()
                if run["status"] == "completed":
                    break
                time.sleep(0.1)
            assert run["status"] == "completed", run
        continued = time.time()
        paused.process.send_signal(signal.SIGCONT)
        assert paused.process.wait(30) != 0  # it lost its lease: it stops
        started_after = [
            line
            for line in marks.read_text().splitlines()
            if int(line.split()[0]) == paused.process.pid and float(line.split()[2]) >= continued
        ]
        assert started_after == [], paused.output()
    finally:
        if paused.process.poll() is None:
            paused.process.send_signal(signal.SIGCONT)
        paused.stop()
        if other is not None:
            other.stop()
