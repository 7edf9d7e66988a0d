"""Which branch of an ``if_`` the run a resume or a migration goes on from took (conform h39
F5): the new run goes on in it, where its condition, asked again, could answer otherwise."""

from __future__ import annotations

from typing import Any

__all__ = ["taken_before"]


def taken_before(ctx: Any, split: str, targets: list[str], join: str) -> str | None:
    """The branch of ``if_`` split ``split`` that the run gone on from (a resume's, a
    migration's) took, when it decided there once and one of ``targets`` is where it went
    (``join``, its end, where it went past it, none of its conditions holding):
    asked again, a condition whose answer had changed (the state, the clock, the code fixed
    before the resume) took the other branch, and the steps the first branch completed
    vanished from the run, its failed step never run again (conform h39 F5). None: the
    conditions decide (a new run, a split in a loop or a subflow, one not reached before)."""
    source = ctx.migrating_from
    if source is None or ctx.parent.parent_id is not None or ctx.task.generation != 1:
        return None
    generations = source.generations
    if generations.get(split, 0) != 1:
        return None
    entered = [target for target in targets if generations.get(target, 0) > 0]
    if not entered and generations.get(join, 0) > 0:  # it went past, no condition holding
        return join  # (an if_ with no else_: it was asked again, review h39 F1)
    return entered[0] if len(entered) == 1 else None
