"""A throwaway PostgreSQL server for tests and benchmarks: Debian's ``postgresql`` binaries,
``initdb`` and ``pg_ctl`` in a temporary directory (as the ``postgres`` user via ``runuser`` when
run as root: initdb refuses root), listening on loopback only, on a free port, stopped by its own
pid (SIGINT: PostgreSQL's fast shutdown, then SIGKILL) and removed at the end.

    with TemporaryPostgres() as server:
        url = server.url("cronflow")   # postgresql://postgres@127.0.0.1:PORT/cronflow
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["PostgresUnavailableError", "TemporaryPostgres", "find_binaries"]

STARTUP_SECONDS = 60.0


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL server binaries on this machine (``make test`` installs Debian's
    ``postgresql``), or the server would not start."""


def find_binaries() -> Path | None:
    """The folder of ``initdb``, ``pg_ctl`` and ``postgres``: Debian's newest version under
    /usr/lib/postgresql, else the one on PATH; None when there is none."""
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name.split(".")[0]),
    )
    if versions:
        return Path(versions[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class TemporaryPostgres:
    """One PostgreSQL cluster of its own; ``fsync`` stays on (durability as in production)
    unless ``fsync=False`` is asked for."""

    def __init__(self, *, fsync: bool = True, max_connections: int = 200) -> None:
        self.fsync = fsync
        self.max_connections = max_connections
        self.port = 0
        self.directory: Path | None = None
        self.pid: int | None = None
        self._as_postgres = os.geteuid() == 0
        self._databases = 0

    def create_database(self) -> str:
        """A new, empty database on this server; its URL."""
        self._databases += 1
        name = f"test_{self._databases}"
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)

    def psql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with psql; its output (unaligned, tuples only)."""
        binaries = find_binaries()
        assert binaries is not None
        done = subprocess.run(
            [
                *(str(binaries / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"),
                *("-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"),
                *("-d", database, "-c", statement),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            raise PostgresUnavailableError(f"psql {statement!r} failed: {done.stderr}")
        return done.stdout

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str, timeout: float = STARTUP_SECONDS) -> None:
        argv = list(command)
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise PostgresUnavailableError(
                f"{' '.join(argv)} failed ({done.returncode}): {done.stderr or done.stdout}"
            )

    def start(self) -> TemporaryPostgres:
        binaries = find_binaries()
        if binaries is None:
            raise PostgresUnavailableError(
                "no PostgreSQL server binaries (initdb, pg_ctl): install Debian's postgresql "
                "package (make test-deps does, as root)"
            )
        self.directory = Path(tempfile.mkdtemp(prefix="cronflow-pg-"))
        data = self.directory / "data"
        if self._as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self.port = _free_port()
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            f"-c max_connections={self.max_connections} -c fsync={'on' if self.fsync else 'off'} "
            "-c shared_buffers=128MB"
        )
        log = self.directory / "server.log"
        self._run(
            str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start"
        )
        pid_file = data / "postmaster.pid"
        self.pid = int(pid_file.read_text().split("\n", 1)[0])
        return self

    def stop(self) -> None:
        """Stop the server by its pid (fast shutdown, then SIGKILL) and remove its files."""
        pid, self.pid = self.pid, None
        if pid is not None:
            try:
                os.kill(pid, signal.SIGINT)
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    os.kill(pid, 0)
                    time.sleep(0.05)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> TemporaryPostgres:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()
