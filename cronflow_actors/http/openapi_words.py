"""What the OpenAPI document says in words: each error status's meaning, a signed webhook's
signature header, an idempotency key's, an event's name, what every JSON body is held to."""

from __future__ import annotations

from typing import Any

from cronflow_actors.runtime import EVENT_NAME_LIMIT, ONE_LINE_PATTERN

__all__ = [
    "EVENT_NAME",
    "IDEMPOTENCY",
    "KEPT_HEADER",
    "KEY_HEADER",
    "MEANINGS",
    "PATH_TEXT",
    "PUBLISH_KEY",
    "body_of",
    "signature",
]

EVENT_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": EVENT_NAME_LIMIT,
    "pattern": ONE_LINE_PATTERN,
}
"""An event's name as the runtime takes it (``event_name_problem``): a slash too, sent %2F."""

_HEADER_TEXT = (
    "^[^\\u0000-\\u0008\\u000a-\\u001f\\u007f-\\u009f\\u2028\\u2029\\u202a-\\u202e"
    "\\u2066-\\u2069]*$"
)
KEPT_HEADER = {"type": "string", "minLength": 1, "pattern": _HEADER_TEXT}
"""A header a webhook requires and its run keeps: not empty, of one line (a tab aside, as
``requests.printable_kept`` takes it; hostile h42 F9: the document took what it refuses)."""

_PRINTABLE = (
    "^[^\\u0000-\\u001f\\u007f-\\u00a0\\u00ad\\u2000-\\u200f\\u2028-\\u202f\\u205f-\\u206f"
    "\\u3000\\ufeff]*$"
)
KEY_HEADER = {"type": "string", "pattern": _PRINTABLE, "minLength": 1}
"""An idempotency key's header: printable text, not empty (``key_headers.key_header``: no control
character, no space but ' '; the document's pattern leaves out the rarer unprintable ones)."""
PUBLISH_KEY = {**KEY_HEADER, "maxLength": 200}
"""A publish's key: printable text of up to 200 characters (``runtime/events.py``)."""

_SIGNATURES = {
    "v2": "'<t>', a line break, '<METHOD> <path?query>' (as sent), a line break, then the body",
    "v1": "'<t>.' followed by the body",
}


def signature(schemes: tuple[str, ...]) -> str:
    """The signature header's description for a webhook taking ``schemes``."""
    shapes = " or ".join(
        f"t=<unix seconds>,{scheme}=<hex HMAC-SHA256 of {_SIGNATURES[scheme]}, keyed by the "
        "webhook's secret>"
        for scheme in schemes
    )
    return f"{shapes}; refused when t is outside the tolerance or the request was seen before"


IDEMPOTENCY = "requests with the same value start one run (later ones answer 200 with its id)"
MEANINGS = {
    "400": "the request is malformed or does not fit the schema; nothing was changed",
    "401": "a bearer token (or a valid signature) is needed; nothing was changed",
    "403": (
        "the action's policy refused the caller (action-denied), the bearer token may only "
        "read (read-only-token), a browser page of another "
        "origin sent it (cross-site-request), or the Host is none this server answers to "
        "(host-not-allowed); nothing was changed"
    ),
    "404": "no such run, workflow, work item, flow or token (or no route for the path)",
    "409": "the element's state does not allow it (or the id is taken); nothing was changed",
    "413": "the request body is too large",
    "422": (
        "the request's idempotency key names a run started with another body "
        "(idempotency-key-reused); nothing was started"
    ),
    "408": "the request body was not sent in time",
    "415": "the body (or a Content-Type sent without one) must be application/json",
    "500": (
        "a webhook callback raised (its traceback is in the server's log), the flow's own code "
        "raised in this call (flow-code-failed: raised_in names it; nothing was changed), or "
        "the run's stored snapshot is damaged (damaged-snapshot: the detail names the run; a "
        "retry does not help)"
    ),
    "503": (
        "the runtime is not running (stopping, or its store failed), or the server is at its "
        "connection limit or has too many big bodies in hand (too-busy); retry later. On a "
        "cluster, a call the process holding the run died in before it answered may have been "
        "done (its detail says so): look at the run before sending it again"
    ),
}


_BODY = (
    "JSON. An integer beyond 64 bits (under -2^63 or over 2^64 - 1) anywhere in it is refused "
    "(400 number-out-of-range: send it as a string), as is JSON nested deeper than the "
    "server's max_json_depth (64 by default; 400 too-deeply-nested)."
)
"""What the server holds every JSON body to, which no JSON schema says (console h40 F3)."""


def body_of(content: dict[str, Any], required: bool) -> dict[str, Any]:
    """An operation's ``requestBody`` of ``content``, with what every JSON body is held to."""
    return {"description": _BODY, "content": content, "required": required}


PATH_TEXT = (
    "^[^/\\u0000-\\u0008\\u000a-\\u001f\\u007f-\\u009f\\u2028\\u2029\\u202a-\\u202e"
    "\\u2066-\\u2069]+(?![\\s\\S])"
)
"""A path parameter: one segment of one line (``requests.printable_kept``: a tab aside, no control
character, line separator or bidi control, which the server refuses: hostile h44 F3)."""
