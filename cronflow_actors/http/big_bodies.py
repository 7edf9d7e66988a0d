"""At most so many requests with a big body at once (``BigBodies``, an ASGI middleware).

A JSON body becomes several times its size in memory while it is decoded, checked, stored with
its run and started: a 0.9 MB object of 60,000 keys took about 16 MB a request, so sixty sent at
once took a gigabyte (the hostile client's finding), and a thousand connections could ask for
sixteen. A request whose body may be big (a ``Content-Length`` over ``big`` bytes, or a body of
no declared length) waits for one of ``at_once`` places once its body has arrived, before it is
decoded (``take_place``, called by ``requests.read_body``); small ones never wait. One that
waits longer than ``patience`` seconds is answered 503 ``too-busy`` (with ``Retry-After``) and
nothing is done. So a burst of big bodies takes about ``at_once`` times the memory of a decoded
one, besides their raw bytes (at most ``--max-body`` each). The place is taken once the body is
in, not before it is read: a client that sends its body a byte a second held a place for the
whole body timeout, and eight of them, unauthenticated on an open webhook, kept every replay
and big start waiting, then refused (the hostile client's h24 M2). A request whose route never
reads its body (refused first, a 401 say) takes none. The raw bytes of such bodies on their way
in are bounded too (``budget``, 32 MB by default): each chunk is counted as it is read
(``take_bytes``), and one that would go past it waits for others to end, else the request is
answered 503 ``too-busy``: a thousand connections each sending a megabyte hold no more (a
trickle holds what it has sent, a few bytes). Each principal with a token the server knows
(``known``) has a budget of its own: anonymous senders that hold a body short of its last byte
(an open webhook reads its body before anything else) kept every big start of a token holder
waiting for their body timeout (the hostile client's h25 M2), and so did one token holder
every other's when they shared one (h26 M2).

A replay (``POST /runs/{id}/replay``) takes a place too, body or none: it decodes, copies and
stores its run's recorded payload again, however big (180 replays of a 0.9 MB run at once took
1.3 GB, where 60 such bodies sent took 210 MB: the hostile client's finding).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from cronflow_actors.http.problems import Problem

__all__ = ["BigBodies", "busy", "take_bytes", "take_place", "waiting_for_room"]

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_REPLAY = "/replay"  # POST /runs/{run_id}/replay
_PLACE = "cronflow.big_body"
"""Where a request that may need a place keeps it, in its ASGI scope (``_Place``)."""


class _Budget:
    """The raw bytes that requests with big bodies may hold at once while they arrive."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._freed = asyncio.Event()

    async def take(self, count: int, patience: float) -> None:
        """Count ``count`` more bytes once they fit (``TimeoutError`` after ``patience``)."""
        async with asyncio.timeout(patience):
            while self.used and self.used + count > self.total:
                self._freed.clear()
                await self._freed.wait()
        self.used += count

    def give_back(self, count: int) -> None:
        if count:
            self.used -= count
            self._freed.set()


class _Place:
    """A request's claim on one of the places, taken once its body has arrived, and on the
    raw bytes its body holds while it arrives."""

    __slots__ = ("budget", "held", "patience", "places", "taken", "waiting")

    def __init__(self, places: asyncio.Semaphore, budget: _Budget, patience: float) -> None:
        self.places = places
        self.budget = budget
        self.patience = patience
        self.taken = False
        self.held = 0
        self.waiting = False
        """Waiting for room in the budget (a timeout meanwhile is the server's, not the
        client's: ``busy``)."""

    async def hold(self, count: int) -> None:
        self.waiting = True  # (left so if the read's own timeout cuts the wait)
        try:
            await self.budget.take(count, self.patience)
        except TimeoutError:
            raise busy(self.patience) from None
        self.waiting = False
        self.held += count

    async def take(self) -> None:
        if self.taken:
            return
        try:
            async with asyncio.timeout(self.patience):
                await self.places.acquire()
        except TimeoutError:
            raise busy(self.patience) from None
        self.taken = True


async def take_bytes(scope: Scope, count: int) -> None:
    """``count`` more bytes of the request's body have arrived: if it may be big, count them
    against the budget, waiting for room (503 ``too-busy`` after the patience)."""
    place = scope.get(_PLACE)
    if place is not None:
        await place.hold(count)


async def take_place(scope: Scope) -> None:
    """The request's body has arrived: if it may be big, wait for its place before it is
    decoded (503 ``too-busy`` after the patience). Nothing for a small one."""
    place = scope.get(_PLACE)
    if place is not None:
        await place.take()


class BigBodies:
    """``Middleware(BigBodies, at_once=8, big=65536, patience=30, budget=32_000_000,
    known=...)``; ``known(scope)``: the principal whose token the server knows the request
    carries (None: an anonymous caller)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        at_once: int = 8,
        big: int = 64 * 1024,
        patience: float = 30.0,
        budget: int = 32_000_000,
        known: Callable[[Scope], str | None] | None = None,
    ) -> None:
        self.app = app
        self.big = big
        self.patience = patience
        self._places = asyncio.Semaphore(at_once)
        self._total = budget
        self._budget = _Budget(budget)
        self._known = known
        self._budgets: dict[str, _Budget] = {}
        """Each known principal's (as many as the configured tokens name)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._maybe_big(scope):
            await self.app(scope, receive, send)
            return
        known = self._known(scope) if self._known is not None else None
        budget = self._budget
        if known is not None:
            budget = self._budgets.get(known) or self._budgets.setdefault(
                known, _Budget(self._total)
            )
        place = scope[_PLACE] = _Place(self._places, budget, self.patience)
        try:
            await self.app(scope, receive, send)
        finally:
            budget.give_back(place.held)
            if place.taken:
                self._places.release()

    def _maybe_big(self, scope: Scope) -> bool:
        if scope["method"] not in _WITH_BODY:
            return False
        if scope["path"].endswith(_REPLAY):  # its run's payload, whatever its own body
            return True
        for name, value in scope["headers"]:
            if name == b"content-length":
                return not value.isdigit() or int(value) > self.big
        return True  # chunked, or no length said: it may be as big as the limit allows


def busy(patience: float) -> Problem:
    """The 503 of a request that waited ``patience`` s for its turn with a big body."""
    detail = (
        f"the server is handling as many big request bodies as it takes at once, and this one "
        f"waited {patience:g} s for its turn; nothing was done: retry later"
    )
    return Problem(503, "too-busy", detail, headers={"Retry-After": "5"})


def waiting_for_room(scope: Scope) -> bool:
    """Whether the request is waiting for room in the big bodies' budget now."""
    place = scope.get(_PLACE)
    return place is not None and place.waiting
