"""Who is calling: bearer tokens mapped to principals, and signed webhook requests.

Callers authenticate through Starlette's ``AuthenticationMiddleware`` with ``BearerAuth`` as
its backend, on every route but ``/healthz``, ``/readyz``, ``/openapi.json`` and the webhooks
(which check a token themselves when their flow asks for one); ``/metrics`` has its own token
when one is configured. A route reads the caller from ``request.user`` (a ``Caller``, holding
the ``Principal``) and ``request.auth`` (its scopes). The middleware sits on each route, after
routing, so an unknown path is a 404 and a wrong method a 405 whoever asks.

Tokens are compared in constant time (``hmac.compare_digest`` against every configured token),
so a client cannot learn a token one character at a time. A read-only token (``read_only =
true`` in the config) may send ``GET`` and ``HEAD`` only: anything else is a 403
``read-only-token``, a webhook that takes a token included (a GET one starts a run too). A
malformed ``Authorization`` header is a 401 on every authenticated route, even where no token
is needed.

Signed webhooks (``on_webhook(..., hmac_secret=...)``) carry a header ``<signature_header>:
t=<unix seconds>,v2=<hex HMAC-SHA256 of "<t>\n<METHOD> <path?query>\n<raw body>">``: the
signature is good for one method and target, so it cannot be sent to another webhook, nor with
other path parameters or another query. A webhook defined with ``signature_scheme="v1"`` takes
``v1=<hex HMAC-SHA256 of "<t>.<raw body>">`` instead (the older scheme, for senders that sign
the body alone: such a signature is good at every webhook sharing the secret, once at each), and
``signature_scheme=("v1", "v2")`` takes either, while senders move to v2. Several values are
accepted, for a secret being rotated. A signature whose time is more than the tolerance away
from now is refused, and so is one seen before within the tolerance (kept in the store, so a
replay is refused across a restart too). A signature counts as seen once its request is
accepted, not when it is checked: ``verify`` checks it, ``claim`` takes it for the request being
accepted (one counter in the store, so of two identical requests at once one takes it), and
``release`` gives it back when that request is refused after all, so a client may send a refused
request again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections.abc import Collection, Iterator, Mapping
from typing import Any, Protocol

import msgspec
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Scope

from cronflow_actors.http.problems import CLOSE, Problem, ambiguous_headers, problem_response
from cronflow_actors.messages import Principal
from cronflow_actors.runtime import SECRET_HEADERS

__all__ = [
    "READ_ONLY",
    "SECRET_HEADERS",
    "BearerAuth",
    "Caller",
    "Signature",
    "Signatures",
    "Tokens",
    "replayed",
    "request_line",
    "sign",
    "sign_request",
]


_REPLAYS = "cronflow:webhook-signatures"
_ANSWERED = "cronflow:webhook-signatures-answered"
"""Signed requests answered (a ``condition`` said no, or a run named by the signature started):
spent, so a claim with no run behind it is no crash's (the run may have been pruned)."""
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_READS = frozenset({"GET", "HEAD"})
"""The methods a read-only token may use: they change nothing."""
READ_ONLY = "read-only-token"
_TWO_CREDENTIALS = "the request has more than one Authorization header; send one"


