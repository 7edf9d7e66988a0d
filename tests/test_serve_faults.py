"""The real ``serve`` process when its disk fails under it: the database file removed, made
read-only, or on a full filesystem. Each time writes get 503 (never a 202 for a run that was
not stored), ``/readyz`` fails, the process exits within its drain timeout, and nothing
accepted before was lost.

The read-only case sets the files' immutable attribute, the full one mounts a small tmpfs:
both need root (CI runs as root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving import ROOT, Served, serving, start

APP = str(ROOT / "tests" / "serve_edge_app.py")
DRAIN = 3.0
# The server may close a connection it had accepted as it drains and exits: refused, reset, or
# closed before an answer. None of them is a 202.
UNANSWERED = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)
STARTED: list[Served] = []


@pytest.fixture(autouse=True)
def _stop_what_was_started() -> Iterator[None]:
    """A failed assertion leaves no ``serve`` running into the next test."""
    yield
    while STARTED:
        STARTED.pop().stop()


def can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


needs_root = pytest.mark.skipif(
    not can_mount(), reason="a read-only file or a small tmpfs needs root (CI runs as root)"
)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        check=False,
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def serve(db: Path, *extra: str, logs: Path | None = None) -> Served:
    served = start(
        APP,
        db,
        "--lease-seconds",
        "1",
        "--drain-timeout",
        str(DRAIN),
        "--log-level",
        "info",
        *extra,
        logs=logs,
    )
    STARTED.append(served)
    assert served.up(), served.output()
    return served


def accept(served: Served, count: int, payload: object = 1) -> list[str]:
    ids = []
    for _ in range(count):
        answer = httpx.post(f"{served.url}/runs", json={"workflow": "quick", "payload": payload})
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["run_id"])
    return ids


def refused_once_broken(served: Served) -> None:
    """After the failure: writes get 503 problems and readiness says so, for as long as the
    server still listens (it stops listening as it drains: a refused connection is no 202
    either)."""
    try:
        answer = httpx.post(f"{served.url}/runs", json={"workflow": "quick", "payload": 0})
    except UNANSWERED:
        return
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    try:
        ready = httpx.get(f"{served.url}/readyz")
    except UNANSWERED:
        return
    assert ready.status_code == 503
    assert ready.json()["ready"] is False


def exits_by_itself(served: Served, within: float) -> int:
    began = time.monotonic()
    try:
        code = served.process.wait(within)
    except subprocess.TimeoutExpired:
        served.stop()
        message = f"still running {within} s after the failure:\n{served.output()}"
        raise AssertionError(message) from None
    assert time.monotonic() - began <= within
    return code


def stored(db: Path, ids: list[str]) -> None:
    """A new serve on the same file finds every run it had accepted."""
    again = serve(db, "--wait-for-lease")
    try:
        for run_id in ids:
            run = httpx.get(f"{again.url}/runs/{run_id}")
            assert run.status_code == 200, (run_id, run.text)
            assert run.json()["status"] == "completed"
    finally:
        assert again.stop() == 0


def test_the_database_file_removed_while_serving(tmp_path: Path) -> None:
    db = tmp_path / "gone.db"
    served = serve(db)
    accept(served, 5)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    refused_once_broken(served)
    assert exits_by_itself(served, DRAIN + 5) == 1
    assert "was removed" in served.output()


def set_immutable(db: Path, flag: str) -> None:
    """``chattr +i``: not even root can write the files (not through open descriptors either)."""
    files = [
        str(Path(f"{db}{suffix}")) for suffix in ("", "-wal") if Path(f"{db}{suffix}").exists()
    ]
    changed = subprocess.run(["chattr", flag, *files], check=False, capture_output=True)
    if changed.returncode != 0:
        pytest.skip(f"cannot make the database read-only here: {changed.stderr.decode().strip()}")


@needs_root
def test_a_read_only_database_and_sigterm_on_a_broken_store(tmp_path: Path) -> None:
    db = tmp_path / "ro.db"
    served = serve(db)
    ids = accept(served, 5)
    set_immutable(db, "+i")
    try:
        refused_once_broken(served)
        # SIGTERM on a broken store still ends the process within the drain timeout.
        served.process.send_signal(signal.SIGTERM)
        assert exits_by_itself(served, DRAIN + 5) in (0, 1)
    finally:
        set_immutable(db, "-i")
    stored(db, ids)


@needs_root
def test_a_full_filesystem(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "fs", "3m") as fs:
        db = fs / "full.db"
        served = serve(db)
        ids = accept(served, 3)
        filler = fs / "filler"
        with filler.open("wb") as handle, contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 65536)
        big = "x" * 200_000
        statuses: list[int | str] = []
        for _ in range(30):
            try:
                answer = httpx.post(
                    f"{served.url}/runs", json={"workflow": "quick", "payload": big}
                )
            except UNANSWERED:  # the lease's renewal found the disk full first
                statuses.append("refused")
                break
            statuses.append(answer.status_code)
            if answer.status_code == 202:
                ids.append(answer.json()["run_id"])
            else:
                break
        assert statuses[-1] in (503, "refused"), statuses
        assert 500 not in statuses
        refused_once_broken(served)
        assert exits_by_itself(served, DRAIN + 5) == 1
        filler.unlink()
        stored(db, ids)


def test_stop_signals_while_it_exits_leave_the_exit_code_its_own(tmp_path: Path) -> None:
    """A supervisor may send SIGTERM again and again while serve ends (here, its database
    removed): once the server had stopped, the signals went back to their default action and
    one of them during the exit's last steps ended the process as killed (-15)."""
    db = tmp_path / "signalled.db"
    served = serve(db)
    accept(served, 2)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    deadline = time.monotonic() + DRAIN + 15
    while served.process.poll() is None:
        assert time.monotonic() < deadline, served.output()
        served.process.send_signal(signal.SIGTERM)
        time.sleep(0.01)
    # 0: stopped by the signal before it saw its store fail; 1: the failure first
    assert served.process.returncode in (0, 1), served.output()


def open_files(pid: int) -> list[str]:
    """The soft and hard limits of open files of process ``pid``."""
    limits = Path(f"/proc/{pid}/limits").read_text().splitlines()
    [line] = [line for line in limits if line.startswith("Max open files")]
    return line.split()[3:5]


def test_serve_takes_the_open_files_its_hard_limit_allows(tmp_path: Path) -> None:
    """A soft limit of 1,024 ran out under half-sent requests before --max-connections did:
    /healthz went unanswered and steps failed with EMFILE, nothing said (hostile h39 F1)."""
    with serving(APP, tmp_path / "files.db", open_files=(256, 4096)) as served:
        assert open_files(served.process.pid) == ["4096", "4096"]
        assert "may open" not in served.output()
    low = tmp_path / "low.db"
    with serving(APP, low, "--max-connections", "1000", open_files=(256, 512)) as served:
        assert open_files(served.process.pid) == ["512", "512"]
        said = served.output()
        assert "this process may open 512 files (its hard limit, ulimit -Hn)" in said
        assert "it takes 256 connections at once" in said  # (the files outlast them)
        assert "or lower --max-connections" in said
