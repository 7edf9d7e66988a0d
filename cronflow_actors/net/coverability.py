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

from cronflow_actors.net.walk import Walk

__all__ = [
    "ANSWERS",
    "BACKWARD_WORK",
    "DEAD_WORK",
    "FIRST_STATES",
    "FIRST_WORK",
    "FORWARD_STATES",
    "MOST_NESTED",
    "PROBE_STEPS",
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
out, or a marking of the basis compared with one; ``orjoin``'s docstring, 7.): a few tenths of
a second here (``benchmarks/orjoin.py``)."""

ANSWERS = 256
"""Answers an OR-join's net keeps, by the marking they were given for
(``orjoin.is_or_join_enabled``): a question asked again after a completion outside the
OR-join's cone, undecided, took the whole budget each time (a chain of 40 dummies beside it:
16.8 s on the loop, retest h37 F3)."""

PROBE_STEPS = 40_000
"""Steps of ``ResetSearch._probe``'s one line, tried first (each a transition fired): a task
of a chain takes two, and a turn enables 20,000 tasks at most (``chains.MOST_ENABLES``)."""

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
F1's size, 10,000). 12,000 take a few tenths of a second here."""


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
        goals = tuple(goal)
        self._steps = self._steps_to(goals)
        self._steps_by_goal = {place: self._steps_to((place,)) for place in goals}
        # Transitions by each place they take from (``_reach``), and the invariants' places
        # (``_possible``): each of a pair names the other; each holds one token at most.
        self._needing: dict[str, list[ResetTransition]] = {}
        for transition in transitions:
            for place in transition.pre:
                self._needing.setdefault(place, []).append(transition)
        self._partner = {run: free for run, free in one_run} | {f: r for r, f in one_run}
        self.places = frozenset(p for t in transitions for p in (*t.pre, *t.post)) | set(goals)
        """The places the transitions read or give to, and the goal's."""
        self.tasks: tuple[str, ...] = ()
        """The tasks whose places the transitions read or give to (``orjoin.ResetNet.of``)."""
        self.answers: dict[frozenset[tuple[str, int]], bool | None] = {}
        """Answers (``decide``'s) by the marking of ``places`` they were given for, the
        latest ``ANSWERS`` (``remember``)."""
        self._single = frozenset(self._partner) | {armed_place(t) for t in armed}

    def remember(self, key: frozenset[tuple[str, int]], answer: bool | None) -> None:
        """Keep ``answer`` for the marking ``key`` of ``places``, dropping the oldest past
        ``ANSWERS``."""
        if len(self.answers) >= ANSWERS:
            del self.answers[next(iter(self.answers))]
        self.answers[key] = answer

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
                for taken in transition.pre:  # (not through a task's free or armed place:
                    if taken not in distance and not taken.startswith(_KEEPING):  # any end
                        distance[taken] = distance[place] + 1  # gives one, and a loop's
                        todo.append(taken)  # looked as near as the way there: retest2 h37 R1)
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

    def _reach(self, marking: Mapping[str, int]) -> tuple[set[int], set[str]]:
        """The transitions (by id) that may ever fire from ``marking``, ignoring token counts
        (the rest can be left out of the search: an over-approximation, so leaving them out is
        safe), and the places they or ``marking`` mark. A transition fires once the last place
        it takes from is markable: passes over every transition
        until none was new took one pass per transition of a chain declared last first
        (3,000 tasks: 3 s a question, retest h37 F4)."""
        missing = {id(t): len(t.pre) for t in self.transitions}
        fireable = {ident for ident, count in missing.items() if not count}
        markable: set[str] = set()
        todo = [place for place, count in marking.items() if count > 0]
        todo += [place for t in self.transitions if not t.pre for place in t.post]
        while todo:
            place = todo.pop()
            if place in markable:
                continue
            markable.add(place)
            for transition in self._needing.get(place, ()):
                ident = id(transition)
                missing[ident] -= 1
                if not missing[ident]:
                    fireable.add(ident)
                    todo.extend(transition.post)
        return fireable, markable

    def _possible(self, marking: Mapping[str, int]) -> bool:
        """Whether ``marking`` keeps the invariants (a task running, or free to: one token
        between the two places; an armed place: at most one), read from the places it names:
        read from every pair of the net, a step of the search cost a scan of its tasks (8,000
        tasks: 16 s a question, retest h37 F3)."""
        partner, single = self._partner, self._single
        for place, count in marking.items():
            if place in single and count > 1:
                return False
            other = partner.get(place)
            if other is not None and count + marking.get(other, 0) > 1:
                return False
        return True

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
        worked out, or compared with a marking of the basis): None past them, undecided. A line
        of steps first (``_probe``), then a short walk, a short backward search, the whole walk
        and the whole backward search. The transitions that can fire from ``marking`` are
        worked out once, for all of them."""
        targets = list(targets)
        if any(_covers(marking, target) for target in targets):
            return True
        # a target that needs a place no transition that can fire gives to is out of reach: a
        # loop that never waits made an OR-join on the start condition walk 1,000 markings for
        # each of its 10,000 questions before the backward search saw it (conform h37 F5)
        fireable, markable = self._reach(marking)
        targets = [t for t in targets if all(p in markable for p, n in t.items() if n > 0)]
        if not targets:
            return False
        if forward:
            # a short walk, which finds most witnesses (it heads for the goal); a few steps
            # back, which see a join that can never fire at once, where the walk goes through
            # every order its other branches can run in first; then the whole walk
            first = FIRST_WORK if work is None else min(work, FIRST_WORK)
            if self._probe(targets, marking):
                return True
            answer = self._walk(targets, marking, FIRST_STATES)
            if answer is None:
                answer = self._backward(targets, marking, fireable, first)
            if answer is None:
                answer = self._walk(targets, marking, FORWARD_STATES)
            if answer is not None:
                return answer
        return self._backward(targets, marking, fireable, work)

    def _backward(
        self,
        targets: list[Mapping[str, int]],
        marking: Mapping[str, int],
        fireable: set[int],
        work: int | None,
    ) -> bool | None:
        question: _Question | None = None
        for target in targets:
            if not self._possible(target):
                continue
            if question is None:
                question = _Question(marking, fireable, work)
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
        walk, steps = Walk(self._takers, marking), self._steps
        seen: set[frozenset[tuple[str, int]]] = {frozenset()}
        todo: list[Marking] = [{}]
        while todo:
            current = todo.pop()
            if walk.covers(current, targets):
                return True
            following: list[tuple[int, Marking]] = []
            for transition in walk.enabled(current):
                after = walk.fired(current, transition)
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

    def _probe(self, targets: list[Mapping[str, int]], marking: Mapping[str, int]) -> bool:
        """Whether one line of steps, each the transition nearest an input that ``targets``
        need and ``marking`` lacks (the first of those, in the net's order), reaches a marking
        that covers one of them, in ``PROBE_STEPS``: where a witness runs down one branch of
        many in parallel, the walk adds each step's other branches to its count, and a witness
        a hundred steps down one of ten took it past its first bound (retest h37 F2)."""
        goals = {p for t in targets for p, n in t.items() if n > marking.get(p, 0)}
        steps = [self._steps_by_goal[goal] for goal in goals if goal in self._steps_by_goal]
        if not steps:
            return False
        walk = Walk(self._takers, marking)
        current: Marking = {}
        seen = {frozenset(current.items())}
        # a line longer than the cone's transitions goes round a loop: give up after them
        for _ in range(min(PROBE_STEPS, len(self.transitions) + 1)):
            if walk.covers(current, targets):
                return True
            nearest, best = None, _FAR
            for transition in walk.enabled(current):
                distance = min(to.get(id(transition), _FAR) for to in steps)
                if distance < best:
                    nearest, best = transition, distance
            if nearest is None:
                return False  # nothing enabled leads there
            current = walk.fired(current, nearest)
            key = frozenset(current.items())
            if key in seen:
                return False
            seen.add(key)
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
        them it is taken as reachable, which prunes nothing), once a backward search (the first
        is given fewer steps: the next asks again what it left unknown)."""
        known = question.dead.get(place)
        if known is not None:
            return known
        left = question.left
        allowed = DEAD_WORK if left is None else min(DEAD_WORK, left)
        if allowed <= 0:
            return False  # (the question's steps are spent: its search stops at the next)
        question.nested += 1
        question.left = allowed  # (carved out of the question's: review h37 F2, a fresh
        try:  # DEAD_WORK a search let one question take 300,000 steps)
            found = self._search({place: 1}, question)
        finally:
            question.nested -= 1
            used = allowed - max(question.left or 0, 0)
            question.left = None if left is None else left - used
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


_KEEPING = ("free:", "armed:")
"""The places that keep a task's state rather than tokens of the net."""

_FAR = 1 << 62
"""Steps from a goal of a transition that cannot reach it."""


def _farthest_first(step: tuple[int, Marking]) -> int:
    return -step[0]


def _covers(bigger: Mapping[str, int], smaller: Mapping[str, int]) -> bool:
    return all(bigger.get(place, 0) >= count for place, count in smaller.items())
