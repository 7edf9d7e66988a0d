"""Runs of Cronflow-style flows: start, list, inspect, cancel; their audit trail (the trace,
the state at a moment); events; human pauses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cronflow_actors.http.edge import Edge, json_response, route
from cronflow_actors.http.key_headers import key_header, no_idempotency_key
from cronflow_actors.http.problems import Problem, flow_code_problem
from cronflow_actors.http.requests import as_sent, query_int, query_text
from cronflow_actors.runtime import ONE_LINE_PATTERN, PausedRun, RunInfo, Runtime
from cronflow_actors.runtime.pages import Page
from cronflow_actors.runtime.runs import REASON_LIMIT

__all__ = [
    "ONE_LINE_TEXT",
    "REASON_SENT",
    "WAIT_LIMIT",
    "CancelRun",
    "ReplayRun",
    "cancel_body",
    "canceling",
    "paused_page_json",
    "routes",
    "run_json",
    "runs_page_json",
]

_QUERY = {name: f"the query parameter {name!r}" for name in ("status", "cursor", "at", "run_id")}
"""The arguments of the runtime's reads that a request gives as query parameters."""


WAIT_LIMIT = 60
"""The longest a ``GET /runs/{id}?wait=N`` waits for the run to end (seconds)."""


RunId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,100}$")]
"""A run id a client chooses: 1-100 letters, digits, '-' or '_' (``check_instance_id``; never
one the runtime derives for a trigger, ``<kind>:<hex>``: ``runtime/ids.py``)."""