class Tokens:
    """Bearer tokens and the principals they stand for. A token of ``read_only`` may read
    (``GET``, ``HEAD``) and nothing more: anything else it asks is a 403 ``read-only-token``
    (a dashboard's, an auditor's, the console of someone who watches), webhooks included."""

    def __init__(
        self,
        tokens: Mapping[str, Principal],
        read_only: Collection[str] = (),
        *,
        unknown: str = "the bearer token is not one this server knows",
    ) -> None:
        stray = set(read_only) - set(tokens)
        if stray:  # a typo would leave the token it meant able to write
            raise ValueError(f"read_only names tokens that are not configured: {len(stray)}")
        self._unknown = unknown
        """What a token that is none of these is told (``/metrics``: an API token is not its)."""
        self._entries = [
            (token.encode(), principal, token in read_only) for token, principal in tokens.items()
        ]

    @property
    def configured(self) -> bool:
        return bool(self._entries)

    def identify(self, header: str, *, writes: bool) -> Principal:
        """The principal of an ``Authorization`` header; ``AuthenticationError(slug, detail)``
        for one that is malformed or names no configured token, or (``writes``: the request
        changes something) a read-only token."""
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            detail = "the Authorization header must be 'Bearer <token>'"
            raise AuthenticationError("malformed-credentials", detail)
        found = self._entry(token)
        if found is None and not self._entries:  # (a stale CRONFLOW_TOKEN: newcomer h44 F2)
            said = "this server takes no tokens (none is configured): send the request without one"
            raise AuthenticationError("unknown-token", said)
        if found is None:
            raise AuthenticationError("unknown-token", self._unknown)
        principal, read_only = found
        if writes and read_only:
            raise AuthenticationError(
                READ_ONLY,
                f"the bearer token of {principal.id!r} is read-only: it may only read (GET); "
                "nothing was changed. Send a token without read_only = true to change anything",
            )
        return principal

    def principal(self, request: Request) -> Principal | None:
        """The caller's principal; None without an ``Authorization`` header; 401 for one that
        is malformed or names no configured token, 403 for a read-only one (for the routes that
        check tokens themselves: webhooks, which start runs)."""
        given = request.headers.getlist("authorization")
        if len(given) > 1:
            raise ambiguous_headers(_TWO_CREDENTIALS)
        if not given:
            return None
        header = given[0]
        try:
            return self.identify(header, writes=True)
        except AuthenticationError as refused:
            if refused.args[0] == READ_ONLY:
                raise Problem(403, *refused.args) from None
            raise Problem(401, *refused.args, headers=_CHALLENGE) from None

    def known(self, scope: Scope) -> str | None:
        """The principal id of the configured token an ASGI request carries in its one
        ``Authorization`` header, if that token may send it (what ``identify`` would find),
        before any route reads it; None for any other request."""
        given = [value for name, value in scope["headers"] if name == b"authorization"]
        if len(given) != 1:
            return None
        writes = scope.get("method") not in _READS
        try:
            principal = self.identify(given[0].decode("latin-1"), writes=writes)
        except AuthenticationError:
            return None
        return principal.id or ""

    def match(self, token: str) -> Principal | None:
        """The principal of ``token``, comparing it with every configured token."""
        found = self._entry(token)
        return None if found is None else found[0]

    def _entry(self, token: str) -> tuple[Principal, bool] | None:
        """``token``'s principal and whether it is read-only, compared with every token."""
        given = token.encode("latin-1", "replace")
        found = None
        for known, principal, read_only in self._entries:
            if hmac.compare_digest(given, known):
                found = (principal, read_only)
        return found


class Caller(BaseUser):
    """``request.user`` of an authenticated request: the principal its token stands for."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.principal.id or ""

    @property
    def identity(self) -> str:
        return self.principal.id or ""


class BearerAuth(AuthenticationBackend):
    """The backend of ``AuthenticationMiddleware``: the caller's bearer token, if any.

    ``required``: a request without an ``Authorization`` header is refused (401, ``missing``
    says what it needs); otherwise it goes on unauthenticated. A header that is malformed or
    names no token of ``tokens`` is refused either way.
    """

    def __init__(self, tokens: Tokens, *, required: bool, missing: str) -> None:
        self._tokens = tokens
        self._required = required
        self._missing = missing

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        given = conn.headers.getlist("authorization")
        if len(given) > 1:  # which would a proxy in front have read? (the first won here)
            raise AuthenticationError("ambiguous-headers", _TWO_CREDENTIALS)
        header = given[0] if given else None
        if header is None:
            if self._required:
                raise AuthenticationError("authentication-required", self._missing)
            return None
        principal = self._tokens.identify(header, writes=conn.scope["method"] not in _READS)
        return AuthCredentials(sorted(principal.scopes)), Caller(principal)

    def middleware(self) -> list[Middleware]:
        """For a route's ``middleware``: this backend, refusals answered as problems."""
        return [Middleware(AuthenticationMiddleware, backend=self, on_error=_unauthorized)]


def _unauthorized(_conn: HTTPConnection, error: AuthenticationError) -> Response:
    """The 401 problem of a refused caller (``error.args``: the problem's slug and detail)."""
    slug, detail = error.args
    if slug == "ambiguous-headers":  # no credential was refused: the request is malformed
        return problem_response(400, slug, detail, headers=CLOSE)  # (as ambiguous_headers)
    if slug == READ_ONLY:  # the token is good, for something else
        return problem_response(403, slug, detail)
    return problem_response(401, slug, detail, headers=_CHALLENGE)


def sign(secret: str, timestamp: int, body: bytes, request: str | None = None) -> str:
    """The signature of a request sent at ``timestamp``, as a client computes it: ``v2``, of
    ``"<t>\n<request>\n"`` and the body (``request``: ``"POST /hooks/orders?x=1"``, the
    path and query as sent; a line break is in no request line, so no path and body can be
    cut apart two ways), or ``v1`` (``request`` None), of ``"<t>."`` and the body alone."""
    head = f"{timestamp}." if request is None else f"{timestamp}\n{request}\n"
    return hmac.new(secret.encode(), head.encode() + body, hashlib.sha256).hexdigest()


