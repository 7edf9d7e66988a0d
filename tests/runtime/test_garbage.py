"""A run's objects are freed when it is done with them, by reference counting: a transaction, its
dispatcher and its elements, the instance's actor once it has stopped. Nothing of the engine is
left in reference cycles for the cyclic collector, which would otherwise run more often and walk
every run in flight each time (a turn makes hundreds of objects, thousands of turns run a second).

Not covered: an exception, from a step that raises or a call the engine refuses. A future or a
message keeps the exception, whose traceback keeps the frames it went through, which refer to
that future or message (or to the actor that holds it): a cycle, as with any Python future that
holds an exception, left to the collector."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("audit", ["on", "off"], ids=["audit", "no-audit"])
def test_finished_runs_leave_no_engine_objects_in_cycles(tmp_path: Path, audit: str) -> None:
    # steps, a human pause and its resume (tests/runtime/garbage_worker.py)
    done = subprocess.run(
        [sys.executable, "-m", "tests.runtime.garbage_worker", str(tmp_path / "g.db"), audit],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []
