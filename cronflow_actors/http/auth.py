"""Who is calling: bearer tokens mapped to principals, and signed webhook requests.

Tokens are compared in constant time (``hmac.compare_digest`` against every configured token),
so a client cannot learn a token one character at a time. A malformed ``Authorization`` header
is a 401 even where no token is needed.

Signed webhooks (``on_webhook(..., hmac_secret=...)``) carry a header
``<signature_header>: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`` (several
``v1=`` are accepted, for a secret being rotated). A signature whose time is more than the
tolerance away from now is refused, and so is one seen before within the tolerance (kept in the
store, so a replay is refused across a restart too).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Protocol

from starlette.requests import Request

from cronflow_actors.http.problems import Problem
from cronflow_actors.messages import Principal

__all__ = ["SECRET_HEADERS", "Signatures", "Tokens", "sign"]

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
"""Headers never kept with a run, whatever a flow declares."""

_REPLAYS = "cronflow:webhook-signatures"


class Tokens:
    """Bearer tokens and the principals they stand for."""

    def __init__(self, tokens: Mapping[str, Principal]) -> None:
        self._entries = [(token.encode(), principal) for token, principal in tokens.items()]

    @property
    def configured(self) -> bool:
        return bool(self._entries)

    def principal(self, request: Request) -> Principal | None:
        """The caller's principal; None without an ``Authorization`` header; 401 for one that
        is malformed or names no configured token."""
        header = request.headers.get("authorization")
        if header is None:
            return None
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Problem(
                401,
                "malformed-credentials",
                "the Authorization header must be 'Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        found = self.match(token)
        if found is None:
            raise Problem(
                401,
                "unknown-token",
                "the bearer token is not one this server knows",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return found

    def match(self, token: str) -> Principal | None:
        """The principal of ``token``, comparing it with every configured token."""
        given = token.encode("latin-1", "replace")
        found = None
        for known, principal in self._entries:
            if hmac.compare_digest(given, known):
                found = principal
        return found

    def require(self, request: Request) -> Principal | None:
        """The caller's principal; with tokens configured, a caller without one gets 401."""
        principal = self.principal(request)
        if principal is None and self.configured:
            raise Problem(
                401,
                "authentication-required",
                "this server needs 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return principal


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``v1`` signature of a body sent at ``timestamp`` (what a client computes)."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class _Counters(Protocol):
    async def kv_incr(
        self, namespace: str, key: str, amount: float = 1, *, now: float, ttl: float | None = None
    ) -> float: ...


class _Clock(Protocol):
    def now(self) -> float: ...


class Signatures:
    """Checks signed webhook requests, and refuses replays (counted in ``store``)."""

    def __init__(self, store: _Counters, clock: _Clock) -> None:
        self._store = store
        self._clock = clock

    async def verify(
        self,
        *,
        hook: str,
        secret: str,
        header: str,
        tolerance: float,
        value: str | None,
        body: bytes,
    ) -> None:
        """Raise 401 unless ``value`` (the signature header) signs ``body`` freshly."""
        if not value:
            raise _refused(f"the request is not signed: it needs a {header} header")
        timestamp, candidates = _parse(value, header)
        now = self._clock.now()
        if abs(now - timestamp) > tolerance:
            raise _refused(
                f"the {header} timestamp is {abs(now - timestamp):.0f} s away from the "
                f"server's time (at most {tolerance:g} s): sign each request when it is sent"
            )
        expected = sign(secret, timestamp, body)
        if not any(hmac.compare_digest(expected, given) for given in candidates):
            raise _refused(f"the {header} signature does not match the body")
        seen = await self._store.kv_incr(_REPLAYS, f"{hook}|{expected}", now=now, ttl=2 * tolerance)
        if seen > 1:
            raise _refused("this signed request was received before (a replay): sign each anew")


def _parse(value: str, header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    candidates = []
    for part in value.split(","):
        key, _, item = part.strip().partition("=")
        if key == "t" and item.isascii() and item.isdigit() and len(item) <= 12:
            timestamp = int(item)
        elif key == "v1" and item.isascii() and len(item) == 64:
            candidates.append(item)
    if timestamp is None or not candidates:
        raise _refused(f"the {header} header must be 't=<unix seconds>,v1=<hex HMAC-SHA256>'")
    return timestamp, candidates


def _refused(detail: str) -> Problem:
    return Problem(401, "bad-signature", detail)