def sign_request(
    secret: str, method: str, target: str, body: bytes = b"", *, at: int | None = None
) -> str:
    """The signature header's value (``X-Signature-256`` by default) of a request to a signed
    webhook, scheme ``v2``: ``target`` is the path and query exactly as the request sends
    them (percent-encoded as on the wire); ``at`` the Unix time it is signed at (now)."""
    moment = int(time.time()) if at is None else at
    return f"t={moment},v2={sign(secret, moment, body, f'{method.upper()} {target}')}"


def request_line(method: str, scope: Mapping[str, Any]) -> str:
    """``"METHOD /path?query"`` of an ASGI request as it was sent (a v2 signature signs it):
    the path's bytes as received, not decoded, and the query as given."""
    path = (scope.get("raw_path") or scope["path"].encode()).split(b"?", 1)[0]
    query = scope.get("query_string", b"")
    target = path + (b"?" + query if query else b"")
    return f"{method} {target.decode('latin-1')}"


class _Counters(Protocol):
    async def kv_incr(
        self, namespace: str, key: str, amount: float = 1, *, now: float, ttl: float | None = None
    ) -> float: ...

    async def kv_delete(self, namespace: str, key: str) -> bool: ...

    async def kv_set(
        self, namespace: str, key: str, value: Any, *, now: float, ttl: float | None = None
    ) -> None: ...

    async def kv_get(self, namespace: str, key: str, *, now: float, default: Any = ...) -> Any: ...


class _Clock(Protocol):
    def now(self) -> float: ...


class Signature(msgspec.Struct, frozen=True):
    """A request's valid signature, not yet taken (``Signatures.claim``)."""

    key: str
    """Where the store counts it: the webhook and a hash of the signature (not the signature
    itself, which the database never keeps)."""
    ttl: float
    """How long it is remembered: past it, its timestamp is out of the tolerance anyway."""


class Signatures:
    """Checks signed webhook requests, and refuses replays (counted in ``store``)."""

    def __init__(self, store: _Counters, clock: _Clock) -> None:
        self._store = store
        self._clock = clock
        self._handling: dict[str, int] = {}
        """Requests of each signature this process is handling now (``handling``)."""
        self._first: dict[str, asyncio.Future[None]] = {}
        """Per signature, the first of its requests this process is handling: done as it
        ends (``InFlight.first_ended``)."""

    @contextlib.contextmanager
    def handling(self, signature: Signature) -> Iterator[InFlight]:
        """While a request of ``signature`` is handled here (``InFlight``: its twins in flight
        in this process, and the first of them). A claim with no run behind it while a twin is
        in flight is that twin's, not a crash's."""
        key = signature.key
        self._handling[key] = self._handling.get(key, 0) + 1
        first = None
        if key not in self._first:  # the first one here: its twins may wait for its end
            first = self._first[key] = asyncio.get_running_loop().create_future()
        try:
            yield InFlight(self, key, first)
        finally:
            left = self._handling[key] - 1
            if left:
                self._handling[key] = left
            else:
                del self._handling[key]
            if first is not None:
                del self._first[key]
                first.set_result(None)

    async def verify(
        self,
        *,
        hook: str,
        secret: str,
        header: str,
        tolerance: float,
        value: str | None,
        body: bytes,
        request: str,
        schemes: tuple[str, ...] = ("v2",),
    ) -> Signature:
        """The signature of a request whose ``value`` (the signature header) signs it freshly
        in one of ``schemes``: ``v2``, its ``request`` line (``"POST /path?query"``) and
        ``body``; ``v1``, the body alone. 401 otherwise. Nothing is recorded: ``claim`` it
        once the request is accepted."""
        if not value:
            raise _refused(f"the request is not signed: it needs a {header} header")
        timestamp, given = _parse(value, header, schemes)
        now = self._clock.now()
        if abs(now - timestamp) > tolerance:
            raise _refused(
                f"the {header} timestamp is {abs(now - timestamp):.0f} s away from the "
                f"server's time (at most {tolerance:g} s): sign each request when it is sent"
            )
        for scheme, candidates in given.items():
            expected = sign(secret, timestamp, body, request if scheme == "v2" else None)
            if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
                # one key per request, whichever scheme signed it: on a webhook that takes v1
                # the v1 signature (the server can make it), so that a request cannot be sent
                # once with each of its values (and v1's key is the one it had before v2)
                if "v1" in schemes and scheme != "v1":
                    expected = sign(secret, timestamp, body)
                digest = hashlib.sha256(expected.encode()).hexdigest()
                return Signature(f"{hook}|{digest}", ttl=2 * tolerance)
        signed = " or ".join(
            f"the request ({request}) and its body" if scheme == "v2" else "the body (v1)"
            for scheme in given
        )
        raise _refused(f"the {header} signature does not match {signed}")

    async def claim(self, signature: Signature) -> bool:
        """Mark ``signature`` seen for the request being accepted: True for the first request
        to claim it, False for a replay. One increment in the store, so of identical requests
        at once exactly one gets True (a check, then a write, would let two through)."""
        now = self._clock.now()
        if await self._store.kv_get(_REPLAYS, signature.key, now=now, default=0):
            return False  # a replay is refused with nothing written (each was: hostile h45 F9)
        seen = await self._store.kv_incr(_REPLAYS, signature.key, now=now, ttl=signature.ttl)
        return seen == 1

    async def mark_answered(self, signature: Signature) -> None:
        """``signature``'s request was answered: without a run (its ``condition`` said no), or
        with the run it names (which retention may prune before the signature is stale). A
        claim with no run behind it is then not a crash's (``answered``)."""
        now = self._clock.now()
        await self._store.kv_set(_ANSWERED, signature.key, True, now=now, ttl=signature.ttl)

    async def answered(self, signature: Signature) -> bool:
        """Whether ``signature``'s request was answered (``mark_answered``)."""
        now = self._clock.now()
        return bool(await self._store.kv_get(_ANSWERED, signature.key, now=now, default=False))

    async def release(self, signature: Signature) -> None:
        """Forget ``signature``: the request that claimed it was refused after all (its run did
        not start), so its client may send it again."""
        await self._store.kv_delete(_REPLAYS, signature.key)


