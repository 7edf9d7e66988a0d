"""Long chains of tasks completed in one turn: a run's carried steps fast-forwarded by a
migration or a resume, a net of dummy or composite tasks. A completion enables what follows
inside it, depth first (Tasquencer's cascade), and each task so nested
takes a handful of Python frames (a composite task, with the audit on, a few dozen): a chain of
about 190 dummy tasks overflowed the interpreter's stack, so a long run could not be migrated
or resumed and a long net could not start (conform h35 F1).

A turn runs depth first while the stack has room. Once the frames under way pass ``STACK``
less ``HEADROOM`` (the recursion limit, or less), the rest of a completion's enables is put
off (``Chain.put_off``), and so is every enable reached after it while the stack unwinds to
the outermost completion, which then carries them out (``Chain.carry_on``) in depth-first
order: each put-off rest in the order it was put off, what it puts off in turn before the
rests after it. The enables happen in the order they would on a stack without end, so a race
decided in a long chain (a deferred choice) goes the way it does in a short one (review h35
F1, retest2 h35 R1), and what an enable calls (a router, an activity: user code) has at least
``HEADROOM`` frames whatever the chain's length (retest2 h35 R2). A loop of tasks that never
waits, which enabled tasks without end, is refused (``EndlessChainError``) after
``MOST_ENABLES`` enables in one turn."""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from cronflow_actors.engine.states import FINAL_STATES
from cronflow_actors.errors import EndlessChainError
from cronflow_actors.messages import Message
from cronflow_actors.messages.elements import EnableTask
from cronflow_actors.messages.instance_state import InstanceState, WorkflowRecord

__all__ = ["HEADROOM", "MOST_ENABLES", "STACK", "Chain", "Note", "Sends", "asked", "enable_next"]

STACK = 1_000
"""The deepest stack a turn uses, in frames, below a higher recursion limit: Python 3.11 nests
the C stack with each awaited coroutine, and 8,000 tasks deep under a limit of 30,000 the
process died (retest2 h35 R4)."""

HEADROOM = 500
"""Frames left for what an enable calls (user code among it): an enable deeper is put off.
120 left a router that recursed 130 levels a ``RecursionError`` at the end of a long chain
only (retest2 h35 R2); put-off enables keep their order, so a wide headroom costs nothing
but more returns to the outermost completion."""

MOST_ENABLES = 20_000
"""Enables in one turn before its chain is taken for a loop without end (a few seconds of the
loop's time: retest2 h35 R3, 100,000 kept a loop of composite tasks 5 s and lost the lease)."""

_SHALLOW = 8
"""Nested enables below which the stack is not measured (eight composite tasks, audit on:
some 250 frames)."""

Enable = Callable[[], Awaitable[None]]
Note = tuple[str, str]
"""A completion under way in ``Transaction.completing``: its workflow's id and its task."""


class Sends(Protocol):
    """What ``enable_next`` asks of the transaction (``Transaction``)."""

    chain: Chain | None
    completing: tuple[Note, ...]
    state: InstanceState

    @property
    def send(self) -> Callable[[Any], Awaitable[object]]: ...

    @property
    def send_last(self) -> Callable[[Any], Awaitable[object]]: ...


class _Rest:
    """What is left of one completion, put off: ``enable_next``'s arguments from a candidate
    on (none, when only its report is left)."""

    __slots__ = ("candidates", "change", "enable_again", "name", "note", "workflow")

    def __init__(  # noqa: PLR0917 - enable_next's own, in their order
        self,
        workflow: WorkflowRecord,
        name: str,
        candidates: Sequence[str],
        enable_again: Enable,
        note: Note | None,
        change: Message | None,
    ) -> None:
        self.workflow, self.name, self.candidates = workflow, name, candidates
        self.enable_again, self.note, self.change = enable_again, note, change


