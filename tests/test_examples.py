"""The bundled example runs end to end."""

from __future__ import annotations

from pathlib import Path

import cronflow_actors as cf
from cronflow_actors.examples import order_processing
from cronflow_actors.kernel import ManualClock


async def test_the_order_example_ships_two_orders_and_refuses_a_suspect_one(
    tmp_path: Path,
) -> None:
    medium, big, suspect = await order_processing.demo(str(tmp_path / "orders.db"))
    assert medium.status == "completed"
    assert medium.output == {"order_id": "o-1", "status": "shipped", "lane": "standard"}
    assert [s.id for s in medium.steps] == [
        "validate",
        "confirm",
        "checks",
        "decision",
        "lane",
        "ship",
    ]
    assert big.status == "completed"
    assert big.output == {"order_id": "o-2", "status": "shipped", "lane": None}
    approve = next(s for s in big.steps if s.id == "approve")
    assert approve.output["approved_by"] == "manager"
    # a fraud score of 0.9 is refused: it neither asks a manager nor ships
    assert suspect.status == "completed"
    assert suspect.output == {"order_id": "o-3", "status": "refused", "reason": "fraud score 0.9"}
    steps = [s.id for s in suspect.steps]
    assert "refuse" in steps
    assert not {"approve", "lane", "lane-small"} & set(steps)


async def test_a_small_order_ships_in_the_small_lane(tmp_path: Path) -> None:
    async with cf.Runtime(db=tmp_path / "small.db", workflows=order_processing.workflows) as rt:
        small = await rt.trigger(
            "order-processing", {"order_id": "o-4", "customer": "ada", "amount": 40, "items": []}
        )
        run = await rt.wait(small)
    assert run.output == {"order_id": "o-4", "status": "shipped", "lane": "letter"}


async def test_a_big_order_nobody_approves_is_rejected_within_the_runs_day(
    tmp_path: Path,
) -> None:
    # the approval times out (12 h) before the run does (1 d): a rejection, not a failure
    clock = ManualClock()
    db = tmp_path / "unanswered.db"
    async with cf.Runtime(db=db, clock=clock, workflows=order_processing.workflows) as rt:
        order = {"order_id": "o-5", "customer": "ada", "amount": 5000, "items": ["piano"]}
        run_id = await rt.trigger("order-processing", order)
        await rt.wait_idle()
        assert [p.run_id for p in await rt.list_paused()] == [run_id]
        clock.advance(12 * 3600)
        run = await rt.wait(run_id, timeout=10)
    assert run.status == "completed"
    assert run.output["status"] == "rejected"


def test_the_old_examples_path_still_imports() -> None:
    from examples import order_processing as old

    assert old.workflows is order_processing.workflows
