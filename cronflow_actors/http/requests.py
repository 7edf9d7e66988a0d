"""Reading what a client sends, strictly: every bad input is a 4xx that changes nothing.

A body is read within a time limit (408) and a size limit (413, checked while reading); a JSON
route takes ``application/json`` (or ``+json``) only (415: a plain-text form post from another
site cannot act on the API); JSON is refused when malformed or nested deeper than a limit
(400); query parameters are bounded. A client that goes away in the middle of its body is not a
server error: the request is dropped and logged at debug level.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import msgspec
from starlette.requests import ClientDisconnect, Request

from cronflow_actors.http.problems import Problem

__all__ = ["BodyLimits", "query_int", "read_body", "read_json"]

logger = logging.getLogger(__name__)

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")
_LONG_INTEGERS = re.compile(rb"-?\d{19,}(?![\d.eE])")
_INTEGER_RANGE = (-(2**63), 2**64 - 1)  # what a run's stored state can hold


class BodyLimits(msgspec.Struct, frozen=True, kw_only=True):
    max_bytes: int = 1_000_000
    """The largest body accepted."""
    max_depth: int = 64
    """The deepest nesting of JSON arrays and objects accepted."""
    read_timeout: float = 30.0
    """Seconds a client has to send its whole body."""


async def read_body(request: Request, limits: BodyLimits) -> bytes:
    """The raw body, read within ``limits`` (413 when larger, 408 when too slow)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_bytes:
        raise _too_large(limits)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.read_timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_bytes:
                    raise _too_large(limits)
                chunks.append(chunk)
    except TimeoutError:
        raise Problem(
            408,
            "body-timeout",
            f"the request body did not arrive within {limits.read_timeout:g} s",
            headers={"Connection": "close"},
        ) from None
    except ClientDisconnect:
        logger.debug("%s %s: the client went away mid-body", request.method, request.url.path)
        raise
    return b"".join(chunks)


def _too_large(limits: BodyLimits) -> Problem:
    return Problem(413, "body-too-large", f"the body is larger than {limits.max_bytes} bytes")


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_json(request: Request, limits: BodyLimits) -> Any:
    """The body as JSON (None when empty), checked against ``limits``."""
    raw = await read_body(request, limits)
    if not raw.strip():
        return None
    if not is_json(request.headers.get("content-type", "")):
        given = request.headers.get("content-type") or "none"
        raise Problem(
            415,
            "unsupported-media-type",
            f"this route takes a JSON body with 'Content-Type: application/json' (got {given})",
        )
    return decode_json(raw, limits)


def decode_json(raw: bytes, limits: BodyLimits) -> Any:
    """``raw`` as JSON: 400 when malformed, nested deeper than ``limits.max_depth``, or with
    an integer a run's state cannot store (beyond 64 bits)."""
    outside_strings = _STRINGS.sub(b"", raw)
    depth = json_depth(outside_strings)
    if depth > limits.max_depth:
        raise Problem(
            400,
            "too-deeply-nested",
            f"the JSON body nests {depth} levels deep; at most {limits.max_depth} are accepted",
        )
    low, high = _INTEGER_RANGE
    for literal in _LONG_INTEGERS.findall(outside_strings):
        if not low <= int(literal) <= high:
            raise Problem(
                400,
                "number-out-of-range",
                f"the JSON body has the integer {literal[:40].decode()}..., beyond 64 bits; "
                "send it as a string",
            )
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as bad:
        raise Problem(400, "malformed-json", f"the body is not valid JSON: {bad}") from None


def json_depth(raw: bytes) -> int:
    """How deep arrays and objects nest in ``raw``, JSON with its strings taken out, without
    decoding it."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(raw):
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def query_int(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    """A whole-number query parameter within [low, high] (400 otherwise)."""
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 9 or not low <= int(text) <= high:
        raise Problem(
            400, "invalid-argument", f"{name} must be a whole number from {low} to {high}"
        )
    return int(text)


def query_text(request: Request, name: str, *, max_length: int = 200) -> str | None:
    """A text query parameter, bounded in length (400 otherwise)."""
    text = request.query_params.get(name)
    if text is not None and len(text) > max_length:
        raise Problem(400, "invalid-argument", f"{name} is longer than {max_length} characters")
    return text
