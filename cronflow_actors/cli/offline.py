"""The read commands without a server: ``runs``, ``inspect``, ``trace`` and ``paused`` with
``--db`` read the database itself (the SQLite file or PostgreSQL URL that ``serve --db`` names,
opened by ``runtime.database.open_store_to_read``), whether a ``serve`` runs on it or not. They
take no lease and write nothing, so they work beside a running ``serve`` (SQLite's WAL lets a
reader in while the owner writes) and while it is stopped (after a crash, say, to see what was
in flight).

``DatabaseReads`` answers what ``Client``'s reads answer, in the API's JSON (the same functions
shape it), so each command prints both alike.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

import msgspec

from cronflow_actors.cli.exits import Exit
from cronflow_actors.errors import (
    ApiError,
    NotFoundError,
    NotPausedError,
    SnapshotDamagedError,
)
from cronflow_actors.http.routes.runs import paused_page_json, run_json, runs_page_json

__all__ = ["DatabaseReads"]

T = TypeVar("T")


class DatabaseReads:
    """The reads of the client commands, from the database ``db`` (a context manager: the
    store is open inside it)."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.shown = db
        """The database as messages show it (a PostgreSQL URL without its password)."""
        self.again = ""
        """What a command to run next adds to read the same database."""
        self._runner = asyncio.Runner()
        self._runtime: Any = None

    @property
    def where(self) -> str:
        """The database read, as an empty answer names it."""
        return f"the database {self.shown}"

    def __enter__(self) -> DatabaseReads:
        from cronflow_actors.runtime import Runtime
        from cronflow_actors.runtime.database import open_store_to_read

        try:
            store = self._runner.run(open_store_to_read(self.db, setting="--db"))
        except BaseException:
            self._runner.close()
            raise
        self._runtime = Runtime(store=store)  # not started: its reads only, no lease
        self.shown = str(getattr(store, "name", self.db))  # a URL without its password
        self.again = f" --db {shlex.quote(self.shown)}"
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if self._runtime is not None:
                self._runner.run(self._runtime.store.close())
        finally:
            self._runner.close()

    # -- what Client's reads answer ----------------------------------------------------------------

    def run(self, run_id: str) -> dict[str, Any]:
        return run_json(self._read(self._runtime.inspect(run_id), run_id))

    def runs(self, query: dict[str, Any]) -> dict[str, Any]:
        given = {key: value for key, value in query.items() if value is not None}
        page = self._read(self._runtime.list_runs(**given))
        return runs_page_json(page, given.get("limit", 50))

    def trace(self, run_id: str) -> dict[str, Any]:
        trace = self._read(self._runtime.trace(run_id), run_id)
        return msgspec.to_builtins(trace)  # type: ignore[no-any-return]

    def paused(self, limit: int, cursor: str | None, run_id: str | None) -> dict[str, Any]:
        page = self._runtime.list_paused(limit=limit, cursor=cursor, run_id=run_id)
        return paused_page_json(self._read(page))

    def paused_run(self, run_id: str) -> dict[str, Any] | None:
        async def pause_of() -> dict[str, Any] | None:
            try:
                pause = await self._runtime.get_run_pause(run_id)
            except NotPausedError:
                return None
            return msgspec.to_builtins(pause)  # type: ignore[no-any-return]

        return self._read(pause_of(), run_id)

    def flows(self) -> list[str] | None:
        """The flows registered: none is, offline (None: not known here)."""
        return None

    def _read(self, call: Coroutine[Any, Any, T], run_id: str | None = None) -> T:
        """``call``'s answer; a run that is not stored, a run without an audit trail or a
        damaged snapshot is exit 3, said with the database."""
        try:
            return self._runner.run(call)
        except NotFoundError as missing:
            if run_id is not None and type(missing) is NotFoundError and missing.kind == "run":
                message = (
                    f"no run {run_id!r} in the database {self.shown}; "
                    f"'cronflow-actors runs{self.again}' lists the runs"
                )
            else:
                message = str(missing)
            raise ApiError(message, exit_code=Exit.NOT_FOUND_OR_CONFLICT, status=404) from None
        except SnapshotDamagedError as damaged:
            raise ApiError(
                f"cannot read this run from {self.shown}: {damaged}",
                exit_code=Exit.NOT_FOUND_OR_CONFLICT,
            ) from None
