"""``CutByStop``: a request uvicorn cancels at the drain's end is answered 503, its outcome
unknown (retest-edge h44 N6), and only such a cancel: any other goes on as it came (review h45
F4), a read is told to ask again (F5), a failed runtime's stop counts too (F17)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from cronflow_actors.http.edge import CutByStop

UVICORN = "Task cancelled, timeout graceful shutdown exceeded"


async def _cut(method: str, stopping: bool, message: str) -> tuple[list[Any], asyncio.Task[Any]]:
    sent: list[Any] = []
    held = asyncio.Event()

    async def app(_scope: Any, _receive: Any, _send: Any) -> None:
        held.set()
        await asyncio.Event().wait()  # a write the database never answers

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": method, "path": "/runs", "headers": []}
    middleware = CutByStop(app, stopping=lambda: stopping)
    task = asyncio.ensure_future(middleware(scope, receive, send))
    await held.wait()
    task.cancel(msg=message)
    await asyncio.wait([task])
    return sent, task


@pytest.mark.parametrize(
    ("method", "said"),
    [("POST", "may or may not have been done"), ("GET", "waited): ask again once the server")],
)
async def test_uvicorns_cancel_at_a_stop_is_answered_503(method: str, said: str) -> None:
    sent, task = await _cut(method, True, UVICORN)
    assert not task.cancelled()
    assert task.cancelling() == 0  # taken, as asyncio asks of code that takes a cancel
    start, body = sent
    assert start["status"] == 503
    assert (b"connection", b"close") in start["headers"]
    problem = json.loads(body["body"])
    assert problem["type"] == "urn:cronflow:problem:unavailable"
    assert said in problem["detail"]
    if method == "GET":
        assert "may or may not" not in problem["detail"]


@pytest.mark.parametrize(("stopping", "message"), [(False, UVICORN), (True, "a caller's timeout")])
async def test_any_other_cancel_goes_on_as_it_came(stopping: bool, message: str) -> None:
    sent, task = await _cut("POST", stopping, message)
    assert task.cancelled()
    assert sent == []
