"""A real ``cronflow-actors serve`` process on a free loopback port, for tests that need the long-
lived process (as tests/test_serve.py starts it), stopped by its own pid when the block ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.serving import free_port

__all__ = ["ServeProcess", "running_serve"]

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ServeProcess:
    """A running serve: its pid, its base URL (``http://127.0.0.1:PORT``) and its log file."""

    pid: int
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metrics_text(self) -> str:
        """The body of ``GET /metrics``, as Prometheus would scrape it."""
        response = httpx.get(f"{self.url}/metrics", trust_env=False, timeout=10)
        response.raise_for_status()
        return response.text


@contextmanager
def running_serve(
    directory: Path, *extra: str, ready_timeout: float = 20.0
) -> Iterator[ServeProcess]:
    """Start ``cronflow-actors serve`` (the bundled example app unless ``extra`` names another)
    with its database and log in ``directory``; yield once ``/healthz`` answers 200; on leaving,
    send SIGTERM to its pid (SIGKILL if it has not drained in 30 s) and wait for it, also when the
    block raised. Its output goes to a file, not a pipe, so a chatty server can never block on a
    full pipe while the test does not read it."""
    port = free_port()
    log = directory / "serve.log"
    command = [sys.executable, "-m", "cronflow_actors", "serve", *extra]
    command += ["--db", str(directory / "serve.db"), "--port", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    serve = ServeProcess(pid=process.pid, port=port, log=log)
    try:
        _wait_healthy(process, serve, ready_timeout)
        yield serve
    finally:
        _stop(process)


def _wait_healthy(process: subprocess.Popen[bytes], serve: ServeProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"serve exited with code {process.returncode} before answering /healthz; "
                f"its log ({serve.log}):\n{serve.log.read_text(errors='replace')}"
            )
        try:
            if httpx.get(f"{serve.url}/healthz", trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(
        f"serve (pid {serve.pid}) did not answer /healthz within {timeout} s; "
        f"its log ({serve.log}):\n{serve.log.read_text(errors='replace')}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
