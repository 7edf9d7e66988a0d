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

Under concurrent runs the server answers ``503 Service Unavailable`` to ``POST /flow_runs/``:
``create_flow_run`` (``prefect/server/api/flow_runs.py``) reads the flow's labels, then inserts
the run, in one DEFERRED SQLite transaction, and when another connection has written meanwhile
SQLite refuses the upgrade to a write at once with "database is locked" (SQLITE_BUSY or
SQLITE_BUSY_SNAPSHOT; the 60 s ``busy_timeout`` is not consulted for an upgrade), which
``is_client_retryable_exception`` in ``prefect/server/api/server.py`` turns into a 503. The
client retries a 503 after 2, 4, 8, ... seconds (``prefect/client/base.py``), at most
``PREFECT_CLIENT_MAX_RETRIES`` times, 5 by default, then raises. Even one run at a time meets it:
the server's task-run recorder service writes the previous run's task runs meanwhile (with it
turned off, which would leave task runs unrecorded, none came). This script sets that documented
setting to ``CLIENT_MAX_RETRIES``, and each record counts the 503 answers the client got
(``extra.answers_503``). The suite runs (a) at fewer runs in flight than the
other engines (``--suite-in-flight`` says how many they got; the note says so): see
``benchmarks/README.md``.

The server's first start on a new database spends ~6 s in its migrations and block
registrations: once a server is healthy the script keeps a copy of that empty database beside
the peers' virtualenv (``benchmarks/.peers/prefect-<version>.db``, SQLite's backup API) and
later runs start from a copy of it, as a user's server starts on the database it already has.
Nothing is measured before the server is healthy, so this changes the suite's time, not a figure.

e runs first, on the fresh server, as ours and DBOS's do; a workload whose runs raise, or that
has not finished within ``--seconds``, becomes a failed record and the script goes on.

    python prefect_peer.py --runs N --in-flight K [--suite-in-flight M] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from benchmarks.suite.record import drive, emit, record

ENGINE = "prefect"
DURABILITY = (
    "Prefect's server SQLite at synchronous=NORMAL (fixed by Prefect), results as files "
    "without fsync"
)
# PREFECT_CLIENT_MAX_RETRIES (``prefect/settings/models/client.py``, 5 by default): the client's
# retries of a request answered 503. With 5, 1 and 5 runs of 200 raised at 10 and 50 in flight;
# with 8 none did, up to all 200 at once; a request may back off 2 + 4 + ... + 256 s in all.
CLIENT_MAX_RETRIES = 8


class Count503(logging.Filter):
    """Counts the 503 answers the client got, from the debug message it logs before backing off
    (``_send_with_retry`` in ``prefect/client/base.py``), which it drops; lets through what the
    logger's level let through."""

    def __init__(self, shown: int) -> None:
        super().__init__()
        self.shown = shown
        self.count = 0

    def filter(self, entry: logging.LogRecord) -> bool:
        if entry.levelno == logging.DEBUG and "retryable status code 503" in entry.getMessage():
            self.count += 1
            return False
        return entry.levelno >= self.shown


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PEERS_DIR = Path(__file__).resolve().parents[2] / ".peers"


def template_db() -> Path | None:
    """Where the empty, migrated database of this Prefect version is kept; None without a
    peers' folder (``make bench-peers`` makes it)."""
    if not PEERS_DIR.is_dir():
        return None
    return PEERS_DIR / f"prefect-{importlib.metadata.version('prefect')}.db"


def keep_template(live: Path, template: Path) -> None:
    """A consistent copy of the healthy server's database (the backup API reads it as one
    transaction while the server runs), renamed into place whole."""
    partial = template.with_suffix(".partial")
    source, copy = sqlite3.connect(live), sqlite3.connect(partial)
    try:
        source.backup(copy)
    finally:
        source.close()
        copy.close()
    partial.replace(template)


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

    client_log = logging.getLogger("prefect.client")
    answers_503 = Count503(client_log.getEffectiveLevel())
    client_log.addFilter(answers_503)
    client_log.setLevel(logging.DEBUG)
    wrong: list[str] = []
    errors: list[str] = []

    async def one(_number: int) -> None:
        # A run that raises (its client out of retries) is counted, not left to stop the others.
        try:
            result = await three(7)
        except Exception as error:
            errors.append(f"{type(error).__name__}: {error}"[:300])
            return
        if result != 10:
            wrong.append(repr(result))

    async def workload(name: str, in_flight: int) -> dict[str, Any]:
        wrong.clear()
        errors.clear()
        answers_503.count = 0
        note = ""
        if name == "a" and in_flight < args.suite_in_flight:
            note = (
                f"{in_flight} in flight, not {args.suite_in_flight}: at more, Prefect's server "
                "answers 503 (SQLite 'database is locked' creating flow runs) and the client's "
                "back-off sets the pace (see benchmarks/README.md)"
            )
        failed: str | None = None
        try:
            elapsed, latencies = await asyncio.wait_for(
                drive(one, args.runs, in_flight), timeout=args.seconds
            )
        except TimeoutError:
            failed = f"not finished within {args.seconds:.0f} s"
        except Exception as error:  # whatever fails, the next workload is still measured
            failed = f"{type(error).__name__}: {error}"[:300]
        else:
            if errors or wrong or len(latencies) != args.runs:
                failed = f"{len(errors)} of {args.runs} runs raised, {len(wrong)} wrong"
                failed += "".join(f"; e.g. {example}" for example in (errors + wrong)[:1])
        extra: dict[str, Any] = {
            "answers_503": answers_503.count,
            "client_max_retries": CLIENT_MAX_RETRIES,
        }
        if failed is not None:
            return record(
                ENGINE,
                name,
                runs=args.runs,
                in_flight=in_flight,
                status="failed",
                note="; ".join(x for x in (failed, note) if x),
                **extra,
            )
        return record(
            ENGINE,
            name,
            runs=args.runs,
            in_flight=in_flight,
            elapsed_s=elapsed,
            latencies_s=latencies,
            note=note,
            steps_per_run=3,
            durability=DURABILITY,
            **extra,
        )

    async def run_all() -> None:
        await drive(one, 1, 1)  # warm up; what fails here fails again in the workloads
        emit(await workload("e", 1))
        emit(await workload("a", args.in_flight))

    asyncio.run(run_all())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--in-flight", type=int, default=500)
    parser.add_argument(
        "--suite-in-flight",
        type=int,
        default=0,
        help="the in-flight bound the other engines got; (a)'s note says when it is more",
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="a workload not finished by then fails"
    )
    args = parser.parse_args()
    args.suite_in_flight = args.suite_in_flight or args.in_flight
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
            PREFECT_CLIENT_MAX_RETRIES=str(CLIENT_MAX_RETRIES),
        )
        cli = str(Path(sys.executable).parent / "prefect")
        template = template_db()
        database = Path(folder) / "prefect.db"
        if template is not None and template.exists():
            shutil.copyfile(template, database)
        with (Path(folder) / "server.log").open("w") as log:
            server = subprocess.Popen(
                [cli, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=os.environ.copy(),
            )
            # The client's import (~2 s) beside the server's start, on the other core.
            importing = threading.Thread(target=importlib.import_module, args=("prefect",))
            importing.start()
            try:
                wait_healthy(url, 90, server)
                importing.join()
                if template is not None and not template.exists():
                    keep_template(database, template)
                measure(args)
            finally:
                server.terminate()
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()


if __name__ == "__main__":
    main()
