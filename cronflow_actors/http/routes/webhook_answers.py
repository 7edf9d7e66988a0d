"""A webhook callback's own answer (``on_success``, ``on_error``: a ``WebhookResponse``, or a
JSON body) as the HTTP response; what it does not say is the standard answer's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from cronflow_actors.http.edge import json_response
from cronflow_actors.runtime import WebhookResponse

__all__ = ["custom_response"]


def custom_response(value: Any, standard: Response) -> Response:
    """``value`` (a ``WebhookResponse`` or a JSON body) as an answer, with the standard
    answer's status and headers unless it says otherwise."""
    headers = {
        name: header
        for name, header in standard.headers.items()
        if name not in ("content-length", "content-type")
    }
    if not isinstance(value, WebhookResponse):
        return json_response(value, standard.status_code, headers=headers)
    status = standard.status_code if value.status is None else value.status
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise ValueError(
            f"a WebhookResponse status is a whole number from 200 to 599, got {status!r}"
        )
    if not isinstance(value.headers, Mapping):
        raise TypeError(f"WebhookResponse headers are a mapping of strings, got {value.headers!r}")
    merged = {name.lower(): header for name, header in headers.items()}
    for name, header in value.headers.items():
        if not isinstance(name, str) or not isinstance(header, str):
            raise TypeError(f"WebhookResponse headers are strings, got {name!r}: {header!r}")
        merged[name.lower()] = header
    if value.body is None:
        return Response(b"", status_code=status, headers=merged)
    return json_response(value.body, status, headers=merged)
