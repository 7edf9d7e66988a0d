from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

import cronflow_actors as cf
from cronflow_actors.http.app import create_app

Serve = Callable[..., Awaitable[tuple[cf.Runtime, httpx.AsyncClient]]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    """Start a real uvicorn server on 127.0.0.1 (an ephemeral port) over a runtime on a SQLite
    file; returns the runtime and an HTTP client for it."""
    started: list[tuple[uvicorn.Server, asyncio.Task[None], httpx.AsyncClient]] = []

    async def start(workflows: list[Any], **options: Any) -> tuple[cf.Runtime, httpx.AsyncClient]:
        db = tmp_path / f"http{len(started)}.db"  # each server its own database (and lease)
        runtime = cf.Runtime(db=db, workflows=workflows)
        app = create_app(runtime, **options)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)
        started.append((server, task, client))
        return runtime, client

    yield start
    for server, task, client in started:
        await client.aclose()
        server.should_exit = True
        await task
