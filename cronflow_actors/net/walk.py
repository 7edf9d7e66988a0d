"""The markings a walk forwards through a reset net reaches (``coverability``'s walks), each
kept as what differs from the marking it starts at: most places (a task's free and armed ones
among them) keep their count along a chain, and copied whole, a chain of n tasks cost n^2
(review h36 F2)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, Protocol, TypeVar

__all__ = ["Walk"]

Marking = dict[str, int]


class _Transition(Protocol):
    """A reset net's transition, as ``coverability.ResetTransition``."""

    @property
    def pre(self) -> Mapping[str, int]: ...
    @property
    def post(self) -> Mapping[str, int]: ...
    @property
    def reset(self) -> frozenset[str]: ...


T = TypeVar("T", bound=_Transition)


class Walk(Generic[T]):
    """The markings a walk from ``marking`` reaches, each kept as what differs from it."""

    __slots__ = ("anyway", "base", "keyed", "takers")

    def __init__(self, takers: dict[str, list[T]], marking: Mapping[str, int]) -> None:
        """``takers``: the transitions by one place they take from ("": none; the net's)."""
        self.base = {place: count for place, count in marking.items() if count > 0}
        self.takers, self.anyway = takers, takers.get("", ())
        self.keyed = [place for place in self.base if place in self.takers]  # (the rest key
        # no transition)

    def count(self, state: Marking, place: str) -> int:
        return state[place] if place in state else self.base.get(place, 0)

    def covers(self, state: Marking, targets: list[Mapping[str, int]]) -> bool:
        count = self.count
        return any(all(count(state, p) >= n for p, n in target.items()) for target in targets)

    def enabled(self, state: Marking) -> Iterator[T]:
        """The transitions that can fire at ``state``."""
        count, base, takers = self.count, self.base, self.takers
        marked = [place for place in self.keyed if count(state, place) > 0]
        marked += [p for p, n in state.items() if n > 0 and p not in base and p in takers]
        for place in (*marked, ""):
            for transition in takers.get(place, ()) if place else self.anyway:
                if all(count(state, taken) >= need for taken, need in transition.pre.items()):
                    yield transition

    def fired(self, state: Marking, transition: T) -> Marking:
        """``state`` after ``transition`` fired."""
        count, base = self.count, self.base
        after = dict(state)
        for taken, need in transition.pre.items():
            _put(after, base, taken, count(state, taken) - need)
        for emptied in transition.reset:
            _put(after, base, emptied, 0)
        for given, more in transition.post.items():
            _put(after, base, given, count(after, given) + more)
        return after


def _put(state: Marking, base: Mapping[str, int], place: str, count: int) -> None:
    """``place`` holds ``count`` in ``state``, a marking kept as what differs from ``base``."""
    if count == base.get(place, 0):
        state.pop(place, None)
    else:
        state[place] = count
