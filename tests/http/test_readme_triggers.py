"""The README's example of webhooks, polls and event schemas runs as written: its ``main``, its
webhook served by a real server, and its poll on a manual clock."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors.kernel import ManualClock
from tests.http.conftest import Serve

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def example() -> dict[str, Any]:
    section = README.read_text().split("### Webhooks, polls and event schemas\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code.replace('db="hooks.db"', 'db=":memory:"'), "README.md", "exec"), namespace)
    return namespace


async def test_the_main_of_the_example_runs(example: dict[str, Any], capsys: Any) -> None:
    await example["main"]()
    assert capsys.readouterr().out.splitlines() == ["welcome ada@example.org (free)", "$"]


async def test_the_webhook_of_the_example_answers_as_it_says(
    example: dict[str, Any], serve: Serve
) -> None:
    rt, client = await serve([example["signups"], example["tickets"]])
    body = b'{"email": "ada@example.org", "plan": "pro"}'
    signature = hmac.new(b"provider-secret", body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Provider-Signature": signature}
    accepted = await client.post("/webhooks/signup", content=body, headers=headers)
    assert (accepted.status_code, accepted.json()) == (202, {"received": True})
    run_id = accepted.headers["location"].rsplit("/", 1)[1]
    assert (await rt.wait(run_id, timeout=5)).output == "welcome ada@example.org (pro)"
    forged = await client.post(
        "/webhooks/signup", content=body.replace(b"pro", b"max"), headers=headers
    )
    assert (forged.status_code, forged.json()) == (
        400,
        {"error": "refused by validate(): the signature does not match"},
    )
    unsigned = await client.post("/webhooks/signup", json={"email": "x@example.org"})
    assert unsigned.json() == {"error": "refused by header_validator(): unsigned request"}


async def test_the_poll_of_the_example_starts_each_ticket_once(
    example: dict[str, Any], tmp_path: Path
) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    async with cf.Runtime(db=tmp_path / "t.db", clock=clock, workflows=[example["tickets"]]) as rt:
        for _ in range(3):
            clock.advance(60)
            await rt.wait_idle()
        [snapshot] = await rt.store.list_snapshots(workflow="tickets")
        assert (await rt.wait(snapshot.instance_id)).output == "printer on fire"
        assert rt.polls.stats["tickets"].seen == 2
