"""The bundled example runs end to end."""

from __future__ import annotations

from pathlib import Path

from examples import order_processing


async def test_the_order_example_ships_one_order_and_approves_another(tmp_path: Path) -> None:
    medium, big = await order_processing.demo(str(tmp_path / "orders.db"))
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
