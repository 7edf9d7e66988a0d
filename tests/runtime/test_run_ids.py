"""Run ids: UUIDv7 in hex, ordered by the time they were made, so a run's rows land at the end of
every index (``runtime/ids.py``)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

import cronflow_actors as cf
from cronflow_actors.errors import ConfigurationError
from cronflow_actors.runtime.ids import derived_run_id, legacy_run_id, new_run_id
from cronflow_actors.runtime.runs import check_instance_id


def test_ids_are_uuid7_in_hex_and_sort_in_the_order_they_were_made() -> None:
    made = [new_run_id() for _ in range(2_000)]
    assert len(set(made)) == len(made)
    assert made == sorted(made)
    for run_id in made[:50]:
        parsed = uuid.UUID(hex=run_id)
        assert (len(run_id), parsed.version, parsed.variant) == (32, 7, uuid.RFC_4122)


def test_a_forked_child_does_not_hand_out_its_parents_random_bits() -> None:
    """The random bits are read ahead (runtime/ids.py): a child forked with part of that read
    left must read its own, or parent and child would make ids that differ only in time."""
    new_run_id()  # the read ahead is under way
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child, which must end here whatever happens
        try:
            os.write(writing, new_run_id().encode())
        finally:
            os._exit(0)
    os.close(writing)
    os.waitpid(child, 0)
    with os.fdopen(reading) as pipe:
        childs = pipe.read()
    parents = new_run_id()
    random_part = slice(-15, None)  # the last 62 bits
    assert len(childs) == 32
    assert childs[random_part] != parents[random_part]


async def test_runs_started_one_after_another_list_in_that_order_by_id(tmp_path: Path) -> None:
    flow = cf.define("ids").step("only", lambda ctx: ctx.payload)
    async with cf.Runtime(db=tmp_path / "ids.db", workflows=[flow]) as rt:
        started = [await rt.trigger("ids", n) for n in range(20)]
        for run_id in started:
            assert (await rt.wait(run_id)).status == "completed"
    assert started == sorted(started)
    assert all(uuid.UUID(hex=run_id).version == 7 for run_id in started)


def test_a_derived_id_is_its_kind_and_a_uuid5_that_no_client_chosen_id_can_be() -> None:
    namespace = uuid.UUID("6c1f3a2e-8f6d-4c59-9b0e-2b8f0f7a9d11")
    made = derived_run_id("tick", namespace, "flow|cron0|1780275600.0")
    assert made == "tick:" + legacy_run_id(namespace, "flow|cron0|1780275600.0")
    assert uuid.UUID(hex=made.partition(":")[2]).version == 5
    for kind in ("tick", "hook", "poll", "event"):  # the runtime's triggers only (review M4)
        made = derived_run_id(kind, namespace, "x")  # type: ignore[arg-type]
        check_instance_id(made, derived=True)
        with pytest.raises(ConfigurationError, match="instance_id"):
            check_instance_id(made)
    for given in ("order-9", "A_b-1", "0" * 100):
        check_instance_id(given)
    bad_ids = (
        "tick:" + "0" * 31,
        "tick:" + "G" * 32,
        "run:" + "0" * 32,
        "tick:0:" + "0" * 30,
        "a/b",
        "",
    )
    for bad in bad_ids:
        with pytest.raises(ConfigurationError, match="instance_id"):
            check_instance_id(bad)
