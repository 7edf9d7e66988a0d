"""Long chains of tasks completed in one turn: a run's carried steps fast-forwarded by a
migration or a resume, a net of dummy tasks. A completion enables what follows inside it,
depth first (Tasquencer's cascade), and each task so nested takes a handful of Python frames:
a chain of about 190 overflowed the interpreter's stack, so a long run could not be migrated
or resumed and a long net could not start (conform h35 F1).

Up to ``DEEPEST`` enables nested in the completions under way, a turn runs as before. Past it,
an enable is put off (``Chain.put_off``) and carried out once the outermost completion has
enabled its own followers, in the order the enables were reached, each the start of a chain
of its own: the turn's outcome is the same; only the order of its moves past that depth
differs. A loop of tasks that never waits, which put off enables without end, is refused
(``EndlessChainError``) after ``MOST_PUT_OFF`` of them."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from cronflow_actors.engine.states import FINAL_STATES
from cronflow_actors.errors import EndlessChainError
from cronflow_actors.messages.elements import EnableTask
from cronflow_actors.messages.instance_state import WorkflowRecord

__all__ = ["DEEPEST", "MOST_PUT_OFF", "Chain", "enable_next"]

DEEPEST = 64
"""Enables nested in one another before the next is put off (about six frames each)."""

MOST_PUT_OFF = 500
"""Enables put off in one turn before its chain is taken for a loop without end (about
``DEEPEST`` completions each)."""


class Chain:
    """One transaction's nested enables (``Transaction.chain``) and those put off."""

    __slots__ = ("depth", "later", "put_off_count")

    def __init__(self) -> None:
        self.depth = 0
        self.later: deque[EnableTask] = deque()
        self.put_off_count = 0

    def put_off(self, workflow: WorkflowRecord, task: str) -> None:
        self.put_off_count += 1
        if self.put_off_count > MOST_PUT_OFF:
            raise EndlessChainError(workflow.name, task, DEEPEST * MOST_PUT_OFF)
        self.later.append(EnableTask(workflow_id=workflow.id, task=task))

    async def carry_on(self, send: Callable[[EnableTask], Awaitable[Any]]) -> None:
        """Carry out the enables put off, in order (those they put off in turn after them)."""
        self.depth += 1
        try:
            while self.later:
                await send(self.later.popleft())
        finally:
            self.depth -= 1


async def enable_next(
    tx: Any,
    workflow: WorkflowRecord,
    name: str,
    candidates: Iterable[str],
    enable_again: Callable[[], Awaitable[None]],
) -> None:
    """Enable ``candidates``, what task ``name``'s completion in ``workflow`` may enable, in
    order, while its workflow goes on (``enable_again``: ``name`` itself, if its join still
    holds); past ``DEEPEST`` nested, put off. ``tx``: the ``Transaction``."""
    chain = tx.chain
    if chain is None:
        chain = tx.chain = Chain()
    for candidate in candidates:
        if workflow.state in FINAL_STATES:
            break
        if chain.depth >= DEEPEST:
            chain.put_off(workflow, candidate)
            continue
        chain.depth += 1
        try:
            if candidate == name:
                await enable_again()
            else:
                await tx.send(EnableTask(workflow_id=workflow.id, task=candidate))
        finally:
            chain.depth -= 1
    if chain.later and not chain.depth:  # the outermost: what was put off, now
        await chain.carry_on(tx.send)
