"""Long chains of tasks completed in one turn: a run's carried steps fast-forwarded by a
migration or a resume, a net of dummy or composite tasks. A completion enables what follows
inside it, depth first (Tasquencer's cascade), and each task so nested
takes a handful of Python frames (a composite task, with the audit on, a few dozen): a chain of
about 190 dummy tasks overflowed the interpreter's stack, so a long run could not be migrated
or resumed and a long net could not start (conform h35 F1).

A turn runs depth first as before while the stack has room. Once the frames under way come
within ``HEADROOM`` of ``STACK`` (the recursion limit, or less), an enable is put off
(``Chain.put_off``) and carried out once the outermost completion has enabled its own
followers, in the order the enables were reached, each the start of a chain of its own. Only a
turn within ``HEADROOM`` frames of overflowing is so reordered: a race decided there (a
deferred choice) may go the other way than it did when such a turn did not overflow (review
h35 F1, retest2 h35 R1). A loop of tasks that never waits, which enabled tasks without end, is
refused (``EndlessChainError``) after ``MOST_ENABLES`` enables in one turn."""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from cronflow_actors.engine.states import FINAL_STATES
from cronflow_actors.errors import EndlessChainError
from cronflow_actors.messages.elements import EnableTask
from cronflow_actors.messages.instance_state import WorkflowRecord

__all__ = ["HEADROOM", "MOST_ENABLES", "STACK", "Chain", "Sends", "enable_next"]

STACK = 1_000
"""The deepest stack a turn uses, in frames, below a higher recursion limit: Python 3.11 nests
the C stack with each awaited coroutine, and 8,000 tasks deep under a limit of 30,000 the
process died (retest2 h35 R4)."""

HEADROOM = 120
"""Frames left for what an enable calls (user code among it): an enable deeper is put off."""

MOST_ENABLES = 20_000
"""Enables in one turn before its chain is taken for a loop without end (a few seconds of the
loop's time: retest2 h35 R3, 100,000 kept a loop of composite tasks 5 s and lost the lease)."""

_SHALLOW = 24
"""Nested enables below which the stack is not measured."""


class Sends(Protocol):
    """What ``enable_next`` asks of the transaction (``Transaction``): its chain, its send."""

    chain: Chain | None

    @property
    def send(self) -> Callable[[EnableTask], Awaitable[object]]: ...


class Chain:
    """One transaction's nested enables (``Transaction.chain``) and those put off (``later``,
    made with the first)."""

    __slots__ = ("depth", "enables", "later")

    def __init__(self) -> None:
        self.depth = 0
        self.enables = 0
        self.later: deque[EnableTask] | None = None

    def put_off(self, workflow: WorkflowRecord, task: str) -> bool:
        """Whether the enable of ``task`` must wait, the frames under way leaving less than
        ``HEADROOM`` (then it is kept in ``later``). Asked past ``_SHALLOW`` nested enables;
        the stack is measured by ``sys._getframe``'s walk in C."""
        try:
            sys._getframe(min(sys.getrecursionlimit(), STACK) - HEADROOM)
        except ValueError:  # not that deep
            return False
        if self.later is None:
            self.later = deque()
        self.later.append(EnableTask(workflow_id=workflow.id, task=task))
        return True

    async def carry_on(self, send: Callable[[EnableTask], Awaitable[object]]) -> None:
        """Carry out the enables put off, in order (those they put off in turn after them)."""
        later = self.later
        assert later is not None  # (carried on only once some were put off)
        self.depth += 1
        try:
            while later:
                await send(later.popleft())
        finally:
            self.depth -= 1


async def enable_next(
    tx: Sends,
    workflow: WorkflowRecord,
    name: str,
    candidates: Iterable[str],
    enable_again: Callable[[], Awaitable[None]],
) -> None:
    """Enable ``candidates``, what task ``name``'s completion in ``workflow`` may enable, in
    order, while its workflow goes on (``enable_again``: ``name`` itself, if its join still
    holds); with the stack nearly full, put off."""
    chain = tx.chain
    if chain is None:
        chain = tx.chain = Chain()
    for candidate in candidates:
        if workflow.state in FINAL_STATES:
            break
        chain.enables += 1
        if chain.enables > MOST_ENABLES:
            raise EndlessChainError(workflow.name, candidate, MOST_ENABLES)
        if chain.depth >= _SHALLOW and chain.put_off(workflow, candidate):
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
