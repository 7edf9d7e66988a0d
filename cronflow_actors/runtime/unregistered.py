"""Unfinished runs on a version this process does not register: nothing runs them.

A run whose workflow is registered here at other versions only waits, neither held (``blocked``
is for a definition that changed) nor failed: until its version is registered again beside the
others, or it is migrated or canceled. The start (or the registration) that meets such runs
says how many each missing version has, in one warning a version, and
``cronflow_runs_unregistered{workflow}`` counts them for as long as they wait (a
dashboard read them as running and waiting runs, healthy: metrics h43 F2).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from cronflow_actors.messages import SnapshotRecord

__all__ = ["Unregistered"]

logger = logging.getLogger(__name__)


class Unregistered:
    """The unfinished runs seen on a version not registered here; ``on_count(workflow, n)``
    hears how many a workflow has whenever that changes."""

    def __init__(self, on_count: Callable[[str, int], None]) -> None:
        self._on_count = on_count
        self._runs: dict[str, tuple[str, str]] = {}
        """Run id -> (workflow, version)."""
        self._counts: dict[str, int] = {}

    def get(self, run_id: str) -> tuple[str, str] | None:
        """(workflow, version) of the run, if it was seen on a version not registered here
        (None: none seen, or registered since)."""
        return self._runs.get(run_id)

    def seen(self, snapshot: SnapshotRecord, *, registered: bool) -> None:
        """An unfinished run met at a start (or registration): whether its version is
        registered here."""
        pair = (snapshot.workflow, snapshot.version)
        if registered:
            self.forget(snapshot.instance_id)
        elif self._runs.get(snapshot.instance_id) != pair:
            self.forget(snapshot.instance_id)
            self._runs[snapshot.instance_id] = pair
            self._count(snapshot.workflow, 1)

    def forget(self, run_id: str) -> None:
        """The run ended without running (canceled offline), or its version is registered."""
        pair = self._runs.pop(run_id, None)
        if pair is not None:
            self._count(pair[0], -1)

    def say(self, names: Iterable[str]) -> None:
        """One warning for each version of the named workflows that unfinished runs are on and
        this process does not register."""
        wanted = set(names)
        runs: dict[tuple[str, str], list[str]] = {}
        for run_id, pair in self._runs.items():
            if pair[0] in wanted:
                runs.setdefault(pair, []).append(run_id)
        for (workflow, version), ids in sorted(runs.items()):
            shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
            logger.warning(
                "%d unfinished run(s) of %s are on version %r, which is not registered here "
                "(%s): nothing runs them until that version is registered again beside the "
                "others (a net's migration needs it registered too), or each is migrated to one "
                "that is (a flow's run: cronflow-actors migrate RUN --to VERSION) or canceled",
                len(ids),
                workflow,
                version,
                shown,
            )

    def _count(self, workflow: str, change: int) -> None:
        count = self._counts[workflow] = self._counts.get(workflow, 0) + change
        self._on_count(workflow, count)