class Chain:
    """One transaction's nested enables (``Transaction.chain``): how deep, how many, and the
    rests put off (``later``) while ``putting_off`` (from the first put off to the outermost
    completion's ``carry_on``)."""

    __slots__ = ("depth", "enables", "later", "putting_off")

    def __init__(self) -> None:
        self.depth = 0
        self.enables = 0
        self.later: deque[_Rest] | None = None
        self.putting_off = False

    def enabled(self, tx: Sends, workflow: WorkflowRecord, task: str) -> None:
        """Count ``task`` of ``workflow``, just enabled; ``EndlessChainError`` past
        ``MOST_ENABLES``. Only an ask that enabled counts: every ask did, a completion's
        re-ask of itself and of other OR-joins among them, so a chain of 18,000 tasks was
        refused as "more than 20,000 enabled" (retest h36 R6)."""
        self.enables += 1
        if self.enables > MOST_ENABLES:
            raise EndlessChainError(workflow.name, task, MOST_ENABLES, tx.state.workflow)

    def full(self) -> bool:
        """Whether the frames under way leave less than ``HEADROOM`` (measured by
        ``sys._getframe``'s walk in C)."""
        try:
            sys._getframe(min(sys.getrecursionlimit(), STACK) - HEADROOM)
        except ValueError:  # not that deep
            return False
        return True

    def put_off(self, rest: _Rest) -> None:
        """Keep ``rest`` for ``carry_on``, and every enable after it until then."""
        if self.later is None:
            self.later = deque()
        self.later.append(rest)
        self.putting_off = True

    async def carry_on(self, tx: Sends) -> None:
        """Carry out the rests put off, depth first: each in order, and what one puts off in
        turn before the rests after it."""
        pending = [self.later]
        self.later = None
        self.depth += 1
        try:
            while pending:
                level = pending[-1]
                if not level:
                    pending.pop()
                    continue
                rest = level.popleft()
                self.putting_off = False
                await enable_next(
                    tx,
                    rest.workflow,
                    rest.name,
                    rest.candidates,
                    rest.enable_again,
                    rest.note,
                    rest.change,
                    last=False,  # (from here, no element's own last act: a frame of its own)
                )
                if self.later:
                    pending.append(self.later)
                    self.later = None
        finally:
            self.depth -= 1
            self.putting_off = False


async def enable_next(  # noqa: PLR0917 - a completion's own names, in their order
    tx: Sends,
    workflow: WorkflowRecord,
    name: str,
    candidates: Sequence[str],
    enable_again: Enable,
    note: Note | None = None,
    change: Message | None = None,
    *,
    last: bool = True,
) -> None:
    """Enable ``candidates``, what task ``name``'s completion in ``workflow`` may enable, in
    order, while its workflow goes on (``enable_again``: ``name`` itself, if its join still
    holds), then drop ``note``, the completion's in ``tx.completing`` (``withdrawal.asking``),
    and send ``change``, its report to its workflow (``last``: as its element's last act).
    With the stack nearly full, or once something was put off, the rest is put off, its
    report with it: a report sent ahead of the rest reached the workflow before the tasks
    after it ran, and a workflow whose end was marked completed with a chain cut short
    (review h36 F1)."""
    chain = tx.chain
    if chain is None:
        chain = tx.chain = Chain()
    for index, candidate in enumerate(candidates):
        if workflow.state in FINAL_STATES:
            break
        if chain.putting_off or (chain.depth >= _SHALLOW and chain.full()):
            rest = candidates[index:]
            chain.put_off(_Rest(workflow, name, rest, enable_again, note, change))
            note = change = None  # (the rest's now)
            break
        chain.depth += 1
        try:
            if candidate == name:
                await enable_again()
            else:
                await tx.send(EnableTask(workflow_id=workflow.id, task=candidate))
        finally:
            chain.depth -= 1
    if chain.putting_off and (note is not None or change is not None):  # what followed it
        chain.put_off(_Rest(workflow, name, (), enable_again, note, change))  # went ahead
        note = change = None
    asked(tx, note)
    if change is not None:
        await (tx.send_last if last else tx.send)(change)
    if chain.later and not chain.depth:  # the outermost: what was put off, now
        await chain.carry_on(tx)


def asked(tx: Sends, note: Note | None) -> None:
    """Drop ``note`` (if any) from ``tx.completing``: its completion has asked every task
    after it (an OR-join asked before then does not take those for idle)."""
    if note is None:
        return
    completing = tx.completing
    if completing[-1] == note:
        tx.completing = completing[:-1]
    else:  # (put off: completions nested in it asked theirs first)
        at = completing.index(note)
        tx.completing = completing[:at] + completing[at + 1 :]
