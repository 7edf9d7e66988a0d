"""Reading what a client sends, strictly: every bad input is a 4xx that changes nothing.

A body is read within a time limit (408) and a size limit (413, checked while reading); a JSON
route takes ``application/json`` (or ``+json``) only (415), and so does every unsafe method
(POST) that names a media type, with a body or without: a page of another site may send a form
or plain text without asking the browser first (no CORS preflight), and must not act on the
API; JSON is refused when malformed or nested deeper than a limit (400); query parameters are
bounded. A client that goes away in the middle of its body is not a
server error: the request is dropped and logged at debug level.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

import msgspec
from starlette.requests import ClientDisconnect, Request

from cronflow_actors.errors import ConfigurationError, clipped
from cronflow_actors.http.big_bodies import busy, take_bytes, take_place, waiting_for_room
from cronflow_actors.http.problems import CLOSE, Problem, ambiguous_headers
from cronflow_actors.runtime import not_one_line

__all__ = [
    "SAFE_METHODS",
    "BodyLimits",
    "as_sent",
    "check_media_type",
    "check_same_site",
    "header_text",
    "joined_headers",
    "masked",
    "query_int",
    "read_body",
    "read_json",
    "utf8_header",
]

logger = logging.getLogger(__name__)

# Scanning a body before decoding it takes time in proportion to its size, never more: escapes
# go first (each two bytes), then strings, which then hold no quote (one pass each).
_ESCAPES = re.compile(rb"\\.", re.DOTALL)
_STRINGS = re.compile(rb'"[^"]*"')
_BRACKETS = re.compile(rb"[\[\]{}]")
_LONG_INTEGERS = re.compile(rb"(?<![\d.eE+-])-?(\d{19,})(?![\d.eE])")
_INTEGER_RANGE = (-(2**63), 2**64 - 1)  # what a run's stored state can hold
_SINGLE = ("content-type", "content-length", "authorization", "content-encoding")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that only read (RFC 9110): a request of one changes nothing, whatever it sends."""


class BodyLimits(msgspec.Struct, frozen=True, kw_only=True):
    max_bytes: int = 1_000_000
    """The largest body accepted."""
    max_depth: int = 64
    """The deepest nesting of JSON arrays and objects accepted."""
    read_timeout: float = 30.0
    """Seconds a client has to send its whole body."""


def one_header(request: Request, name: str) -> str | None:
    """Header ``name``'s value, which the request may send once (400 ``ambiguous-headers`` for
    two: which would a proxy in front have read?); None when it is not sent."""
    given = request.headers.getlist(name)
    if len(given) > 1:
        raise ambiguous_headers(f"the request has more than one {name} header")
    return given[0] if given else None


def utf8_header(request: Request, name: str) -> str | None:
    """``one_header`` read as UTF-8, as a value a caller gives in Python is (HTTP carries bytes,
    which Starlette reads as Latin-1: a key ``ключ`` came out garbled and ``é`` as ``Ã©``, not
    the key a Python publish gives: newcomer h30 F2); 400 for bytes that are not UTF-8."""
    value = one_header(request, name)
    if value is None:
        return None
    try:
        return as_utf8(value)
    except UnicodeDecodeError:
        raise Problem(400, "invalid-header", f"the {name} header is not UTF-8") from None


def printable_kept(kept: Mapping[str, str], request: Request) -> None:
    """400 for a header a run keeps (``required_headers``, ``keep_headers``), or a path
    parameter a webhook's run keeps (``ctx.trigger.params``), that a cancel's
    reason could not hold (``not_one_line``: a control character but a tab, a line separator,
    a bidi control): ``X-Tenant: a\\x01b`` was kept, and shown in listings and steps, where an
    Idempotency-Key with it is refused (hostile h33 L4, review h33 F6); so was a path
    ``/t/%1b%5b31m/`` (hostile h42 F6)."""
    for name, value in kept.items():
        if not_one_line(value.replace("\t", " ")):
            raise Problem(
                400,
                "invalid-header",
                f"the {name} header holds a control character, a line separator or a bidi "
                "control; a header this webhook keeps is text of one line (a tab aside)",
            )
    for name, text in request.path_params.items():  # (a query's text may hold lines: kept)
        if not_one_line(str(text).replace("\t", " ")):
            raise Problem(
                400,
                "invalid-argument",
                f"the path parameter {name!r} holds a control character, a line separator or "
                "a bidi control; a path parameter is text of one line (a tab aside)",
            )


