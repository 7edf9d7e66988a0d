"""A changed definition without a version bump, across a real crash: the run a killed process
left in the middle of a step is held as ``blocked`` by the process that restarts on the changed
definition (nothing of it runs there), and completes on the process after that, which registers
its old definition again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def worker(db: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.runtime.pinning_worker", str(db), mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def finish(process: subprocess.Popen[str]) -> list[str]:
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    return out.splitlines()


def test_a_run_killed_mid_step_is_blocked_on_a_changed_definition_and_runs_on_the_old_one(
    tmp_path: Path,
) -> None:
    db = tmp_path / "pinned.db"
    first = worker(db, "crash")
    try:
        assert first.stdout is not None
        assert first.stdout.readline().strip() == "ran a"
        assert first.stdout.readline().strip() == "in a"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
        if first.stdout is not None:
            first.stdout.close()

    changed = finish(worker(db, "changed"))
    assert not [line for line in changed if line.startswith("ran ")]  # nothing ran on it
    shown = json.loads(changed[0])
    assert shown["status"] == "blocked"
    assert "'pinned' version 'v1'" in shown["blocked"]
    assert "register its old definition again" in shown["blocked"]
    assert json.loads(changed[1]) == {"listed": ["r1"]}

    old = finish(worker(db, "old"))
    assert old[:2] == ["ran a", "ran b"]  # step a ran again (it had not finished), then b
    assert json.loads(old[2]) == {"status": "completed", "output": "b:1"}
