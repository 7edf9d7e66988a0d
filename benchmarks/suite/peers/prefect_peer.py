"""Prefect 3 with its local server: workload a (three steps, bounded in flight) and e (one at a
time), written as Prefect's documentation shows a user:

- an async ``@flow`` calling three async ``@task``s, results persisted (``persist_result=True``)
  so a step's output survives a restart (https://docs.prefect.io/v3/develop/write-flows,
  https://docs.prefect.io/v3/develop/write-tasks, https://docs.prefect.io/v3/advanced/results);
- the flow called in-process against a self-hosted server, ``prefect server start``, with
  ``PREFECT_API_URL`` pointing at it (https://docs.prefect.io/v3/manage/self-host);
- async flows run concurrently with ``asyncio.gather`` (the write-flows page).

Durability differs: Prefect's server opens its SQLite file with ``PRAGMA synchronous = NORMAL``
(``prefect/server/database/configurations.py``), not FULL, and a user cannot change it; the
task results are files written without fsync. Measured as shipped; the record says so.

    python prefect_peer.py --runs N --in-flight K
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from benchmarks.suite.record import drive, emit, record

ENGINE = "prefect"
DURABILITY = (
    "Prefect's server SQLite at synchronous=NORMAL (fixed by Prefect), results as files "
    "without fsync"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, seconds: float, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"prefect server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"prefect server not healthy after {seconds} s")


def measure(args: argparse.Namespace) -> None:
    # Imported once PREFECT_HOME and PREFECT_API_URL are set: Prefect reads them at import.
    from prefect import flow, task

    @task(persist_result=True)
    async def inc(x: int) -> int:
        return x + 1

    @flow(persist_result=True)
    async def three(n: int) -> int:
        x = await inc(n)
        x = await inc(x)
        return await inc(x)

    async def run_all() -> None:
        wrong: list[str] = []

        async def one(_number: int) -> None:
            result = await three(7)
            if result != 10:
                wrong.append(repr(result))

        await drive(one, 1, 1)  # warm up
        for workload, in_flight in (("a", args.in_flight), ("e", 1)):
            wrong.clear()
            elapsed, latencies = await drive(one, args.runs, in_flight)
            if wrong or len(latencies) != args.runs:
                rec = record(
                    ENGINE,
                    workload,
                    runs=args.runs,
                    in_flight=in_flight,
                    status="failed",
                    note=f"{len(wrong)} runs wrong, e.g. {wrong[:2]}",
                )
            else:
                rec = record(
                    ENGINE,
                    workload,
                    runs=args.runs,
                    in_flight=in_flight,
                    elapsed_s=elapsed,
                    latencies_s=latencies,
                    steps_per_run=3,
                    durability=DURABILITY,
                )
            emit(rec)

    asyncio.run(run_all())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--in-flight", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="prefect-bench-") as folder:
        port = free_port()
        url = f"http://127.0.0.1:{port}/api"
        os.environ.update(
            PREFECT_HOME=folder,
            PREFECT_API_URL=url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_LOGGING_LEVEL="ERROR",
            PREFECT_SERVER_UI_ENABLED="false",
            PREFECT_RESULTS_PERSIST_BY_DEFAULT="true",
        )
        cli = str(Path(sys.executable).parent / "prefect")
        with (Path(folder) / "server.log").open("w") as log:
            server = subprocess.Popen(
                [cli, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=os.environ.copy(),
            )
            try:
                wait_healthy(url, 90, server)
                measure(args)
            finally:
                server.terminate()
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()


if __name__ == "__main__":
    main()