def header_text(value: str) -> str:
    """A header's value as Starlette gives it, read as UTF-8 where its bytes are (``ü`` came
    out ``Ã¼`` in the headers a webhook's run keeps and its callbacks see, where the same
    request's Idempotency-Key reads UTF-8: hostile h32 L3); bytes that are not, as sent."""
    try:
        return as_utf8(value)
    except UnicodeDecodeError:
        return value


def joined_headers(request: Request) -> dict[str, str]:
    """Headers by lowercase name, as UTF-8 where they are; repeats joined by ", " (RFC 9110)."""
    found: dict[str, str] = {}
    for name, given in request.headers.items():
        key, value = name.lower(), header_text(given)
        found[key] = f"{found[key]}, {value}" if key in found else value
    return found


def as_utf8(value: str) -> str:
    """A header's value as Starlette gives it (its bytes read as Latin-1) read as UTF-8;
    ``UnicodeDecodeError`` for bytes that are not."""
    return value if value.isascii() else value.encode("latin-1").decode()


def check_headers(request: Request) -> None:
    """Headers whose meaning would be ambiguous or that this server cannot honour: the same
    one twice (which would a proxy in front have read?), a body that is compressed (a length
    and chunks at once: ``edge.OneFraming``, on every route)."""
    headers = request.headers
    for name in _SINGLE:
        one_header(request, name)
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise Problem(
            415,
            "unsupported-media-type",
            f"bodies are not decoded here (Content-Encoding: {encoding}); send it uncompressed",
        )


async def read_body(request: Request, limits: BodyLimits) -> bytes:
    """The raw body, read within ``limits`` (413 when larger, 408 when too slow); a big one
    once one of the big bodies' places is its (``big_bodies.take_place``: 503 if none)."""
    check_headers(request)
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
                await take_bytes(request.scope, len(chunk))  # a big one's: within the budget
                chunks.append(chunk)
    except TimeoutError:
        if waiting_for_room(request.scope):  # the server's wait, not the client's
            raise busy(limits.read_timeout) from None
        raise Problem(
            408,
            "body-timeout",
            f"the request body did not arrive within {limits.read_timeout:g} s",
            headers=CLOSE,
        ) from None
    except ClientDisconnect:
        path = masked(request.url.path)
        logger.debug("%s %s: the client went away mid-body", request.method, path)
        raise
    await take_place(request.scope)  # a big one waits for its turn to be decoded here
    return b"".join(chunks)


_TOKEN_IN_PATH = re.compile(r"(/resume/)[^/?\s]+")


def masked(text: str) -> str:
    """``text`` with resume tokens (secrets) in paths shown as ``/resume/***``."""
    return _TOKEN_IN_PATH.sub(r"\1***", text)


def _too_large(limits: BodyLimits) -> Problem:
    return Problem(413, "body-too-large", f"the body is larger than {limits.max_bytes} bytes")


def is_json(content_type: str) -> bool:
    """``application/json`` (or ``+json``), in UTF-8 (the only charset JSON is read in here)."""
    media, _, parameters = content_type.partition(";")
    media = media.strip().lower()
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            return False
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def check_path_encoding(request: Request) -> None:
    """400 for a path whose percent-encoding is not UTF-8 (``/events/%FF``): the server reads
    such bytes as U+FFFD, and would act on a name nobody sent (an event no step waits for, a
    run id or token that is no one's) rather than say so. The query's too: ``?k=%fe`` and
    ``?k=%ff`` reached a webhook's run as one value (hostile h32 L7)."""
    parts = (("raw_path", "path", "invalid-path"), ("query_string", "query", "invalid-argument"))
    for key, part, slug in parts:
        raw = request.scope.get(key)
        if not raw or b"%" not in raw:
            continue
        try:
            unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError as bad:
            raise Problem(
                400,
                slug,
                f"the {part}'s percent-encoding is not UTF-8 (byte "
                f"0x{bad.object[bad.start]:02X}): percent-encode the UTF-8 bytes of each "
                "character ('é' is %C3%A9)",
            ) from None


