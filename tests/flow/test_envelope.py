"""The trigger envelope: a flow run's payload travels in a ``TriggerEnvelope``, so a user
payload shaped like the envelope is never taken for one; runs stored by earlier versions (a
dict envelope, the same bytes) still load and read the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

import cronflow_actors as cf
from cronflow_actors.flow.envelope import TriggerEnvelope, flow_payload, read_envelope
from cronflow_actors.kernel import ManualClock
from cronflow_actors.messages import encode
from cronflow_actors.messages.engine import StartWorkflow

LOOKALIKE = {"payload": {"n": 1}, "headers": {"x-id": "7"}, "kind": "webhook"}
"""A user payload with the keys of the stored envelope."""


def recording(seen: list[Any]) -> cf.Flow:
    def look(ctx: cf.FlowContext) -> Any:
        seen.append((ctx.payload, dict(ctx.trigger.headers), ctx.trigger.kind))
        return ctx.payload

    return cf.define("shaped").step("look", look)


async def test_a_payload_shaped_like_the_envelope_is_read_unchanged(rt: cf.Runtime) -> None:
    seen: list[Any] = []
    rt.register(recording(seen))
    triggered = await rt.trigger("shaped", LOOKALIKE)
    started = await rt.start_workflow("shaped", LOOKALIKE)  # a net start of the flow
    for run_id in (triggered, started):
        assert (await rt.wait(run_id)).output == LOOKALIKE
        assert (await rt.inspect(run_id)).payload == LOOKALIKE
    replayed = await rt.replay(started)
    assert (await rt.wait(replayed)).output == LOOKALIKE
    assert (await rt.inspect(replayed)).replay_of == started
    assert seen == [(LOOKALIKE, {}, "manual")] * 3


async def test_a_queued_run_shows_its_payload_unchanged(rt: cf.Runtime) -> None:
    async def hold(ctx: cf.FlowContext) -> Any:
        return ctx.payload

    rt.register(cf.define("one-at-a-time", concurrency=1).pause("wait").step("hold", hold))
    first = await rt.trigger("one-at-a-time", {"first": True})
    queued = await rt.trigger("one-at-a-time", LOOKALIKE)
    await rt.wait_idle()
    info = await rt.inspect(queued)
    assert (info.status, info.payload) == (cf.RunStatus.WAITING, LOOKALIKE)
    await rt.cancel(first)
    await rt.wait_idle()  # the queued run starts, and pauses
    [pause] = [p for p in await rt.list_paused() if p.run_id == queued]
    await rt.resume(pause.token)
    assert (await rt.wait(queued)).output == LOOKALIKE


def test_the_envelope_encodes_to_the_bytes_of_the_old_dict() -> None:
    old = {"payload": [1, "x"], "headers": {}, "kind": "manual"}
    assert encode(flow_payload([1, "x"])) == encode(old)
    full = {
        "payload": None,
        "headers": {"a": "b"},
        "kind": "webhook",
        "params": {"id": "7"},
        "raw_body": b"{}",
        "replay_of": "r1",
    }
    envelope = flow_payload(
        None,
        headers={"a": "b"},
        kind="webhook",
        params={"id": "7"},
        raw_body=b"{}",
        replay_of="r1",
    )
    assert encode(envelope) == encode(full)
    batch = msgspec.structs.replace(flow_payload(2, kind="batch"), rest=[[3]])
    assert encode(batch) == encode({"payload": 2, "headers": {}, "kind": "batch", "rest": [[3]]})
    empty = msgspec.structs.replace(flow_payload(None, kind="for_each"), empty=True)
    old_empty = {"payload": None, "headers": {}, "kind": "for_each", ":empty": True}
    assert encode(empty) == encode(old_empty)
    assert read_envelope(msgspec.msgpack.decode(encode(full))) == envelope
    assert read_envelope({"payload": 1}) is None  # stored bare: the payload itself
    assert isinstance(read_envelope(old_empty), TriggerEnvelope)


async def test_a_run_stored_with_the_old_dict_envelope_reads_the_same(
    tmp_path: Path, clock: ManualClock
) -> None:
    seen: list[Any] = []

    def look(ctx: cf.FlowContext) -> Any:
        trigger = ctx.trigger
        seen.append((ctx.payload, dict(trigger.headers), trigger.kind, dict(trigger.params)))
        return ctx.payload

    flow = cf.define("old").step("look", look)
    old = {
        "payload": {"n": 1},
        "headers": {"x-id": "7"},
        "kind": "webhook",
        "params": {"id": "7"},
        "replay_of": "r0",
    }
    db = tmp_path / "old.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as rt:
        # what the earlier code started a run with: the dict itself, through the store
        spec = rt.registry.for_new_instance("old")
        command = StartWorkflow(payload=old, trigger="webhook")
        run_id = await rt.instances.start(spec, command, None)
        assert (await rt.wait(run_id)).output == {"n": 1}
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as rt:  # read back from the file
        info = await rt.inspect(run_id)
        assert (info.payload, info.replay_of, info.output) == ({"n": 1}, "r0", {"n": 1})
        assert [s.id for s in info.steps] == ["look"]
        replayed = await rt.replay(run_id)
        assert (await rt.wait(replayed)).output == {"n": 1}
    assert seen == [({"n": 1}, {"x-id": "7"}, "webhook", {"id": "7"})] * 2
