"""A run's hooks are at least once: a real ``serve`` killed (SIGKILL) in the middle of a failed
run's ``on_failure`` calls it again, then ``on_complete``, when it starts again (``ctx.error``
read back from the run's record); once they have been called the run is owed nothing (it is
no longer loaded at start)."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing, suppress
from pathlib import Path

import httpx
import pytest

from tests.serving import ROOT, Served, files_written, start_to_crash

APP = str(ROOT / "tests" / "serve_hooks_app.py")


def _serve(db: Path) -> Served:
    return start_to_crash(APP, db)


def _calls(hooks: Path, name: str, count: int, seconds: float = 15) -> list[str]:
    return files_written(hooks, f"{name}-*", count, seconds)


def _row(db: Path, run_id: str) -> tuple[str, bool, bool]:
    """The run's status, and whether it is terminal and runnable (owes something at start)."""
    with closing(sqlite3.connect(db)) as connection:
        status, terminal, runnable = connection.execute(
            "SELECT status, terminal, runnable FROM instances WHERE instance_id = ?", (run_id,)
        ).fetchone()
    return status, bool(terminal), bool(runnable)


def test_hooks_cut_by_a_crash_are_called_again_after_the_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, hooks = tmp_path / "hooks.db", tmp_path / "hooks"
    hooks.mkdir()
    monkeypatch.setenv("HOOKS_DIR", str(hooks))  # serve inherits it (tests/serving.py)
    first = _serve(db)
    try:
        with suppress(httpx.HTTPError):  # the kill may come first
            httpx.post(f"{first.url}/runs", json={"workflow": "refund"})
        assert first.process.wait(15) == -9  # on_failure killed it
    finally:
        first.stop()
    [cut] = _calls(hooks, "on_failure", 1)
    run_id = cut.split()[0]
    assert cut == f"{run_id} ValueError: card declined"  # the step's own exception, in process
    assert _row(db, run_id) == ("failed", True, True)  # ended, its hooks owed
    assert _calls(hooks, "on_complete", 0, seconds=0) == []
    second = _serve(db)
    try:
        [_, again] = _calls(hooks, "on_failure", 2)
        # read back from the record after the restart: the class and message it failed with
        assert again == f"{run_id} RunFailedError: step 'charge': ValueError: card declined"
        assert _calls(hooks, "on_complete", 1) == [again]  # then on_complete, the same ctx
        deadline = time.monotonic() + 10
        while _row(db, run_id)[2]:  # the end of the calls recorded: owed no more
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert httpx.get(f"{second.url}/runs/{run_id}").json()["status"] == "failed"
    finally:
        assert second.stop() == 0, second.output()
    assert len(_calls(hooks, "on_failure", 2)) == 2  # not called a third time
    assert len(_calls(hooks, "on_complete", 1)) == 1
