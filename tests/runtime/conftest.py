from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import cronflow_actors as cf
from cronflow_actors.kernel import ManualClock


@pytest.fixture
async def rt(tmp_path: Path, clock: ManualClock) -> AsyncIterator[cf.Runtime]:
    """A running runtime on a real SQLite file, with a manual clock; register workflows on it."""
    async with cf.Runtime(db=tmp_path / "runtime.db", clock=clock) as runtime:
        yield runtime
