"""A pause's ``on_pause`` is at least once: a real ``serve`` killed (SIGKILL) while the notice
runs calls it again, with the same token, when it starts again; once a notice has ended it is
owed no more (the run is no longer loaded at start for it)."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing, suppress
from pathlib import Path

import httpx
import pytest

from tests.serving import ROOT, Served, files_written, start_to_crash

APP = str(ROOT / "tests" / "serve_notice_app.py")


def _serve(db: Path) -> Served:
    return start_to_crash(APP, db)


def _calls(notices: Path, count: int, seconds: float = 15) -> list[str]:
    return files_written(notices, "call-*", count, seconds)


def _owed(db: Path, run_id: str) -> bool:
    """Whether the run's snapshot owes something to run at start (a notice, here)."""
    with closing(sqlite3.connect(db)) as connection:
        row = connection.execute(
            "SELECT runnable FROM instances WHERE instance_id = ?", (run_id,)
        ).fetchone()
    return bool(row[0])


def test_a_notice_cut_by_a_crash_is_called_again_after_the_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, notices = tmp_path / "notice.db", tmp_path / "notices"
    notices.mkdir()
    monkeypatch.setenv("NOTICE_DIR", str(notices))  # serve inherits it (tests/serving.py)
    first = _serve(db)
    try:
        with suppress(httpx.HTTPError):  # the kill may come first: the notice names the run
            httpx.post(f"{first.url}/runs", json={"workflow": "approve-refund"})
        assert first.process.wait(15) == -9  # on_pause killed it mid-notice
    finally:
        first.stop()
    [cut] = _calls(notices, 1)
    run_id, token = cut.split()
    assert _owed(db, run_id)  # the commit that opened the pause recorded its notice owed
    second = _serve(db)
    try:
        assert _calls(notices, 2) == [cut, cut]  # called again: the same pause, the same token
        deadline = time.monotonic() + 10
        while _owed(db, run_id):  # its end recorded: owed no more
            assert time.monotonic() < deadline
            time.sleep(0.05)
        [pause] = httpx.get(f"{second.url}/paused").json()["paused"]
        assert (pause["run_id"], pause["token"]) == (run_id, token)
        resumed = httpx.post(f"{second.url}/resume/{token}", json={"approved": True})
        assert resumed.status_code == 200, resumed.text
        deadline = time.monotonic() + 10
        while httpx.get(f"{second.url}/runs/{run_id}").json()["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        assert second.stop() == 0, second.output()
    assert len(_calls(notices, 2)) == 2
