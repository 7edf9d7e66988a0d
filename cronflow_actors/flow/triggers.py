"""What starts a flow from outside, as the builder records it: webhooks (with the request object
their callbacks get, and the answers they may give), polls, and the checks run on both when a
flow is defined.

Webhook callbacks all take one ``WebhookRequest``; ``on_success`` and ``on_error`` may return
the HTTP answer (a ``WebhookResponse``, or a JSON value for the body). The HTTP layer
(``http/routes/webhooks.py``) calls them; nothing here does IO.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import msgspec

from cronflow_actors.calls import callback_problem
from cronflow_actors.errors import ConfigurationError, clipped, validation_path
from cronflow_actors.net.validation import schema_problem

__all__ = [
    "METHODS",
    "PollSpec",
    "SignatureScheme",
    "WebhookProblem",
    "WebhookRequest",
    "WebhookResponse",
    "WebhookSpec",
    "event_name_problem",
    "poll_spec",
    "schema_path",
    "webhook_spec",
]

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class WebhookRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One request to a webhook, as its callbacks see it (``validate``, ``condition``,
    ``idempotency_key``, ``header_validator``, ``on_success``, ``on_error``).

    ``payload`` is the decoded JSON body (None when empty); ``header_validator`` sees it as
    sent, the callbacks after it see it as the ``schema`` converted it (when there is one).
    ``headers`` are all the request's headers, names lowercased (the run keeps only the ones
    the webhook declares). ``method`` is upper case; ``path`` the path requested (``params``
    holds its parameters, ``query`` the query string's). ``raw_body`` is the exact body, bytes,
    with ``parse_raw_body=True``, else None. ``on_error`` may get a request refused before its
    body was read or decoded: then ``payload`` (and ``raw_body``) are None.
    """

    payload: Any = None
    headers: Mapping[str, str] = msgspec.field(default_factory=dict)
    method: str = "POST"
    path: str = ""
    params: Mapping[str, str] = msgspec.field(default_factory=dict)
    query: Mapping[str, str] = msgspec.field(default_factory=dict)
    raw_body: bytes | None = None


class WebhookResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The HTTP answer an ``on_success`` or ``on_error`` callback gives.

    ``body`` is sent as JSON (``None``: no body); ``status`` (200-599) defaults to the standard
    answer's (202 for a started run, 200 for a duplicate, the problem's status for a refusal);
    ``headers`` are added to the standard answer's (``Location`` for a started run, say), and
    replace those of the same name.
    """

    body: Any = None
    status: int | None = None
    headers: Mapping[str, str] = msgspec.field(default_factory=dict)


class WebhookProblem(msgspec.Struct, frozen=True, kw_only=True):
    """Why a webhook refused a request, as ``on_error(request, problem)`` gets it: the fields
    of the standard answer (an RFC 9457 problem). ``type`` is
    ``urn:cronflow:problem:<slug>`` (``invalid-payload``, ``validation-failed``,
    ``invalid-headers``, ``missing-headers``, ``webhook-callback-failed``, ...); ``path`` the
    JSON path of the field a schema refused; ``callback`` the callback that raised."""

    status: int
    type: str
    title: str
    detail: str
    path: str | None = None
    callback: str | None = None


class WebhookSpec(msgspec.Struct, frozen=True, kw_only=True, eq=False):
    """A webhook trigger: served by the HTTP layer of the long-lived runtime."""

    path: str
    route: str = ""
    """The path as a route template: parameters written ``:id`` or ``{id}`` become ``{id}``."""
    params: tuple[str, ...] = ()
    """The names of the path's parameters (``ctx.trigger.params``)."""
    method: str = "POST"
    schema: Any = None
    validate: Any = None
    """``validate(request)``: True accepts; a string (the reason) or anything else refuses
    (400)."""
    condition: Any = None
    """``condition(request)``: false answers 200 ``{"run_id": null, "condition_met": false}``
    and starts nothing."""
    header_validator: Any = None
    """``header_validator(request)``: True accepts; a string (what is wrong) or anything else
    refuses (400). Runs before the schema."""
    required_headers: tuple[str, ...] = ()
    idempotency_key: Any = None
    """A header name, or ``idempotency_key(request)``: requests with the same key start one
    run."""
    require_token: bool = False
    """Callers must send ``Authorization: Bearer <token>`` with a configured token."""
    hmac_secret: str | None = None
    """Callers must sign each request: ``<signature_header>: t=<unix seconds>,v2=<hex
    HMAC-SHA256 of "<t>\\n<METHOD> <path?query>\\n<raw body>">``; a stale or replayed signature is
    refused."""
    signature_schemes: tuple[str, ...] = ("v2",)
    """The signatures taken: ``v2`` covers the method, the path and query, and the body;
    ``v1`` the body alone (``v1=<hex HMAC-SHA256 of "<t>.<raw body>">``), for senders built
    for it; both while senders move from v1 to v2."""
    signature_header: str = "x-signature-256"
    signature_tolerance: float = 300.0
    """How far (seconds) a signature's time may be from the server's; replays within it are
    refused too."""
    keep_headers: tuple[str, ...] = ()
    """Headers kept with the run (``ctx.trigger.headers``) besides the required ones."""
    parse_raw_body: bool = False
    """Keep the exact body with the run (``ctx.trigger.raw_body``) and give it to the
    callbacks (``request.raw_body``)."""
    on_success: Any = None
    """``on_success(request, run_id)``: the answer to an accepted request (see
    ``WebhookResponse``); None keeps the standard one."""
    on_error: Any = None
    """``on_error(request, problem)``: the answer to a refused request (see
    ``WebhookResponse``); None keeps the standard problem."""

    @property
    def callbacks(self) -> dict[str, Any]:
        """The user callbacks this webhook calls, by option name."""
        key = self.idempotency_key if callable(self.idempotency_key) else None
        found = {
            "header_validator": self.header_validator,
            "validate": self.validate,
            "condition": self.condition,
            "idempotency_key": key,
            "on_success": self.on_success,
            "on_error": self.on_error,
        }
        return {name: fn for name, fn in found.items() if fn is not None}


