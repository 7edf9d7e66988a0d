"""A real ``serve`` paused (SIGSTOP) past its lease in the middle of a call its handler makes
again within one attempt: a step's first fallback, or a detached action's try. The next process
takes the database over and finishes the runs; the paused one, continued, makes none of the
calls that came next (it ran the compensation, and the action's next try, at once, 18 s after
the run had completed elsewhere: crash h41 F1), and stops."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.serving import start
from tests.test_serve_paused_queue import stop_outside_a_write


def marks_of(marks: Path) -> list[tuple[int, str, float]]:
    lines = [line.split() for line in marks.read_text().splitlines()]
    return [(int(pid), what, float(at)) for pid, what, at in lines]


def test_a_process_paused_past_its_lease_makes_no_call_again_in_an_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marks = tmp_path / "marks.txt"
    marks.touch()
    monkeypatch.setenv("AGAIN_MARKS", str(marks))  # the servers' environment
    monkeypatch.setenv("AGAIN_HOLD", "2")
    db = tmp_path / "again.db"
    app = "tests.serve_again_app:workflows"
    lease = ("--lease-seconds", "1", "--wait-for-lease")
    paused = start(app, db, *lease)
    other = None
    try:
        assert paused.up(), paused.output()
        runs = [
            httpx.post(f"{paused.url}/runs", json={"workflow": name}).json()["run_id"]
            for name in ("fallbacks", "retried", "filtered")
        ]
        deadline = time.monotonic() + 30
        while {what for _, what, _ in marks_of(marks)} != {"fallback", "notify", "step"}:
            assert time.monotonic() < deadline, marks.read_text()
            time.sleep(0.02)
        stop_outside_a_write(paused.process, db)  # inside the held calls
        other = start(app, db, *lease)
        assert other.up(30), other.output()
        deadline = time.monotonic() + 60
        while True:  # the compensation, the action's 3 tries, the retry_on: by the new owner
            made = [what for pid, what, _ in marks_of(marks) if pid == other.process.pid]
            done = made.count("compensate") == 1 and made.count("notify") == 3
            if done and made.count("retry_on") == 1:
                break
            assert time.monotonic() < deadline, marks.read_text()
            time.sleep(0.1)
        run = httpx.get(f"{other.url}/runs/{runs[0]}").json()
        assert (run["status"], run["output"]) == ("completed", "compensated")
        continued = time.time()
        paused.process.send_signal(signal.SIGCONT)
        assert paused.process.wait(30) != 0  # it lost its lease: it stops
        again = [m for m in marks_of(marks) if m[0] == paused.process.pid and m[2] >= continued]
        assert again == [], paused.output()
    finally:
        if paused.process.poll() is None:
            paused.process.send_signal(signal.SIGCONT)
        paused.stop()
        if other is not None:
            other.stop()
