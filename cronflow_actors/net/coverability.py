"""Coverability in the reset nets of ``orjoin``: a walk forwards, a search backwards, bounded.

``orjoin``'s docstring says what is searched and why; this module is how. ``ResetSearch``
holds the transitions (``orjoin.ResetNet`` translates a net into them) and answers whether a
marking covering one of some targets is reachable from a marking: exactly when unbounded
(``any_coverable``), or within the bounds below, None past them (``decide``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

import msgspec

__all__ = [
    "BACKWARD_WORK",
    "DEAD_WORK",
    "FIRST_STATES",
    "FIRST_WORK",
    "FORWARD_STATES",
    "MOST_NESTED",
    "Marking",
    "ResetSearch",
    "ResetTransition",
    "armed_place",
    "free_place",
    "task_place",
]

Marking = dict[str, int]

BACKWARD_WORK = 20_000
"""Steps the backward search may take for one question of the engine (a predecessor worked
out, or a marking of the basis compared with one; ``orjoin``'s docstring, 7.): about 0.2 s here."""

FIRST_STATES = 1_000
"""Markings the walk goes through first, before ``FIRST_WORK`` (``ResetSearch.decide``)."""

FIRST_WORK = 2_000
"""Steps of the backward search tried before the walk (``ResetSearch.decide``)."""

DEAD_WORK = 2_000
"""Steps of the backward search that may show one place out of reach (``ResetSearch._dead``)."""

MOST_NESTED = 2
"""How deep a search for a place out of reach may ask for others (each asks those of the
markings it needs several places of: a join's inputs)."""

FORWARD_STATES = 12_000
"""Markings reachable from the current one that a question walks forwards (``orjoin``'s
docstring, 4.): a witness along a chain of tasks takes the backward search a basis that grows
with every task of it (100 tasks before an OR-join: 2.5 s on the loop, 200: 30 s and a lost
lease: conform h36 F1), and a forward walk two markings a task (a chain of 5,000, hostile h36
F1's size, 10,000). 12,000 take about 0.4 s here."""


class ResetTransition(msgspec.Struct, frozen=True):
    name: str
    pre: Mapping[str, int]
    post: Mapping[str, int]
    reset: frozenset[str] = frozenset()


def task_place(task: str) -> str:
    return f"task:{task}"


def free_place(task: str) -> str:
    return f"free:{task}"


def armed_place(task: str) -> str:
    return f"armed:{task}"


class ResetSearch:
    """A reset net's transitions, and the searches for a marking coverable from another."""

    def __init__(
        self,
        transitions: list[ResetTransition],
        one_run: tuple[tuple[str, str], ...] = (),
        armed: frozenset[str] = frozenset(),
        goal: Iterable[str] = (),
    ) -> None:
        """``goal``: the places the questions are mostly about (an OR-join's inputs), which the
        walk heads for first."""
        self.transitions = transitions
        # Pairs (running, free) whose tokens always add up to one: a marking with more is
        # never reachable, so the backward search can drop it.
        self.one_run = one_run
        self.armed = armed
        """The tasks whose start needs ``armed:t`` (none in YAWL's translation)."""
        # Transitions by the places they produce into: only those can help cover a marking.
        self._producers: dict[str, list[ResetTransition]] = {}
        for transition in transitions:
            for place in transition.post:
                self._producers.setdefault(place, []).append(transition)
        # Transitions by one place of their pre-set, a condition's or a running task's where
        # they have one (every marking holds the free and armed places of most tasks): the
        # forward walk asks only those of the places a marking holds.
        self._takers: dict[str, list[ResetTransition]] = {}
        for transition in transitions:
            places = sorted(transition.pre, key=lambda p: p.startswith(("free:", "armed:")))
            key = places[0] if places else ""
            self._takers.setdefault(key, []).append(transition)
        self._steps = self._steps_to(goal)

    def _steps_to(self, goal: Iterable[str]) -> dict[int, int]:
        """How many transitions each transition (by id) is from putting a token on a ``goal``
        place, at the fewest, if it can (in the net's graph, tokens aside)."""
        steps: dict[int, int] = {}
        distance = dict.fromkeys(goal, 0)
        todo = deque(distance)
        while todo:
            place = todo.popleft()
            for transition in self._producers.get(place, ()):
                if id(transition) in steps:
                    continue
                steps[id(transition)] = distance[place]
                for taken in transition.pre:
                    if taken not in distance:
                        distance[taken] = distance[place] + 1
                        todo.append(taken)
        return steps

    @staticmethod
    def _predecessor(target: Mapping[str, int], t: ResetTransition) -> Marking | None:
        """The least marking from which firing ``t`` yields at least ``target``, if any."""
        post = t.post
        for place in t.reset:
            if target.get(place, 0) > post.get(place, 0):
                return None  # t empties the place: after it, only what t itself puts there
        result: Marking = {}
        for place, count in target.items():
            if place in t.reset:
                continue
            remaining = count - post.get(place, 0)
            if remaining > 0:
                result[place] = remaining
        for place, count in t.pre.items():
            result[place] = result.get(place, 0) + count
        return result

    def _fireable(self, marking: Mapping[str, int]) -> set[int]:
        """Transitions that may ever fire from ``marking`` (ignoring token counts): the rest can
        be left out of the search. An over-approximation, so leaving them out is safe."""
        markable = {place for place, count in marking.items() if count > 0}
        fireable: set[int] = set()
        grew = True
        while grew:
            grew = False
            for transition in self.transitions:
                if id(transition) not in fireable and markable.issuperset(transition.pre):
                    fireable.add(id(transition))
                    markable.update(transition.post)
                    grew = True
        return fireable

    def _possible(self, marking: Mapping[str, int]) -> bool:
        return all(
            marking.get(run, 0) + marking.get(free, 0) <= 1 for run, free in self.one_run
        ) and all(marking.get(armed_place(t), 0) <= 1 for t in self.armed)

    def coverable(
        self, target: Mapping[str, int], marking: Mapping[str, int], *, forward: bool = True
    ) -> bool:
        """Whether some marking reachable from ``marking`` has at least ``target``'s tokens
        (``forward``: walked forwards first, as the engine asks; else only backwards)."""
        return self.any_coverable([target], marking, forward=forward)

    def any_coverable(
        self,
        targets: Iterable[Mapping[str, int]],
        marking: Mapping[str, int],
        *,
        forward: bool = True,
    ) -> bool:
        """Whether any of ``targets`` is coverable from ``marking``: walked forwards first
        (``forward``), then searched backwards if the walk could not tell, however long."""
        answer = self.decide(targets, marking, forward=forward, work=None)
        assert answer is not None  # (unbounded)
        return answer

    def decide(
        self,
        targets: Iterable[Mapping[str, int]],
        marking: Mapping[str, int],
        *,
        forward: bool = True,
        work: int | None = None,
    ) -> bool | None:
        """``any_coverable``, with the backward search bounded to ``work`` steps (a predecessor
        worked out, or compared with a marking of the basis): None past them, undecided. The
        transitions that can fire from ``marking`` are worked out once for all targets."""
        targets = list(targets)
        if any(_covers(marking, target) for target in targets):
            return True
        if forward:
            # a short walk, which finds most witnesses (it heads for the goal); a few steps
            # back, which see a join that can never fire at once, where the walk goes through
            # every order its other branches can run in first; then the whole walk
            first = FIRST_WORK if work is None else min(work, FIRST_WORK)
            answer = self._walk(targets, marking, FIRST_STATES)
            if answer is None:
                answer = self._backward(targets, marking, first)
            if answer is None:
                answer = self._walk(targets, marking, FORWARD_STATES)
            if answer is not None:
                return answer
        return self._backward(targets, marking, work)

    def _backward(
        self, targets: list[Mapping[str, int]], marking: Mapping[str, int], work: int | None
    ) -> bool | None:
        question: _Question | None = None
        for target in targets:
            if not self._possible(target):
                continue
            if question is None:
                question = _Question(marking, self._fireable(marking), work)
            if self._out_of_reach(target, question, 1):
                continue
            found = self._search(target, question)
            if found is None or found:
                return found
        return False

    def _walk(
        self, targets: list[Mapping[str, int]], marking: Mapping[str, int], most: int
    ) -> bool | None:
        """Whether a marking reachable from ``marking`` covers one of ``targets``, walking them
        depth first, the transitions nearest the goal first; None when they are more than
        ``most``. Each marking is kept as what differs from ``marking`` (most places, a task's
        free and armed ones among them, keep their count along a chain: copied whole, a chain
        of n tasks cost n^2: review h36 F2)."""
        base = {place: count for place, count in marking.items() if count > 0}
        takers, anyway, steps = self._takers, self._takers.get("", ()), self._steps
        keyed = [place for place in base if place in takers]  # (the rest key no transition)

        def count(state: Marking, place: str) -> int:
            return state[place] if place in state else base.get(place, 0)

        seen: set[frozenset[tuple[str, int]]] = {frozenset()}
        todo: list[Marking] = [{}]
        while todo:
            current = todo.pop()
            for target in targets:
                if all(count(current, place) >= need for place, need in target.items()):
                    return True
            marked = [place for place in keyed if count(current, place) > 0]
            marked += [p for p, n in current.items() if n > 0 and p not in base and p in takers]
            following: list[tuple[int, Marking]] = []
            for place in (*marked, ""):
                for transition in takers.get(place, ()) if place else anyway:
                    pre = transition.pre
                    if any(count(current, taken) < need for taken, need in pre.items()):
                        continue
                    after = dict(current)
                    changes = [(taken, count(current, taken) - need) for taken, need in pre.items()]
                    changes += [(emptied, 0) for emptied in transition.reset]
                    for changed, value in changes:
                        _put(after, base, changed, value)
                    for given, more in transition.post.items():
                        _put(after, base, given, count(after, given) + more)
                    key = frozenset(after.items())
                    if key in seen:
                        continue
                    if len(seen) >= most:
                        return None
                    seen.add(key)
                    following.append((steps.get(id(transition), len(seen)), after))
            following.sort(key=_farthest_first)
            todo.extend(after for _, after in following)  # (the nearest is taken next)
        return False

    def _search(self, target: Mapping[str, int], question: _Question) -> bool | None:
        """Whether ``target`` is coverable from the ``question``'s marking; None past its
        budget."""
        marking, fireable = question.marking, question.fireable
        basis: list[Marking] = [dict(target)]
        frontier: deque[Marking] = deque([dict(target)])
        while frontier:
            current = frontier.popleft()  # breadth first: short witnesses are found early
            seen: set[int] = set()
            for place in current:
                for transition in self._producers.get(place, ()):
                    if id(transition) in seen or id(transition) not in fireable:
                        continue
                    seen.add(id(transition))
                    if not question.spend(1 + len(basis)):
                        return None
                    before = self._predecessor(current, transition)
                    if before is None or not self._possible(before):
                        continue
                    if _covers(marking, before):
                        return True
                    if self._out_of_reach(before, question, 2):
                        continue
                    if any(_covers(before, known) for known in basis):
                        continue
                    basis = [known for known in basis if not _covers(known, before)]
                    basis.append(before)
                    frontier.append(before)
        return False

    def _out_of_reach(self, needed: Mapping[str, int], question: _Question, least: int) -> bool:
        """Whether a place ``needed`` needs tokens on is out of reach of any token (module
        docstring in ``orjoin``, 6.); asked of a marking that needs ``least`` places or more the
        ``question``'s marking has no token on (of one needing a single one, what the search
        itself follows, every step of a chain cost a search of its own)."""
        if question.nested >= MOST_NESTED:
            return False
        marking = question.marking
        missing = [p for p, n in needed.items() if n > 0 and marking.get(p, 0) <= 0]
        return len(missing) >= least and any(self._dead(place, question) for place in missing)

    def _dead(self, place: str, question: _Question) -> bool:
        """Whether no marking reachable from the ``question``'s puts a token on ``place``,
        searched for in ``DEAD_WORK`` steps at most (counted in the question's budget; past
        them it is taken as reachable, which prunes nothing), once a question."""
        known = question.dead.get(place)
        if known is not None:
            return known
        question.nested += 1
        spent, question.left = question.left, DEAD_WORK
        try:
            found = self._search({place: 1}, question)
        finally:
            question.nested -= 1
            used = DEAD_WORK - max(question.left or 0, 0)
            question.left = None if spent is None else spent - used
        question.dead[place] = found is False
        return question.dead[place]


class _Question:
    """One question's marking, the transitions that can fire from it, the steps it has left
    (None: no bound), the places found out of reach or in reach, and how deep the searches
    for them go."""

    __slots__ = ("dead", "fireable", "left", "marking", "nested")

    def __init__(self, marking: Mapping[str, int], fireable: set[int], left: int | None) -> None:
        self.marking, self.fireable, self.left = marking, fireable, left
        self.dead: dict[str, bool] = {}
        self.nested = 0

    def spend(self, steps: int) -> bool:
        """Take ``steps``; False once there were not as many left."""
        if self.left is None:
            return True
        self.left -= steps
        return self.left >= 0


def _farthest_first(step: tuple[int, Marking]) -> int:
    return -step[0]


def _put(state: Marking, base: Mapping[str, int], place: str, count: int) -> None:
    """``place`` holds ``count`` in ``state``, a marking kept as what differs from ``base``."""
    if count == base.get(place, 0):
        state.pop(place, None)
    else:
        state[place] = count


def _covers(bigger: Mapping[str, int], smaller: Mapping[str, int]) -> bool:
    return all(bigger.get(place, 0) >= count for place, count in smaller.items())
