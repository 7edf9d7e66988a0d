"""``GET /paused`` over real HTTP: a page of big pauses is bounded by bytes, as ``GET /runs``
is (a hostile client's 150 pauses of 0.9 MB were answered as one page of 135 MB)."""

from __future__ import annotations

from typing import Any

import cronflow_actors as cf
from cronflow_actors.runtime.pages import PAGE_BYTES
from tests.http.conftest import Serve

MB = 1_000_000


def big_pause() -> cf.Flow:
    """A pause whose ``last`` (the step before's output) is ``size`` bytes."""
    return (
        cf.define("big")
        .step("make", lambda ctx: "x" * ctx.payload["size"])
        .human_in_the_loop("approve", description="big")
    )


async def test_a_page_of_big_pauses_ends_at_the_byte_budget(serve: Serve) -> None:
    rt, client = await serve([big_pause()])
    runs = []
    for _ in range(10):  # 10 MB of pauses, past the 8 MiB of a page
        started = await client.post("/runs", json={"workflow": "big", "payload": {"size": MB}})
        runs.append(started.json()["run_id"])
        await rt.wait_idle()
    seen: list[str] = []
    cursor: str | None = None
    sizes: list[int] = []
    while True:
        params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        answer = await client.get("/paused", params=params)
        assert answer.status_code == 200
        page = answer.json()
        assert page["paused"] or page["next_cursor"] is None  # never empty with more to come
        sizes.append(len(answer.content))
        seen += [pause["run_id"] for pause in page["paused"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(runs)  # each once
    assert len(sizes) >= 2
    assert max(sizes) < PAGE_BYTES + 1.1 * MB  # the budget, and the one pause that passed it