def check_media_type(request: Request, body: bytes = b"", *, subject: str = "this route") -> None:
    """415 unless the request sends JSON: a ``body`` needs ``application/json`` (or ``+json``)
    in UTF-8, and an unsafe method that names another media type is refused without a body too
    (a browser sends a cross-site form, or text, with no body and no preflight as readily as
    with one). A request with neither a Content-Type nor a body passes: ``curl -X POST``, the
    console's and the CLI's calls without a body. An unsafe request a browser sent from
    another site's page is refused first (``check_same_site``)."""
    if request.method not in SAFE_METHODS:
        check_same_site(request)
    given = one_header(request, "Content-Type")  # two are ambiguous, whichever comes first
    if given is None and not body.strip():
        return
    if given is not None and is_json(given):
        return
    if given is not None and request.method in SAFE_METHODS and not body.strip():
        return
    raise Problem(
        415,
        "unsupported-media-type",
        f"{subject} takes JSON, with 'Content-Type: application/json' in UTF-8 (got "
        f"{given or ('none' if given is None else 'an empty one')}); a request without a body "
        "may also send no Content-Type",
    )


def check_same_site(request: Request) -> None:
    """403 for a request a browser sent from a page of another origin: its ``Sec-Fetch-Site``
    says ``cross-site``, or its ``Origin`` names another host than the one it was sent to. A
    page can send a POST with no body and no Content-Type without a CORS preflight, and a
    server on 127.0.0.1 is in reach of every page its user opens. Clients that are no browser
    (curl, the CLI, a webhook's sender) send neither header; the console's own calls are of
    its origin. Two ``Origin`` or ``Sec-Fetch-Site`` headers are ambiguous (400), as any header
    sent twice: the first decided (hostile h45 F4, review h45 F12)."""
    origin = one_header(request, "Origin")
    host = request.headers.get("host", "")
    cross = one_header(request, "Sec-Fetch-Site") == "cross-site"
    if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
        cross = True  # "null" (a sandboxed page, a file) has no host: another origin too
    if cross:
        raise Problem(
            403,
            "cross-site-request",
            f"a browser page of another origin ({origin or 'another site'}) may not call "
            f"{request.method} here; call it from this server's own pages, or from a client "
            "that is no browser",
        )


async def read_json(request: Request, limits: BodyLimits) -> Any:
    """The body as JSON (None when empty), checked against ``limits``; 415 for another media
    type, even with an empty body (``check_media_type``)."""
    raw = await read_body(request, limits)
    check_media_type(request, raw)
    if not raw.strip():
        return None
    return decode_json(raw, limits)


