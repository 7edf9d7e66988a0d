"""What a step returns is recorded as plain values, and read back so by the next step, by
``wait`` and by ``inspect`` (README "What a run gives you"), on a real SQLite file and after a
restart."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import zoneinfo
from pathlib import Path
from typing import Any

import cronflow_actors as cf

PARIS = zoneinfo.ZoneInfo("Europe/Paris")


@dataclasses.dataclass
class Parcel:
    weight: float


def stamp(ctx: Any) -> dict[str, Any]:
    return {
        "aware": dt.datetime(2026, 6, 1, 12, 0, tzinfo=PARIS),
        "utc": dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC),
        "naive": dt.datetime(2026, 6, 1, 12, 0),
        "day": dt.date(2026, 6, 1),
        "price": decimal.Decimal("9.90"),
        "pair": (1, 2),
        "raw": bytearray(b"\x00\x01"),
        "parcel": Parcel(1.5),
    }


def parse(ctx: Any) -> dict[str, Any]:
    """What the next step reads: strings it can parse back, the zone kept."""
    aware = dt.datetime.fromisoformat(ctx.last["aware"])
    return {"aware": aware.isoformat(), "utc": dt.datetime.fromisoformat(ctx.last["utc"]).hour}


EXPECTED = {
    "aware": "2026-06-01T12:00:00+02:00",
    "utc": "2026-06-01T10:00:00Z",
    "naive": "2026-06-01T12:00:00",
    "day": "2026-06-01",
    "price": "9.90",
    "pair": [1, 2],
    "raw": b"\x00\x01",
    "parcel": {"weight": 1.5},
}


async def test_dates_come_back_as_iso_strings_an_aware_ones_with_its_offset(
    tmp_path: Path,
) -> None:
    """An aware ``datetime`` came back a ``datetime`` in UTC (its zone lost), where a naive one
    was a string, so ``fromisoformat`` in the next step was a TypeError (newcomer h38 F1)."""

    def flow() -> cf.Flow:
        return cf.define("dates").step("stamp", stamp).step("parse", parse)

    db = tmp_path / "dates.db"
    async with cf.Runtime(db=db, workflows=[flow()]) as rt:
        run_id = await rt.trigger("dates")
        result = await rt.wait(run_id, timeout=10)
    assert (result.status, result.output) == ("completed", {"aware": EXPECTED["aware"], "utc": 10})
    async with cf.Runtime(db=db, workflows=[flow()]) as again:  # as stored
        steps = {step.id: step.output for step in (await again.inspect(run_id)).steps}
    assert steps["stamp"] == EXPECTED


async def test_state_and_events_keep_dates_as_outputs_do(tmp_path: Path) -> None:
    """``ctx.state``, the global state and an event's payload kept an aware datetime as a
    datetime in UTC, where a step's output is an ISO string with its offset: one event reached
    a waiting step and a listening flow as two different values (retest h38 R3)."""
    noon = dt.datetime(2026, 6, 1, 12, 0, tzinfo=PARIS)

    async def keep(ctx: Any) -> None:
        await ctx.state.set("at", {"at": noon})

    async def read(ctx: Any) -> Any:
        return await ctx.state.get("at")

    waiting = (
        cf.define("waiting")
        .step("keep", keep)
        .step("read", read)
        .wait_for_event("heard", "parcel.sent")
        .step("after", lambda ctx: ctx.steps["heard"])
    )
    listening = cf.define("listening").on_event("parcel.sent").step("got", lambda ctx: ctx.payload)
    async with cf.Runtime(db=tmp_path / "kept.db", workflows=[waiting, listening]) as rt:
        run_id = await rt.trigger("waiting")
        await rt.wait_idle()
        [started] = await rt.publish_event("parcel.sent", {"at": noon})
        waited, listened = await rt.wait(run_id, timeout=10), await rt.wait(started, timeout=10)
        await rt.set_global_state("at", noon)
        kept = await rt.get_global_state("at")
        steps = {step.id: step.output for step in (await rt.inspect(run_id)).steps}
    assert steps["read"] == {"at": EXPECTED["aware"]}
    assert waited.output == {"at": EXPECTED["aware"]}
    assert listened.output["at"] == EXPECTED["aware"]  # (its payload, beside the event's own)
    assert kept == EXPECTED["aware"]