class PollSpec(msgspec.Struct, frozen=True, kw_only=True, eq=False):
    """An ``on_poll`` trigger: ``fn(ctx)`` every ``interval`` seconds, one run per new item."""

    fn: Any
    interval: float
    key: Any = None
    """``key(item)``; None: the item's ``"id"`` (a mapping), else the item itself."""


def poll_spec(
    fn: Any, interval: Any, key: Any, problems: list[str], seconds: float | None
) -> PollSpec | None:
    """A ``PollSpec`` from ``on_poll``'s arguments (``seconds``: the interval parsed, None if
    it could not be); what is wrong goes to ``problems``."""
    where = f"on_poll({getattr(fn, '__name__', fn)!r})"
    found = [callback_problem(fn, 1, f"{where}: the poll function", "fn(ctx) -> list of items")]
    if key is not None:
        found.append(callback_problem(key, 1, f"{where}: key", "key(item) -> str | int"))
    if seconds is not None and seconds <= 0:
        found.append(f"{where}: interval must be longer than 0, got {interval!r}")
    wrong = [problem for problem in found if problem]
    problems.extend(wrong)
    if wrong or seconds is None:
        return None
    return PollSpec(fn=fn, interval=seconds, key=key)


logger = logging.getLogger(__name__)

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
"""Headers never kept with a run, whatever a flow declares."""

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""A header's name: an RFC 9110 token (no space, no separator, no control character)."""
_NO_HEADER_NAME = (
    "which is no header name (letters, digits and -, no space or separator): no request could "
    "carry it"
)


def _header_names(names: Any, what: str, where: str, problems: list[str]) -> tuple[str, ...]:
    """``names``, a list of header names, lowercased. A string was split into its characters
    (every request refused), and a mapping's values were never compared: ``{"x-api-key":
    "s3cret"}`` checked the header was there, any key passing (newcomer h31 F1). A name no
    request can carry (``""``, ``"x token"``) refused every request; a header never kept
    (``Authorization``) in ``keep_headers`` was dropped unsaid, and is warned of (conform h32
    F7, hostile h32 L4)."""
    if isinstance(names, bytes | bytearray):  # (said as given, not as its bytes' numbers)
        problems.append(f"{where}: {what} must be a list of header names, got {clipped(names)}")
        return ()
    if isinstance(names, Mapping):  # (its values, likely secrets, not repeated)
        problems.append(
            f"{where}: {what} is a list of header names a request must carry, and checks no "
            f"value; got a mapping of {sorted(map(str, names))}. To check a shared secret, "
            "use require_token=True (an API token), hmac_secret= (signed requests) or "
            "header_validator= (a function of the request)"
        )
        return ()
    if isinstance(names, str):
        problems.append(
            f"{where}: {what} must be a list of header names, got the string {clipped(names)} "
            f"(a single one is written [{names!r}])"
        )
        return ()
    given = tuple(names)
    if not all(isinstance(name, str) for name in given):
        problems.append(f"{where}: {what} must be a list of header names, got {clipped(given)}")
        return ()
    for name in given:
        if not _HEADER_NAME.fullmatch(name):
            problems.append(f"{where}: {what} holds {clipped(name)}, {_NO_HEADER_NAME}")
    never = [name for name in given if name.lower() in SECRET_HEADERS]
    if never and what == "keep_headers":  # (said, not refused: an app that runs keeps running)
        logger.warning(
            "%s: keep_headers holds %s, which a run never keeps (Authorization, Cookie and the "
            "signature header are dropped); read them in header_validator or validate",
            where,
            clipped(never),
        )
    return tuple(name.lower() for name in given)


