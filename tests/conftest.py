from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cronflow_actors.kernel import ActorSystem, ManualClock


@pytest.fixture
async def system() -> AsyncIterator[ActorSystem]:
    async with ActorSystem("test") as running:
        yield running


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_000_000.0)
