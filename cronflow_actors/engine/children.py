"""What a task's ``ctx`` lists and adds (``ctx.children``, ``ctx.work_item.initialize`` in a
task's activity): its children's ids, and the work items or child workflows it initializes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cronflow_actors.errors import NotFoundError
from cronflow_actors.messages.engine import TaskRecord

__all__ = ["TaskChildren"]


class TaskChildren:
    """What a task's ctx lists and adds: its children's ids, and new work items or child
    workflows, whose ids go to ``pending`` (bound methods, not closures: a closure compiled by
    mypyc keeps its enclosing frame in a reference cycle, setup.py); made by
    ``Transaction.task_context``."""

    __slots__ = ("_check_can_add", "_new_id", "_pending", "_record", "_task", "names")

    def __init__(
        self,
        new_id: Callable[[str], str],
        record: TaskRecord,
        task: str,
        pending: list[tuple[str, str | None, Any]] | None,
        check_can_add: Callable[[str], None],
    ) -> None:
        self._new_id = new_id
        self._record = record
        self._task = task
        self._pending = pending
        self._check_can_add = check_can_add
        self.names: list[str] = []
        """The composite task's child workflow names."""

    def ids(self) -> list[str]:
        return [*self._record.children, *(p[0] for p in self._pending or ())]

    def initialize(self, payload: Any) -> str:
        self._check_can_add("initialize a work item")
        ident = self._new_id("w")
        assert self._pending is not None  # given only when there is a list to add to
        self._pending.append((ident, None, payload))
        return ident

    def start_child(self, child_name: str | None, payload: Any) -> str:
        self._check_can_add("initialize a child workflow")
        if child_name is not None and child_name not in self.names:
            raise NotFoundError(
                "child workflow", child_name, f"task {self._task!r} (it has {self.names})"
            )
        ident = self._new_id("f")
        assert self._pending is not None
        self._pending.append((ident, child_name, payload))
        return ident
