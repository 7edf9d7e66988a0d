"""At most so many requests with a big body at once (``BigBodies``, an ASGI middleware).

A JSON body becomes several times its size in memory while it is decoded, checked, stored with
its run and started: a 0.9 MB object of 60,000 keys took about 16 MB a request, so sixty sent at
once took a gigabyte (the hostile client's finding), and a thousand connections could ask for
sixteen. A request whose body may be big (a ``Content-Length`` over ``big`` bytes, or a body of
no declared length) waits for one of ``at_once`` places; small ones never wait. One that waits
longer than ``patience`` seconds is answered 503 ``too-busy`` (with ``Retry-After``), its body
unread, and nothing done. So a burst of big bodies takes about ``at_once`` times the memory of
one, and the others queue in the listen backlog and the kernel's buffers, not in the heap.

A replay (``POST /runs/{id}/replay``) takes a place too, body or none: it decodes, copies and
stores its run's recorded payload again, however big (180 replays of a 0.9 MB run at once took
1.3 GB, where 60 such bodies sent took 210 MB: the hostile client's finding).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from cronflow_actors.http.problems import problem_response

__all__ = ["BigBodies"]

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_REPLAY = "/replay"  # POST /runs/{run_id}/replay


class BigBodies:
    """``Middleware(BigBodies, at_once=8, big=65536, patience=30)``."""

    def __init__(
        self, app: ASGIApp, *, at_once: int = 8, big: int = 64 * 1024, patience: float = 30.0
    ) -> None:
        self.app = app
        self.big = big
        self.patience = patience
        self._places = asyncio.Semaphore(at_once)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._maybe_big(scope):
            await self.app(scope, receive, send)
            return
        try:
            async with asyncio.timeout(self.patience):
                await self._places.acquire()
        except TimeoutError:
            await _too_busy(scope, receive, send, self.patience)
            return
        try:
            await self.app(scope, receive, send)
        finally:
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


async def _too_busy(scope: Scope, receive: Receive, send: Send, patience: float) -> None:
    detail = (
        f"the server is handling as many big request bodies as it takes at once, and this one "
        f"waited {patience:g} s for its turn; nothing was done: retry later"
    )
    response: Any = problem_response(503, "too-busy", detail, headers={"Retry-After": "5"})
    await response(scope, receive, send)
