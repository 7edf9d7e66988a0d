"""Runs of Cronflow-style flows: start one (``trigger``), wait for its end (``wait``).

A run is a root instance of a compiled flow; its id is the instance id. It starts with its
trigger's ``TriggerEnvelope`` as the instance's payload, through the flow's run queue when a
limit may hold it back, else at once, through the instance directory (so it is as durable as
any instance). How runs are shown is ``runtime/run_views.py``, their hooks
``runtime/run_hooks.py``, listings' pages ``runtime/pages.py``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cronflow_actors.engine.context import WorkflowInfo
from cronflow_actors.errors import (
    ConfigurationError,
    InstanceExistsError,
    NotFoundError,
    RunFailedError,
)
from cronflow_actors.flow.context import step_error
from cronflow_actors.flow.envelope import Resumed, flow_payload
from cronflow_actors.flow.triggers import not_one_line
from cronflow_actors.runtime.catalog import FlowCatalog
from cronflow_actors.runtime.ids import DERIVED_KINDS
from cronflow_actors.runtime.pages import Page, decode_cursor, encode_cursor
from cronflow_actors.runtime.queues import RunQueues
from cronflow_actors.runtime.run_views import RunInfo, RunResult, RunStatus, StepInfo

__all__ = [
    "Page",
    "RunFailedError",
    "RunInfo",
    "RunResult",
    "RunStatus",
    "Runs",
    "StepInfo",
    "check_instance_id",
    "decode_cursor",
    "encode_cursor",
]

_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
_DERIVED = re.compile(rf"(?:{'|'.join(DERIVED_KINDS)}):[0-9a-f]{{32}}")

StartRun = Callable[[str, Any, str | None, bool], Awaitable[str]]
"""``start(workflow, envelope, instance_id, dequeued) -> run id``."""


class Runs:
    def __init__(
        self,
        *,
        catalog: FlowCatalog,
        queues: RunQueues,
        start: StartRun,
        ready: Callable[[str], Awaitable[None]],
        wait_workflow: Callable[[str], Awaitable[WorkflowInfo]],
        admit: Callable[[Callable[[], Awaitable[str]]], Awaitable[str]],
        reserved: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self._catalog = catalog
        self._reserved = reserved
        """Whether an id is one a migration under way will give its new run."""
        self._admit = admit
        """Holds a new run's start to ``max_active_runs``, if set (``runtime/admission.py``)."""
        self._queues = queues
        self._start = start
        self._ready = ready
        self._wait_workflow = wait_workflow

    async def trigger(
        self,
        workflow: str,
        payload: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        kind: str = "manual",
        instance_id: str | None = None,
        params: Mapping[str, str] | None = None,
        raw_body: bytes | None = None,
        replay_of: str | None = None,
        query: Mapping[str, str] | None = None,
        body_digest: str | None = None,
        derived: bool = False,
        by: str | None = None,
        resumed: Resumed | None = None,
        webhook: str | None = None,
    ) -> str:
        """``derived``: ``instance_id`` is one a trigger derived (``ids.derived_run_id``), which
        only the runtime's own triggers give; ``by``: who asked (an API token's principal)."""
        self._catalog.root(workflow)
        if instance_id is not None:
            check_instance_id(instance_id, derived=derived)
            if not derived:  # (a derived id, ``kind:`` and hex, is never a migration's)
                await self.check_free(instance_id)
        await self._ready(workflow)  # a flow registered meanwhile: its queue is restored first
        envelope = flow_payload(
            payload,
            headers=headers,
            kind=kind,
            params=params,
            raw_body=raw_body,
            replay_of=replay_of,
            query=query,
            body_digest=body_digest,
            by=by,
            resumed=resumed,
            webhook=webhook,
        )
        # its place first, before its flow's queue or its id is locked (admission.py)
        return await self._admit(lambda: self._start_or_queue(workflow, envelope, instance_id))

    async def check_free(self, instance_id: str) -> None:
        """``InstanceExistsError`` for an id a caller chose that a migration under way has
        planned for its new run (published in its ``migrated_to`` and its errors): taken, it
        had the migration end on the caller's run, and the migrated run was lost."""
        if self._reserved is not None and await self._reserved(instance_id):
            raise InstanceExistsError(instance_id, planned=True)

    def _start_or_queue(
        self, workflow: str, envelope: Any, instance_id: str | None
    ) -> Awaitable[str]:
        # (not a coroutine of its own: the start's or the queue's, awaited by the caller)
        if self._queues.limited(workflow):
            return self._queues.trigger(workflow, envelope, instance_id)
        return self._start(workflow, envelope, instance_id, False)

    async def wait(self, run_id: str) -> RunResult:
        try:
            info = await self._wait_workflow(run_id)
        except NotFoundError:
            # queued under a concurrency limit (or started since): wait for its start, then
            # for its end; an id that was never started nor queued is still not found
            await self._queues.wait_started(run_id)
            info = await self._wait_workflow(run_id)
        error = step_error(info.error) if info.name in self._catalog.compiled else info.error
        return RunResult(
            id=run_id, status=RunStatus(str(info.state)), output=info.output, error=error
        )


def check_instance_id(instance_id: Any, *, derived: bool = False) -> None:
    """A run id a caller may give: 1-100 letters, digits, ``-`` or ``_``; with ``derived``,
    one the runtime derived for a trigger (``ids.derived_run_id``, ``<kind>:<hex>``), which
    no caller gives, so none takes a trigger's run before it comes."""
    if not isinstance(instance_id, str) or not (
        _ID.fullmatch(instance_id) or (derived and _DERIVED.fullmatch(instance_id))
    ):
        raise ConfigurationError("instance_id", instance_id, "1-100 letters, digits, '-' or '_'")


REASON_LIMIT = 500
"""The longest reason a cancel records (characters)."""


def check_cancel_reason(reason: Any, name: str = "reason") -> None:
    """Why a caller cancels a run, recorded as its error: "" (none given) or up to 500
    characters on one line (it is shown by ``inspect`` and written in logs), no control
    characters. ``name``: what the caller called it (a schedule pause's ``note``)."""
    if not isinstance(reason, str) or len(reason) > REASON_LIMIT or not_one_line(reason):
        raise ConfigurationError(
            name,
            reason,
            f"a string of at most {REASON_LIMIT} characters with no control characters, line "
            "breaks or bidi controls",
        )
