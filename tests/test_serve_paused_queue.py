"""A real ``serve`` paused (SIGSTOP) past its lease while plain ``def`` steps wait in its
blocking pool's queue: the next process takes the database over and records those steps; the
paused one, continued, starts none of them (it did, at once, before its heartbeat found the
lease gone: the PostgreSQL crash tester's F1, on SQLite too), and stops."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.serving import start


def write_locked(db: Path) -> bool:
    """Whether another connection holds the database's write lock now."""
    with closing(sqlite3.connect(db, timeout=0, isolation_level=None)) as connection:
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as busy:
            if "locked" in str(busy):
                return True
            raise
        connection.execute("ROLLBACK")
    return False


def stop_outside_a_write(process: subprocess.Popen[bytes], db: Path) -> None:
    """SIGSTOP ``process``, not inside a write: stopped inside one (its lease's renewal, say),
    it would hold SQLite's write lock, and no other process could take over until it is
    continued; it is let finish the write and stopped again."""
    process.send_signal(signal.SIGSTOP)
    deadline = time.monotonic() + 30
    while write_locked(db):
        assert time.monotonic() < deadline, "the paused process kept the write lock"
        process.send_signal(signal.SIGCONT)
        time.sleep(0.05)
        process.send_signal(signal.SIGSTOP)


def test_a_process_paused_past_its_lease_starts_none_of_its_queued_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marks, gate = tmp_path / "marks.txt", tmp_path / "gate"
    marks.touch()
    monkeypatch.setenv("QUEUED_MARKS", str(marks))  # the servers' environment
    monkeypatch.setenv("QUEUED_GATE", str(gate))  # the steps hold their threads until it exists
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
        deadline = time.monotonic() + 30
        while len(marks.read_text().splitlines()) < 8:
            assert time.monotonic() < deadline, marks.read_text()
            time.sleep(0.02)  # its 8 threads busy, 4 calls queued behind them
        # (held until the gate opens: with a fixed hold, the first calls could end, and the
        # queued ones start, while a loaded machine was still sending the 12 runs)
        stop_outside_a_write(paused.process, db)  # (no call starts meanwhile: the gate holds
        # all of its threads)
        assert len(marks.read_text().splitlines()) < len(runs)  # some were still queued
        gate.touch()  # for the next process, and for this one once it is continued
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