class StartRun(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /runs``: the flow to start, its payload, and an optional run id (a repeat of
    it starts nothing: 409 instance-exists)."""

    workflow: str
    payload: Any = None
    instance_id: RunId | None = None


ONE_LINE_TEXT = msgspec.Meta(  # documented as the runtime checks it (check_cancel_reason:
    extra_json_schema={"maxLength": REASON_LIMIT, "pattern": ONE_LINE_PATTERN}  # hostile h38 F6)
)
"""A cancel's reason, a schedule pause's note: one line, at most ``REASON_LIMIT`` characters."""


class CancelRun(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /runs/{run_id}/cancel`` (and ``/workflows/{workflow_id}/cancel``): why, recorded
    as the run's error (no body, or null: no reason); ``terminate``: end it without running
    any of its code (``Runtime.cancel(terminate=True)``)."""

    reason: Annotated[str, ONE_LINE_TEXT] = ""
    terminate: bool = False


async def cancel_body(edge: Edge, request: Request) -> CancelRun:
    """A cancel's body (none, or an empty one: no reason); a 400 for a body that is not
    ``{"reason": "...", "terminate": ...}`` (a reason the runtime refuses is named as the
    body's by ``REASON_SENT`` around the call)."""
    expected = 'nothing or {"reason": "why", "terminate": false}'
    return await edge.body_as(request, CancelRun, expected, optional=True)


REASON_SENT = {"reason": "the body's reason"}
"""A cancel's reason, as a request gives it (``as_sent``)."""


@contextlib.contextmanager
def canceling(body: CancelRun) -> Iterator[None]:
    """Around a cancel: a reason the runtime refuses is named as the body's, and a cancel the
    run's own code refused (its teardown raised) offers the way out, which its 500 did not
    (console h43 F4)."""
    with as_sent(REASON_SENT):
        try:
            yield
        except Exception as error:
            problem = None if body.terminate else flow_code_problem(error)
            if problem is None:
                raise
            detail = (
                f"{problem.detail}; or end the run without running any of its code: send the "
                'cancel again with {"terminate": true}'
            )
            raise Problem(problem.status, problem.slug, detail, **problem.fields) from None


class ReplayRun(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /runs/{run_id}/replay``: a payload to replay with instead of the recorded one
    (none, or null: the recorded one); ``resume``: go on from where a failed or canceled run
    stopped, its completed steps kept (``Runtime.replay(resume=True)``); ``instance_id``: the
    new run's id, to replay once (a repeat of it starts nothing: 409 instance-exists)."""

    payload: Any = None
    resume: bool = False
    instance_id: RunId | None = None


def run_json(info: RunInfo, *, steps: bool = True) -> dict[str, Any]:
    body = msgspec.to_builtins(info)
    body["status"] = str(info.status)
    if not steps:
        body.pop("steps", None)
    return body  # type: ignore[no-any-return]


def runs_page_json(page: Page[RunInfo], limit: int) -> dict[str, Any]:
    """``GET /runs``'s answer (steps left out; ``GET /runs/{id}`` has them)."""
    runs = [run_json(run, steps=False) for run in page]
    return {"runs": runs, "limit": limit, "next_cursor": page.next_cursor}


def paused_page_json(page: Page[PausedRun]) -> dict[str, Any]:
    """``GET /paused``'s answer."""
    return {"paused": [msgspec.to_builtins(p) for p in page], "next_cursor": page.next_cursor}


class ResumedBefore(msgspec.Struct):
    """200 from a resume asked again: the resume that started before (newcomer h27: a job
    that resumes what failed could not tell it from a new one)."""

    run_id: str
    duplicate: bool = True


def started(run_id: str) -> Response:
    """202: the run's start is durable; where to follow it."""
    return json_response({"run_id": run_id}, 202, headers={"Location": f"/runs/{run_id}"})


class _LongPolls:
    """``GET /runs/{id}?wait=``: the run once it has ended or ``wait`` seconds have passed, as
    long as fewer than ``share`` requests wait so; beyond it, at once (review h33 F8: three of
    them took every connection of a server of three, ``/readyz`` answering 503)."""

    def __init__(self, runtime: Runtime, share: int) -> None:
        self._runtime = runtime
        self._share = share
        self._waiting = 0

    async def run(self, request: Request, run_id: str, within: int) -> RunInfo:
        runtime = self._runtime
        if not within or self._waiting >= self._share:
            # (as many wait as the server lets: answered as the run stands)
            return await runtime.inspect_when_ended(run_id, 0)
        self._waiting += 1
        ended = asyncio.ensure_future(runtime.inspect_when_ended(run_id, within))
        gone = asyncio.ensure_future(_gone(request))
        try:
            await asyncio.wait((ended, gone), return_when=asyncio.FIRST_COMPLETED)
            if ended.done():
                return ended.result()
            # the client left: its place is free now, not when its wait would have run out
            # (retest2 h33 F1: two dropped polls kept every other one from waiting for 20 s)
            return await runtime.inspect(run_id)  # (an answer nobody reads)
        finally:
            self._waiting -= 1
            for task in (ended, gone):
                task.cancel()


async def _gone(request: Request) -> None:
    """Return once the client that sent ``request`` (a GET: no body to read) has gone."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def routes(edge: Edge) -> list[Route]:
    runtime = edge.runtime

    async def start_run(request: Request) -> Response:
        expected = '{"workflow": name, "payload": ..., "instance_id": ...}'
        start = await edge.body_as(request, StartRun, expected)
        no_idempotency_key(request, "POST /runs", start.instance_id)
        run_id = await runtime.trigger(
            start.workflow,
            start.payload,
            instance_id=start.instance_id,
            principal=edge.caller(request),
        )
        return started(run_id)

    async def list_runs(request: Request) -> Response:
        if "offset" in request.query_params:
            raise Problem(
                400, "invalid-argument", "paging is by cursor: pass the previous page's next_cursor"
            )
        limit = query_int(request, "limit", 50, low=1, high=1000)
        with as_sent(_QUERY):
            page = await runtime.list_runs(
                workflow=query_text(request, "workflow"),
                status=query_text(request, "status"),
                limit=limit,
                cursor=query_text(request, "cursor", max_length=500),
            )
        return json_response(runs_page_json(page, limit))

    polls = _LongPolls(runtime, edge.long_polls)

    async def get_run(request: Request) -> Response:
        within = query_int(request, "wait", 0, low=0, high=WAIT_LIMIT)
        info = await polls.run(request, request.path_params["run_id"], within)
        return json_response(run_json(info))

    async def cancel_run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        body = await cancel_body(edge, request)
        # the caller, so that a net workflow's cancel policy decides here as on /workflows
        with canceling(body):
            await runtime.cancel(
                run_id, principal=edge.caller(request), reason=body.reason, terminate=body.terminate
            )
        return json_response({"run_id": run_id, "status": "canceled"})

    async def replay_run(request: Request) -> Response:
        expected = 'nothing or {"payload": ..., "resume": false, "instance_id": ...}'
        replay = await edge.body_as(request, ReplayRun, expected, optional=True)
        if not replay.resume:  # a run's resume is one run: asked again, it answers
            no_idempotency_key(request, "a replay", replay.instance_id)
        before: list[str] = []  # a resume started before this call: its answer
        run_id = await runtime.replay(
            request.path_params["run_id"],
            payload=replay.payload,
            principal=edge.caller(request),
            resume=replay.resume,
            instance_id=replay.instance_id,
            before=before,
        )
        if before:  # asked again: the resume that started before answers
            return json_response(
                ResumedBefore(run_id), 200, headers={"Location": f"/runs/{run_id}"}
            )
        return started(run_id)

    async def run_trace(request: Request) -> Response:
        return json_response(await runtime.trace(request.path_params["run_id"]))

    async def run_state(request: Request) -> Response:
        at = query_text(request, "at", max_length=100)
        if at is None:
            raise Problem(
                400,
                "invalid-argument",
                "at is required: epoch seconds or an ISO 8601 time with a time zone "
                "(?at=2024-05-01T12:00:00Z)",
            )
        with as_sent(_QUERY):
            return json_response(await runtime.state_at(request.path_params["run_id"], at))

    async def publish(request: Request) -> Response:
        payload = await edge.json(request)
        key = key_header(request, "Idempotency-Key")
        with as_sent({"idempotency_key": "the Idempotency-Key header"}):
            published = await runtime.publish_event(  # who: a net's event filter sees it
                request.path_params["name"],
                payload,
                idempotency_key=key,
                principal=edge.caller(request),
            )
        refused = [msgspec.to_builtins(refusal) for refusal in published.refused]
        body = {
            "started": list(published),
            "refused": refused,
            "delivered": published.delivered,
            "held": published.held,
            "filter_errors": [msgspec.to_builtins(e) for e in published.filter_errors],
            "not_kept": published.not_kept,
            "note": published.note,  # (None: something heard it, or something hears its name)
        }
        return json_response(body, 202)

    async def resume(request: Request) -> Response:
        payload = await edge.json(request)
        # the token's principal: recorded as who resumed (any token may resume a pause)
        await runtime.resume(request.path_params["token"], payload, principal=edge.caller(request))
        return json_response({"status": "resumed"})

    async def run_pause(request: Request) -> Response:
        pause = await runtime.get_run_pause(request.path_params["run_id"])
        return json_response(pause)

    async def paused(request: Request) -> Response:
        with as_sent(_QUERY):
            page = await runtime.list_paused(
                limit=query_int(request, "limit", 100, low=1, high=1000),
                cursor=query_text(request, "cursor", max_length=500),
                run_id=query_text(request, "run_id", max_length=500),
            )
        return json_response(paused_page_json(page))

    return [
        route("/runs", edge.auth, get=list_runs, post=start_run),
        route("/runs/{run_id}", edge.auth, get=get_run),
        route("/runs/{run_id}/cancel", edge.auth, post=cancel_run),
        route("/runs/{run_id}/replay", edge.auth, post=replay_run),
        route("/runs/{run_id}/trace", edge.auth, get=run_trace),
        route("/runs/{run_id}/state", edge.auth, get=run_state),
        route("/runs/{run_id}/pause", edge.auth, get=run_pause),
        route("/events/{name:path}", edge.auth, post=publish),  # a name may hold a slash
        route("/resume/{token}", edge.auth, post=resume),
        route("/paused", edge.auth, get=paused),
    ]
