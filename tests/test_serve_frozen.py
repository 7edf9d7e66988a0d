"""The real ``serve`` on a frozen disk (``fsfreeze`` of an ext4 file system on a loop device:
every write to it waits, as on a hung disk): a SIGTERM ends the server with the request that
waited on it answered 503 (its outcome unknown), never a 500 with a traceback (retest-edge h44
N6), and once the disk thaws nothing accepted before is lost.

Needs root, a loop device and e2fsprogs (CI runs as root); skipped where any is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_serve_faults import DRAIN, accept, serve, stored

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("mkfs.ext4") or not shutil.which("fsfreeze"),
    reason="a frozen file system needs root, mkfs.ext4 and fsfreeze (CI runs as root)",
)


def _run(*command: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(command, check=False, capture_output=True, timeout=60)


@contextlib.contextmanager
def ext4(folder: Path) -> Iterator[Path]:
    """A small ext4 file system mounted at ``folder/fs`` (unmounted at the end)."""
    image, mounted = folder / "fs.img", folder / "fs"
    with image.open("wb") as handle:
        handle.truncate(64 * 2**20)
    made = _run("mkfs.ext4", "-q", "-F", str(image))
    mounted.mkdir()
    done = _run("mount", "-o", "loop", str(image), str(mounted))
    if made.returncode or done.returncode:
        pytest.skip(f"cannot mount a loop file system here: {(made.stderr + done.stderr)!r}")
    try:
        yield mounted
    finally:
        _run("fsfreeze", "-u", str(mounted))  # never left frozen: every writer would hang
        _run("umount", "-l", str(mounted))


def test_sigterm_on_a_frozen_disk_answers_the_waiting_request_503(tmp_path: Path) -> None:
    with ext4(tmp_path) as fs:
        db = fs / "frozen.db"
        served = serve(db, logs=tmp_path)  # (a log on the frozen disk would hold the loop)
        ids = accept(served, 3)
        frozen = _run("fsfreeze", "-f", str(fs))
        if frozen.returncode:
            pytest.skip(f"cannot freeze the file system here: {frozen.stderr!r}")
        answers: list[httpx.Response | Exception] = []

        def post() -> None:
            try:
                body = {"workflow": "quick", "payload": 1}
                answers.append(httpx.post(f"{served.url}/runs", json=body, timeout=60))
            except Exception as error:  # (said by the assertion below)
                answers.append(error)

        waiting = threading.Thread(target=post)
        try:
            waiting.start()
            waiting.join(1.5)
            assert not answers, answers  # the start waits for the frozen disk
            served.process.send_signal(signal.SIGTERM)
            waiting.join(DRAIN + 30)
            [answer] = answers
            assert isinstance(answer, httpx.Response), answer
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            assert "may or may not have been done" in answer.json()["detail"]
            assert "Exception in ASGI application" not in served.output()
        finally:
            _run("fsfreeze", "-u", str(fs))
        served.process.wait(30)  # it ends once the disk thaws (a thread in a write till then)
        stored(db, ids)