def webhook_spec(
    path: Any,
    *,
    method: Any,
    schema: Any,
    callbacks: Mapping[str, Any],
    idempotency_key: Any,
    required_headers: Iterable[str],
    keep_headers: Iterable[str],
    signature_header: str,
    signature_tolerance: Any,
    signature_scheme: Any,
    problems: list[str],
    **options: Any,
) -> WebhookSpec:
    """A ``WebhookSpec`` from ``on_webhook``'s arguments; what is wrong goes to ``problems``."""
    where = f"on_webhook({path!r})"
    route: str = path
    params: tuple[str, ...] = ()
    if not isinstance(path, str) or not path.startswith("/"):
        problems.append(f"on_webhook: the path must start with '/', got {path!r}")
    else:
        route, params = _route_template(path, problems)
    if not isinstance(method, str) or method.upper() not in METHODS:
        problems.append(f"{where}: unknown method {method!r}; use one of {list(METHODS)}")
        method = "POST"
    if (
        isinstance(signature_tolerance, bool)
        or not isinstance(signature_tolerance, int | float)
        or signature_tolerance <= 0
    ):
        problems.append(
            f"{where}: signature_tolerance must be a positive number of seconds, got "
            f"{signature_tolerance!r}"
        )
    schemes = _schemes(signature_scheme)
    if schemes is None:
        problems.append(
            f"{where}: signature_scheme must be 'v2' (the method, path, query and body signed), "
            f"'v1' (the body alone), or both, ('v1', 'v2'), got {signature_scheme!r}"
        )
        schemes = ("v2",)
    elif "v1" in schemes and options.get("hmac_secret") and method.upper() == "GET":
        problems.append(
            f"{where}: a GET request has no body, so a v1 signature (of the body alone) would "
            "sign nothing but its time; use signature_scheme='v2', which signs the path and query"
        )
    arity = {"on_success": 2, "on_error": 2}
    for name, fn in callbacks.items():
        problem = callback_problem(fn, arity.get(name, 1), f"{where}: {name}", _SHAPES[name])
        if problem:
            problems.append(problem)
    if isinstance(idempotency_key, str) and not _HEADER_NAME.fullmatch(idempotency_key):
        named = f"{where}: idempotency_key names the header {clipped(idempotency_key)}"
        problems.append(f"{named}, {_NO_HEADER_NAME}")
    keep = _header_names(keep_headers, "keep_headers", where, problems)
    if signature_header.lower() in keep:  # (dropped, signed or not: review h32 F6)
        logger.warning(
            "%s: keep_headers holds the signature header %r, which a run never keeps (the "
            "signature is checked, then dropped)",
            where,
            signature_header,
        )
    if idempotency_key is not None and not isinstance(idempotency_key, str):
        problem = callback_problem(
            idempotency_key, 1, f"{where}: idempotency_key", _SHAPES["idempotency_key"]
        )
        if problem:
            problems.append(f"{problem} (or a header name)")
    if schema is not None:
        problem = schema_problem(schema, where)
        if problem:
            problems.append(problem)
    return WebhookSpec(
        path=path,
        route=route,
        params=params,
        method=method.upper(),
        schema=schema,
        idempotency_key=idempotency_key,
        required_headers=_header_names(required_headers, "required_headers", where, problems),
        keep_headers=keep,
        signature_header=signature_header.lower(),
        signature_tolerance=signature_tolerance,
        signature_schemes=schemes,
        **callbacks,
        **options,
    )


SignatureScheme = Literal["v1", "v2"]
"""A signed webhook's signature scheme (``WebhookSpec.signature_schemes``)."""


