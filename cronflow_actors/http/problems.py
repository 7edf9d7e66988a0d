"""Errors over HTTP: every refusal is an RFC 9457 problem (``application/problem+json``).

One place maps exceptions to answers (Starlette's ``exception_handlers``): a problem has a
``type`` (a URN per kind of problem), a ``title``, the ``status``, a ``detail`` that says what
was wrong and what to do, and the fields a client needs (the run id, the field path, the
allowed methods). Nothing a client sends produces a 500: an unexpected error is logged with its
traceback and answered as a problem that says so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from cronflow_actors.errors import (
    ActionDeniedError,
    AuthenticationRequiredError,
    ConfigurationError,
    CronflowError,
    IdempotencyKeyReusedError,
    InstanceBusyError,
    InstanceExistsError,
    InstanceTooLargeError,
    InternalOnlyActionError,
    InvalidEventError,
    InvalidPayloadError,
    InvalidStateTransitionError,
    LeaseError,
    NoAuditTrailError,
    NotFoundError,
    NotPausedError,
    NotReplayableError,
    Problem,
    PublishInterruptedError,
    ResumeError,
    RuntimeNotRunningError,
    SnapshotDamagedError,
    StoreClosedError,
    StoreFailedError,
    UnknownWorkflowError,
    WorkflowDeprecatedError,
    WorkItemLimitError,
    refused_in,
)
from cronflow_actors.runtime import EventRefusal

__all__ = [
    "CLOSE",
    "MEDIA_TYPE",
    "Problem",
    "ProblemBody",
    "ambiguous_headers",
    "as_problem",
    "exception_handlers",
    "flow_code_problem",
    "problem_body",
    "problem_response",
]

logger = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"

CLOSE = {"Connection": "close"}
"""The headers of an answer after which the server closes the connection."""


def ambiguous_headers(detail: str) -> Problem:
    """400 ``ambiguous-headers``: a request whose headers a proxy in front may have read
    otherwise (the same one twice, a length and chunks at once). The connection is closed
    after it: what follows on it may be framed otherwise too, and a proxy that saw other
    requests there would pass the server a request it never checked (RFC 9112 6.3;
    hostile h38 F1: the next request on the connection was answered)."""
    return Problem(400, "ambiguous-headers", detail, headers=CLOSE)


_encode = msgspec.json.Encoder().encode

_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    500: "Internal server error",
    503: "Service unavailable",
}


class ProblemBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What every error answer carries (RFC 9457), plus the fields a client may need."""

    type: str
    title: str
    status: int
    detail: str
    path: str | None = None
    """The JSON path of the field at fault, for a payload that does not match a schema."""
    run_id: str | None = None
    allow: list[str] | None = None
    """For a 405: the methods the route allows."""
    callback: str | None = None
    """For a webhook callback that raised: which one (``validate``, ``condition``, ...)."""
    refused: list[EventRefusal] | None = None
    """For an event every listening flow refused: each flow, why, and the field at fault."""
    started: list[str] | None = None
    """For a publish the runtime's trouble cut: the runs it had started."""
    delivered: list[str] | None = None
    """For a publish the runtime's trouble cut: the runs whose waiting step had heard it."""
    raised_in: str | None = None
    """For a call a flow's own code refused by raising: which code (``flow-code-failed``)."""


def problem_response(
    status: int,
    slug: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **fields: Any,
) -> Response:
    body = problem_body(status, slug, detail, **fields)
    response = Response(_encode(body), status_code=status, media_type=MEDIA_TYPE)
    if headers:
        response.headers.update(headers)
    return response


def problem_body(status: int, slug: str, detail: str, **fields: Any) -> ProblemBody:
    """What a problem answer carries."""
    return ProblemBody(
        type=f"urn:cronflow:problem:{slug}",
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        **{k: v for k, v in fields.items() if v is not None},
    )