class InFlight:
    """A request of a signature being handled in this process (``Signatures.handling``)."""

    __slots__ = ("_first", "_key", "_signatures")

    def __init__(
        self, signatures: Signatures, key: str, first: asyncio.Future[None] | None
    ) -> None:
        self._signatures = signatures
        self._key = key
        self._first = first
        """Set when this request is the first of its signature here."""

    def twins(self) -> bool:
        """Whether another request of the signature is in flight in this process."""
        return self._signatures._handling.get(self._key, 0) > 1

    async def first_ended(self, patience: float) -> None:
        """Return once the first request of the signature handled here has ended (unless this
        is it), or after ``patience`` seconds: a twin sent at once as a retry then finds the
        run that one started (the claimer is the first to ask for the claim)."""
        first = self._signatures._first.get(self._key)
        if first is not None and first is not self._first:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(first), patience)


def replayed() -> Problem:
    """The 401 of a signed request whose signature was claimed before."""
    return _refused(
        "this signed request was received before (a replay): sign each request anew; to "
        "retry one whose answer was lost without starting it twice, send an idempotency key "
        "with it (a retry with the same key is answered with the same run)"
    )


def _parse(value: str, header: str, schemes: tuple[str, ...]) -> tuple[int, dict[str, list[str]]]:
    """The timestamp and the signatures, by scheme, of the ``schemes`` a webhook takes."""
    timestamp: int | None = None
    given: dict[str, list[str]] = {}
    other = False
    for part in value.split(","):
        key, _, item = part.strip().partition("=")
        if key == "t" and item.isascii() and item.isdigit() and len(item) <= 12:
            timestamp = int(item)
        elif key in schemes and item.isascii() and len(item) == 64:
            given.setdefault(key, []).append(item)
        elif key in _SCHEMES:
            other = True
    if timestamp is None or not given:
        shape = " or ".join(f"'t=<unix seconds>,{s}=<hex HMAC-SHA256>'" for s in schemes)
        if other:
            taken = "; ".join(f"{s}, of {_SCHEMES[s]}" for s in schemes)
            raise _refused(
                f"the {header} header must be {shape}: this webhook takes signatures of scheme "
                f"{taken}, not another"
            )
        raise _refused(f"the {header} header must be {shape}")
    return timestamp, given


_SCHEMES = {
    "v1": "the timestamp and the body",
    "v2": "the timestamp, the method, the path and query, and the body",
}


_SIGNED_CHALLENGE = {"WWW-Authenticate": 'Signature realm="webhook"'}
"""What a 401 must carry (RFC 9110 15.5.2): a signature's refusal had none (hostile h45 F3)."""


def _refused(detail: str) -> Problem:
    return Problem(401, "bad-signature", detail, headers=_SIGNED_CHALLENGE)
