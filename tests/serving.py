"""Starting a real ``cronflow-actors serve`` process for tests: on a free loopback port, its
log in a file, stopped by its pid (SIGTERM, then SIGKILL) whatever the test did."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Served:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"

    def up(self, seconds: float = 60) -> bool:
        """Whether it answers /healthz within ``seconds`` (a start took 20 s on a loaded 2-core
        machine: 15 were not always enough)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return True
            except httpx.TransportError:
                time.sleep(0.05)
        return False

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def reap(started: list[subprocess.Popen[str]]) -> None:
    """Kill and wait for each process of ``started`` (emptied) still running: a failed
    assertion leaves no ``serve`` running into the next test, nor a ResourceWarning that fails
    the session at its end."""
    while started:
        process = started.pop()
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def start(
    app: str,
    db: Path,
    *extra: str,
    port: int | None = None,
    open_files: tuple[int, int] | None = None,
    logs: Path | None = None,
) -> Served:
    """``serve app`` on ``db``; ``open_files``: its (soft, hard) limit of open files; its log
    in the folder ``logs`` (the database's by default)."""
    port = port or free_port()
    log = (logs or db.parent) / f"serve-{port}.log"
    handle = log.open("wb")
    command = [sys.executable, "-m", "cronflow_actors", "serve", app, "--db", str(db)]
    if open_files is not None:  # (util-linux's prlimit: no preexec_fn in a threaded process)
        command = ["prlimit", f"--nofile={open_files[0]}:{open_files[1]}", "--", *command]
    command += ["--port", str(port), *extra]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    handle.close()
    return Served(process, port, log)


@contextlib.contextmanager
def serving(
    app: str, db: Path, *extra: str, open_files: tuple[int, int] | None = None
) -> Iterator[Served]:
    served = start(app, db, *extra, open_files=open_files)
    try:
        assert served.up(), served.output()
        yield served
    finally:
        served.stop()


def start_to_crash(app: str, db: Path) -> Served:
    """``serve app`` on ``db``, up, with a one-second lease taken over by the next start (which
    waits for it): for a crash test, whose first server kills itself and whose second follows."""
    served = start(app, db, "--lease-seconds", "1", "--wait-for-lease")
    assert served.up(), served.output()
    return served


def files_written(folder: Path, pattern: str, count: int, seconds: float = 15) -> list[str]:
    """The texts of the files matching ``pattern`` in ``folder``, in name order, once there are
    ``count`` of them or ``seconds`` have passed (what a crash test's app records calls in)."""
    deadline = time.monotonic() + seconds
    while len(found := sorted(folder.glob(pattern))) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return [path.read_text() for path in found]