def _status_of(error: CronflowError) -> tuple[int, str]:
    """The HTTP status and problem slug of an error the runtime raised."""
    match error:
        case InvalidEventError():
            return 400, "invalid-event"
        case AuthenticationRequiredError():
            return 401, "authentication-required"
        case ActionDeniedError() | InternalOnlyActionError():
            return 403, "action-denied"
        case InvalidPayloadError():
            return 400, "invalid-payload"
        case ConfigurationError():
            return 400, "invalid-argument"
        case ResumeError(ended=True):
            return 409, "pause-ended"
        case ResumeError():
            return 404, "unknown-token"
        case NoAuditTrailError():  # the run is there: only its trail is not
            return 404, "no-audit-trail"
        case NotPausedError():  # the run is there: it waits for no person
            return 404, "not-paused"
        case NotFoundError() | UnknownWorkflowError():
            return 404, "not-found"
        case InstanceExistsError():
            return 409, "instance-exists"
        case IdempotencyKeyReusedError():  # as a webhook answers one (IETF's draft: 422)
            return 422, "idempotency-key-reused"
        case InvalidStateTransitionError() | WorkflowDeprecatedError():
            return 409, "conflict"
        case NotReplayableError():
            return 409, "not-replayable"
        case WorkItemLimitError():
            return 409, "work-item-limit"
        case InstanceTooLargeError():
            return 409, "instance-too-large"
        case StoreFailedError() | StoreClosedError() | LeaseError() | RuntimeNotRunningError():
            return 503, "unavailable"
        case InstanceBusyError():  # another process's transaction holds its row: try again
            return 503, "instance-busy"
        case PublishInterruptedError():  # what started is in its detail and its "started"
            return 503, "publish-interrupted"
        case SnapshotDamagedError():  # the server's data, not the request: no retry mends it
            return 500, "damaged-snapshot"
    return 409, "refused"


def as_problem(error: CronflowError) -> Problem:
    """The problem that answers an error the runtime raised."""
    status, slug = _status_of(error)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": "5"}
    fields: dict[str, Any] = {}
    if isinstance(error, InvalidEventError) and error.refused:
        fields = {"path": error.refused[0].path, "refused": error.refused}
    elif isinstance(error, PublishInterruptedError):
        fields = {"started": error.started, "delivered": error.delivered}
    elif isinstance(error, InvalidPayloadError) and error.path is not None:
        fields = {"path": error.path}
    where = refused_in(error)
    if where is not None:  # raised by the flow's own code, which refused the call
        fields["raised_in"] = where
        return Problem(
            status, slug, f"the workflow's {where} raised: {error}", headers=headers, **fields
        )
    return Problem(status, slug, str(error), headers=headers, **fields)


def flow_code_problem(error: Exception, *, message: bool = True) -> Problem | None:
    """The answer to ``error`` when a flow's own code raised it in a call the runtime refused
    (``refuse_call``: a start whose first condition raised, a resume whose next one did; nothing
    of the call changed): a 500 that names that code and the error's class, and its message
    unless ``message`` is False (a webhook's caller is not the flow's operator); logged with
    its traceback. None for any other error (the generic 500 answers it)."""
    where = refused_in(error)
    if where is None or isinstance(error, CronflowError):  # (one of ours: its own answer)
        return None
    logger.error("a call was refused: the %s raised", where, exc_info=error)
    said = f"{type(error).__name__}: {error}" if message else type(error).__name__
    detail = (
        f"the workflow's {where} raised {said}; nothing of this call changed (the traceback "
        "is in the server's log): mend the workflow or the request, then send it again"
    )
    return Problem(500, "flow-code-failed", detail, raised_in=where)


async def _cronflow_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CronflowError)
    problem = as_problem(exc)
    if problem.status >= 500 and problem.status != 503:  # the server's own fault: for its log
        logger.error("%s %s: %s", _request.method, _request.url.path, exc)
    return await _problem(_request, problem)


async def _problem(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc.status, exc.slug, exc.detail, headers=exc.headers, **exc.fields)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        return problem_response(404, "no-route", f"no route {request.url.path}", headers=headers)
    if exc.status_code == 405:
        allow = sorted(m.strip() for m in headers.get("Allow", "").split(",") if m.strip())
        headers["Allow"] = ", ".join(allow)
        detail = f"{request.method} is not allowed on {request.url.path}; use {', '.join(allow)}"
        return problem_response(405, "method-not-allowed", detail, headers=headers, allow=allow)
    return problem_response(exc.status_code, "http-error", str(exc.detail), headers=headers)


async def _client_gone(_request: Request, _exc: Exception) -> Response:
    # The client left in the middle of its request: nobody reads this answer (499, as nginx
    # says), and it is not a server error.
    return Response(status_code=499)


async def _unexpected(_request: Request, _exc: Exception) -> Response:
    # Starlette raises the error on after this answer, and the server logs its traceback.
    detail = "the server failed to answer this request; the error is in the server's log"
    return problem_response(500, "internal-error", detail)


def exception_handlers() -> dict[Any, Any]:
    """For ``Starlette(exception_handlers=...)``: every error, one answer shape."""
    return {
        Problem: _problem,
        ClientDisconnect: _client_gone,
        CronflowError: _cronflow_error,
        HTTPException: _http_error,
        Exception: _unexpected,
    }
