"""The ``Idempotency-Key`` header: read as a key where a route reads one (printable, not
empty), refused where a route would not read it (a retry would start another run)."""

from __future__ import annotations

from starlette.requests import Request

from cronflow_actors.http.problems import Problem
from cronflow_actors.http.requests import utf8_header

__all__ = ["key_header", "no_idempotency_key", "unread_key"]


def no_idempotency_key(request: Request, where: str, instance_id: str | None) -> None:
    """400 ``unsupported-header`` for an ``Idempotency-Key`` header sent to ``where`` with no
    ``instance_id`` in the body, which is how it names a run: a key it did not read would let
    a retry start a second run while the client believed it safe (hostile h31 L4). Beside an
    ``instance_id`` the header is let be (the id makes the start safe)."""
    if instance_id is None:
        _unread(
            request,
            f"{where} does not read an",
            'give the run an id, {"instance_id": "..."} in the body; asked again with it, it '
            "starts nothing (409 instance-exists)",
        )


def unread_key(request: Request) -> None:
    """``no_idempotency_key`` of a webhook that reads the header in no way (no key, no
    signature to tell a retry by, neither required nor kept): each retry started another run
    while the client believed the key made it safe (hostile h38 F2)."""
    _unread(
        request,
        "this webhook reads no",
        "to have the header name the run, declare it on the webhook, "
        'on_webhook(path, idempotency_key="Idempotency-Key"); or send none',
    )


def _unread(request: Request, reads: str, advice: str) -> None:
    if "idempotency-key" in request.headers:
        raise Problem(
            400,
            "unsupported-header",
            f"{reads} Idempotency-Key header (a retry would start another run): {advice}",
        )


def key_header(request: Request, name: str) -> str | None:
    """``utf8_header`` of a header that holds an idempotency key: 400 for one with a control
    character (a tab, a byte 0x01), which ``/events`` refuses in its key too (hostile h32 L5);
    400 for an empty one (a client's unset variable: it was no key, and each retry started
    another run, hostile h44 F4)."""
    value = utf8_header(request, name)
    if value is not None and not value.strip():
        raise Problem(
            400,
            "invalid-header",
            f"the {name} header is empty; give the request's key (the same in each retry of "
            "it), or leave the header out (no key: each request is a new one)",
        )
    if value is not None and not value.isprintable():
        raise Problem(
            400,
            "invalid-header",
            f"the {name} header holds a character that is not printable (a control character, "
            "or a space other than ' '); an idempotency key is printable text",
        )
    return value