def _schemes(given: Any) -> tuple[str, ...] | None:
    """The signature schemes ``signature_scheme`` names, v2 first; None if it names none."""
    named = (given,) if isinstance(given, str) else given
    if not isinstance(named, tuple | list) or not named:
        return None
    if not all(isinstance(s, str) and s in ("v1", "v2") for s in named):
        return None
    return tuple(s for s in ("v2", "v1") if s in named)


_SHAPES = {
    "validate": "validate(request) -> True | str",
    "condition": "condition(request) -> bool",
    "header_validator": "header_validator(request) -> True | str",
    "idempotency_key": "idempotency_key(request) -> str",
    "on_success": "on_success(request, run_id) -> None | cf.WebhookResponse | JSON body",
    "on_error": "on_error(request, problem) -> None | cf.WebhookResponse | JSON body",
}


def schema_path(error: msgspec.ValidationError) -> str:
    """The JSON path (``$.items[0].sku``) of the field a schema refused; ``$`` for the whole."""
    return validation_path(error)


_PARAM = re.compile(r"^(?::(?P<colon>.+)|\{(?P<brace>.+)\})$")


def _route_template(path: str, problems: list[str]) -> tuple[str, tuple[str, ...]]:
    """``/orders/:id`` or ``/orders/{id}`` -> ``/orders/{id}`` and ``("id",)``."""
    segments, params = [], []
    for segment in path.split("/"):
        match = _PARAM.match(segment)
        if match is None:
            if any(mark in segment for mark in ":{}"):
                problems.append(
                    f"on_webhook({path!r}): {segment!r} is not a path parameter; write a "
                    "parameter as a whole segment, ':name' or '{name}'"
                )
            segments.append(segment)
            continue
        name = match.group("colon") or match.group("brace")
        if not name.isidentifier():
            problems.append(
                f"on_webhook({path!r}): parameter {name!r} needs a name of letters, digits and '_'"
            )
        elif name in params:
            problems.append(f"on_webhook({path!r}): parameter {name!r} appears twice")
        params.append(name)
        segments.append("{" + name + "}")
    return "/".join(segments), tuple(params)


_NOT_IN_A_NAME = frozenset({"Cc", "Zl", "Zp", "Cs"})
"""Unicode's control characters (C0, DEL, C1), line and paragraph separators, and surrogates
(half a character: no text can be encoded with one)."""

_BIDI_CONTROLS = frozenset(chr(code) for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
"""The embeddings, overrides and isolates that turn the text after them around as it is shown
(the marks, LRM and RLM, only lean a character one way, and stay allowed)."""


def not_one_line(text: str) -> bool:
    """Whether ``text`` has a control character, a line or paragraph separator, or a bidi
    control: what makes a name or a reason read as another, or as two lines, where it is shown
    (a log, the console, the CLI)."""
    return any(c in _BIDI_CONTROLS or unicodedata.category(c) in _NOT_IN_A_NAME for c in text)


ONE_LINE_PATTERN = (
    "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069]*(?![\\s\\S])"
)
"""``not_one_line``'s rule as a JSON Schema pattern (ECMA-262), for the OpenAPI document: no
control character, line or paragraph separator, or bidi control (surrogates are left out: a
pattern without the ``u`` flag would refuse every character past the BMP with them). It ends
with "nothing follows", not ``$``, which Python's ``re`` (jsonschema's, schemathesis's) lets
match before a last line break (review h38 F7)."""

EVENT_NAME_LIMIT = 200
"""The longest event name (characters)."""


def check_event_name(name: object) -> None:
    """``ConfigurationError`` for a name no flow could listen for, said once, as what is
    expected (hostile h31 L3: "expected an event name has no ...", the name twice)."""
    wrong = event_name_problem(name)
    if wrong is not None:
        expected = wrong.removeprefix("an event name ").removesuffix(f", got {name!r}")
        raise ConfigurationError("event name", name, f"a name that {expected}", named="argument")


def event_name_problem(name: object) -> str | None:
    """What is wrong with ``name`` as an event's name (None: nothing): 1-200 characters, none
    of them a control character (a name is a key of an index, a label, a line of a log)."""
    if not isinstance(name, str) or not name:
        return f"an event name is a non-empty string, got {name!r}"
    if len(name) > EVENT_NAME_LIMIT:
        return f"an event name has at most {EVENT_NAME_LIMIT} characters, got {len(name)}"
    if not_one_line(name):
        return (
            f"an event name has no control characters, line breaks or bidi controls, got {name!r}"
        )
    return None
