"""Crash tests' worker processes: run one until it has said what it did, then SIGKILL it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def killed_after(module: str, *args: str, lines: int) -> list[str]:
    """Run ``python -m module args`` from the repository until it has printed ``lines`` lines,
    then kill it (SIGKILL: nothing of it runs after); the lines, stripped."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        return [process.stdout.readline().strip() for _ in range(lines)]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