def decode_json(raw: bytes, limits: BodyLimits) -> Any:
    """``raw`` as JSON: 400 when malformed, nested deeper than ``limits.max_depth``, or with
    an integer a run's state cannot store (beyond 64 bits)."""
    outside_strings = _STRINGS.sub(b"", _ESCAPES.sub(b"", raw))
    depth = json_depth(outside_strings)
    if depth > limits.max_depth:
        raise Problem(
            400,
            "too-deeply-nested",
            f"the JSON body nests {depth} levels deep; at most {limits.max_depth} are accepted",
        )
    low, high = _INTEGER_RANGE
    for match in _LONG_INTEGERS.finditer(outside_strings):
        literal = match.group(0)
        # more than 20 digits is out of range whatever they are (and int() of thousands of
        # digits is slow, and refused past 4,300)
        if len(match.group(1)) > 20 or not low <= int(literal) <= high:
            raise Problem(
                400,
                "number-out-of-range",
                f"the JSON body has the integer {literal[:40].decode()}..., beyond 64 bits; "
                "send it as a string",
            )
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as bad:
        lone = _LONE_SURROGATE.search(raw)
        if lone is not None:  # (the decoder calls it "truncated", which it is not)
            raise Problem(
                400,
                "malformed-json",
                f"the JSON body has a lone surrogate escape, {lone.group(0).decode()}, which "
                "is half of a character: send the character itself, or both escapes of its "
                "pair",
            ) from None
        raise Problem(400, "malformed-json", f"the body is not valid JSON: {bad}") from None
    # outside strings a colon parts a key from its value: fewer keys decoded than colons is a
    # key given twice in one object, which a decoder reads as its last value, unsaid
    if outside_strings.count(b":") != _keys_in(value):
        json.loads(raw, object_pairs_hook=_refuse_twice)
    return value


_LONE_SURROGATE = re.compile(
    rb"(?<!\\)(?:\\\\)*\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
"""A high surrogate escape with no low one after it, or a low one with no high one before."""


def _keys_in(value: Any) -> int:
    """How many keys the objects in a decoded JSON ``value`` hold, nested ones included (a
    loop over a stack of the containers only: a third of the time of a recursive walk)."""
    count = 0
    stack = [value] if type(value) is dict or type(value) is list else []
    pop, push = stack.pop, stack.append
    while stack:
        item: Any = pop()
        if type(item) is dict:
            count += len(item)
            item = item.values()
        for sub in item:
            kind = type(sub)
            if kind is dict or kind is list:
                push(sub)
    return count


def _refuse_twice(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _value in pairs:
        if key in seen:
            raise Problem(
                400,
                "malformed-json",
                f"the JSON body gives the key {clipped(key)} twice in one object; give each key "
                "once (which value was meant?)",
            )
        seen.add(key)
    return dict(pairs)


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
    text = _once(request, name)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 9 or not low <= int(text) <= high:
        raise Problem(
            400, "invalid-argument", f"{name} must be a whole number from {low} to {high}"
        )
    return int(text)


def query_text(request: Request, name: str, *, max_length: int = 200) -> str | None:
    """A text query parameter, bounded in length and not empty (400 otherwise: an empty
    ``workflow=``, a script's unset variable, listed no runs as if there were none, hostile
    h44 F5)."""
    text = _once(request, name)
    if text is not None and not text.strip():
        empty = "empty" if not text else "blank (only whitespace)"  # (hostile h45 F10)
        raise Problem(
            400,
            "invalid-argument",
            f"the query parameter {name!r} is {empty}; give a value or leave it out",
        )
    if text is not None and len(text) > max_length:
        raise Problem(400, "invalid-argument", f"{name} is longer than {max_length} characters")
    return text


def _once(request: Request, name: str) -> str | None:
    """Query parameter ``name``, given at most once (400 for two: which would a proxy have
    read? ``?status=completed&status=failed`` listed the failed runs only)."""
    given = request.query_params.getlist(name)
    if len(given) > 1:
        raise Problem(400, "invalid-argument", f"{name} is given {len(given)} times; give it once")
    return given[0] if given else None


@contextlib.contextmanager
def as_sent(names: Mapping[str, str]) -> Iterator[None]:
    """The runtime's refusal of an argument a request gave it, named as the request gave it:
    ``names`` maps the argument (``status``) to what the request sent (``the query parameter
    'status'``, ``the Idempotency-Key header``), where the runtime's own words are a Python
    caller's (``setting 'status'``). A 400 ``invalid-argument`` either way."""
    try:
        yield
    except ConfigurationError as refused:
        sent = names.get(refused.setting)
        if sent is None:
            raise
        raise Problem(
            400,
            "invalid-argument",
            f"{sent} is {clipped(refused.value)}; expected {refused.expected}",
        ) from None
