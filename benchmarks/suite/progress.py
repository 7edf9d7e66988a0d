"""A progress bar on stderr: redrawn in place on a terminal, one line per job elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, stream: TextIO | None = None, width: int = 24) -> None:
        self.total, self.done, self.width = total, 0, width
        self.stream = stream if stream is not None else sys.stderr
        self.began = time.perf_counter()
        self.live = self.stream.isatty()

    def line(self, label: str) -> str:
        filled = round(self.width * self.done / self.total) if self.total else self.width
        elapsed = time.perf_counter() - self.began
        bar = "#" * filled + "-" * (self.width - filled)
        return f"[{bar}] {self.done}/{self.total} {elapsed:5.0f}s  {label}"

    def start(self, label: str) -> None:
        """Show that ``label`` is running now."""
        self._show(self.line(label))

    def finish(self, label: str, outcome: str) -> None:
        """One job is done; ``outcome`` says how (ok, failed: ..., missing: ...)."""
        self.done += 1
        self._show(self.line(f"{label}: {outcome}"), keep=True)

    def _show(self, text: str, keep: bool = False) -> None:
        if self.live:
            self.stream.write("\r\033[K" + text + ("\n" if keep else ""))
        elif keep:
            self.stream.write(text + "\n")
        self.stream.flush()
