"""A pause's ``on_pause`` is at least once: a real ``serve`` killed (SIGKILL) while the notice
runs calls it again, with the same token, when it starts again; once a notice has ended it is
not called again."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.serving import ROOT, Served, start

APP = str(ROOT / "tests" / "serve_notice_app.py")


def _serve(db: Path) -> Served:
    served = start(APP, db, "--lease-seconds", "1", "--wait-for-lease")
    assert served.up(), served.output()
    return served


def _calls(notices: Path, count: int, seconds: float = 15) -> list[str]:
    deadline = time.monotonic() + seconds
    while len(found := sorted(notices.glob("call-*"))) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return [path.read_text() for path in found]


def test_a_notice_cut_by_a_crash_is_called_again_after_the_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, notices = tmp_path / "notice.db", tmp_path / "notices"
    notices.mkdir()
    monkeypatch.setenv("NOTICE_DIR", str(notices))  # serve inherits it (tests/serving.py)
    first = _serve(db)
    try:
        started = httpx.post(f"{first.url}/runs", json={"workflow": "approve-refund"})
        run_id = started.json()["run_id"]
        assert first.process.wait(15) == -9  # on_pause killed it mid-notice
    finally:
        first.stop()
    [cut] = _calls(notices, 1)
    second = _serve(db)
    try:
        cut_run, cut_token = cut.split()
        assert cut_run == run_id
        again = _calls(notices, 2)
        assert again == [cut, cut]  # called again, about the same pause and token
        [pause] = httpx.get(f"{second.url}/paused").json()["paused"]
        assert (pause["run_id"], pause["token"]) == (run_id, cut_token)
        resumed = httpx.post(f"{second.url}/resume/{cut_token}", json={"approved": True})
        assert resumed.status_code == 200, resumed.text
        deadline = time.monotonic() + 10
        while httpx.get(f"{second.url}/runs/{run_id}").json()["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        assert second.stop() == 0, second.output()
    third = _serve(db)  # a notice that ended is owed no more: not called a third time
    try:
        time.sleep(1)
        assert len(_calls(notices, 2)) == 2
    finally:
        third.stop()
