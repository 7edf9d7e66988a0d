"""A real Prometheus (Debian's ``prometheus`` package, installed by ``.ci/install-test-deps``) on
a free loopback port, scraping loopback targets every second, and its HTTP query API.

Prometheus reaches no network but loopback: it listens on 127.0.0.1, its config names only
``127.0.0.1`` targets (checked here) and no alertmanager, remote write or service discovery, and it
runs with an environment that has no proxy variables. Its lifetime is bounded twice: the block that
started it stops it by pid on the way out (also when the block raised), and coreutils ``timeout``
ends it after ``lifetime`` seconds should the test process die before it could do that.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.serving import free_port

__all__ = [
    "JOB",
    "PrometheusServer",
    "Series",
    "missing_binaries",
    "running_prometheus",
    "scrape_config",
]

JOB = "cronflow"


def missing_binaries() -> str | None:
    """Why the Prometheus tests cannot run here, or None when ``prometheus`` and ``promtool`` are
    on PATH."""
    missing = [name for name in ("prometheus", "promtool") if shutil.which(name) is None]
    if not missing:
        return None
    return (
        f"{' and '.join(missing)} not on PATH: Debian's prometheus package is needed; "
        "`make test` installs it when run as root (.ci/install-test-deps)"
    )


@dataclass(frozen=True)
class Series:
    """One element of an instant query's result: its labels (``__name__`` included when the
    expression keeps it) and its value."""

    labels: Mapping[str, str]
    value: float


class PrometheusServer:
    """A Prometheus started by ``running_prometheus``; ask it with ``query`` and ``wait_for``."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self._process = process
        self.pid = process.pid  # the `timeout` wrapper; prometheus itself is its only child
        self.port = port
        self.log = log
        self._client = httpx.Client(base_url=self.url, trust_env=False, timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self._process.poll() is None

    def wait_exited(self, timeout: float) -> int:
        """Wait for the process to end by itself (its lifetime ran out) and return its exit code;
        ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
        return self._process.wait(timeout=timeout)

    def prometheus_pid(self) -> int | None:
        """The pid of the prometheus process itself, while it runs."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            pids = children.read_text().split()
        except OSError:
            return None
        return int(pids[0]) if pids else None

    def query(self, promql: str) -> list[Series]:
        """The result of an instant query at the current time, as series (a scalar result is one
        series without labels). A query Prometheus rejects raises ``AssertionError`` with its
        error."""
        response = self._client.get("/api/v1/query", params={"query": promql})
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"Prometheus rejected {promql!r}: {body.get('error', body)}")
        data = body["data"]
        match data["resultType"]:
            case "vector":
                # values come as strings: "1", "NaN", "+Inf"
                return [Series(item["metric"], float(item["value"][1])) for item in data["result"]]
            case "scalar":
                return [Series({}, float(data["result"][1]))]
            case kind:
                raise AssertionError(f"{promql!r} gives a {kind}; ask for an instant vector")

    def wait_for(
        self,
        promql: str,
        predicate: Callable[[list[Series]], bool] = bool,
        timeout: float = 10.0,
    ) -> list[Series]:
        """Poll ``query(promql)`` until ``predicate`` holds for its result (by default: until it
        is not empty) and return that result. After ``timeout`` seconds it raises
        ``AssertionError`` with the last result and the scrape targets' health."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if predicate(result):
                return result
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{promql!r} did not satisfy the predicate within {timeout} s; "
                    f"last result: {result}; targets: {self.targets()}"
                )
            time.sleep(0.1)

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets as ``/api/v1/targets`` describes them (URL, health, error)."""
        targets: list[dict[str, Any]] = self._client.get("/api/v1/targets").json()["data"][
            "activeTargets"
        ]
        return targets

    def close(self) -> None:
        self._client.close()


def scrape_config(targets: Sequence[str], interval: float) -> dict[str, Any]:
    """A Prometheus config scraping ``targets`` (``host:port``, loopback only) for ``/metrics``
    every ``interval`` seconds under job ``cronflow``, and nothing else."""
    for target in targets:
        host, _, port = target.rpartition(":")
        if host != "127.0.0.1" or not port.isdigit():
            raise ValueError(f"scrape target {target!r}: only 127.0.0.1:PORT may be scraped")
    every = f"{round(interval * 1000)}ms"
    return {
        "global": {"scrape_interval": every, "scrape_timeout": every, "evaluation_interval": every},
        "scrape_configs": [
            {
                "job_name": JOB,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [*targets]}],
            }
        ],
    }


@contextmanager
def running_prometheus(
    directory: Path,
    targets: Sequence[str],
    *,
    interval: float = 1.0,
    lifetime: float = 300.0,
    ready_timeout: float = 20.0,
) -> Iterator[PrometheusServer]:
    """Start Prometheus scraping ``targets`` every ``interval`` seconds, with its config, TSDB and
    log in ``directory``; yield once ``/-/ready`` answers 200; on leaving (also when the block
    raised) stop it by pid and wait for it. ``lifetime`` bounds how long it may run at all."""
    config = directory / "prometheus.yml"
    # JSON is YAML, so the config needs no YAML writer
    config.write_text(json.dumps(scrape_config(targets, interval), indent=2))
    port = free_port()
    log = directory / "prometheus.log"
    command = [
        "timeout",
        "--kill-after=5",
        f"{lifetime}",
        shutil.which("prometheus") or "prometheus",
    ]
    command += [
        f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'tsdb'}",
        "--storage.tsdb.retention.time=1h",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.external-url=http://127.0.0.1:{port}/",
    ]
    # no proxy variables, no HOME of a real user: nothing to lead it off loopback
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(directory)}
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=directory,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(process, port, log)
    try:
        _wait_ready(process, server, ready_timeout)
        yield server
    finally:
        server.close()
        _stop(process, server)


def _wait_ready(process: subprocess.Popen[bytes], server: PrometheusServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"prometheus exited with code {process.returncode} before it was ready; "
                f"its log ({server.log}):\n{server.log.read_text(errors='replace')}"
            )
        try:
            if httpx.get(f"{server.url}/-/ready", trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(
        f"prometheus (pid {server.pid}) was not ready within {timeout} s; "
        f"its log ({server.log}):\n{server.log.read_text(errors='replace')}"
    )


def _stop(process: subprocess.Popen[bytes], server: PrometheusServer) -> None:
    # SIGTERM to `timeout` is passed on to prometheus, which shuts down cleanly; `timeout` waits
    # for it, and sends SIGKILL itself (--kill-after) if that takes more than 5 s.
    child = server.prometheus_pid()
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        if child is not None:
            os.kill(child, signal.SIGKILL)
        process.kill()
        process.wait(timeout=10)
