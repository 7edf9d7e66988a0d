"""The OR-join: enabled when no empty input can still receive a token while the marked ones stay.

Which behaviour this implements, and why
----------------------------------------
This is YAWL's reset-net analysis (Wynn, Edmond, van der Aalst, ter Hofstede: "Achieving a
General, Formal and Decidable Approach to the OR-join in Workflow using Reset nets"), computed
exactly:

1. The net is translated into a reset net. Every task ``t`` gets an internal place ``t`` ("t is
   running") and, unlike YAWL, a complement place ``free:t`` holding one token while ``t`` is not
   running: start transitions take it, end transitions give it back, and cancelling ``t`` resets
   both places and gives ``free:t`` back. This caps every task at one run at a time, which is the
   engine's rule (a started task keeps arriving tokens until it completes, then re-fires).
   Start transitions: one for an AND-join (taking a token from every input), one per
   input for an XOR-join. Other OR-joins are given XOR-join start transitions (YAWL's optimistic
   treatment, which keeps the analysis decidable); the OR-join under analysis gets none, because
   we ask what can happen *before* it fires. End transitions: one for an AND-split (a token on every
   output), one per output for an XOR-split, one per non-empty subset of outputs for an OR-split.
   Every end transition of a task with a cancellation region resets (empties) the region's
   conditions and the internal places of the region's tasks, which is what cancelling them does.
2. The current marking M counts the real tokens of every condition and one token in the internal
   place of every started task. (Tasquencer's port collapses each condition to one token; real
   counts are what the reset net means, and they only differ on nets that hold several tokens in
   one place.)
3. For each empty input ``q`` of the OR-join, ``M_w`` marks each currently marked input with one
   token and ``q`` with one. If any ``M_w`` is coverable from M (some reachable marking has at
   least those tokens), a token may still arrive at ``q`` while the marked inputs stay marked, so
   the OR-join waits. Coverability in reset nets is decidable; it is computed backwards, as YAWL
   does: the upward-closed set of markings from which ``M_w`` is coverable is kept as a finite
   basis of minimal markings, grown by one-step predecessors until nothing new appears. The
   search goes breadth first, skips transitions that can never fire from M, and drops markings
   that break the invariant ``running:t + free:t = 1``; none of this changes the answer.
4. Before it, the markings reachable from M are walked forwards, depth first, up to
   ``FORWARD_STATES`` of them: one that covers an ``M_w`` answers yes, and a walk that ends
   before the bound has seen every reachable marking and answers no. Only a net whose reachable
   markings are more (wide concurrency, tokens that pile up in a loop) is left to the backward
   search. Both are exact; the walk finds a witness along a long chain in as many steps.

On acyclic nets the cap changes nothing. On nets with loops it matters: YAWL's translation lets a
task "run" several times at once in the analysis, so it sees tokens that this engine can never
produce, and its OR-join waits for them forever. On Tasquencer's loop net (an OR-join fed from a
loop whose task C cancels B, c1 and c2) YAWL's translation says E must wait at {c2}, at {c3} and at
{c1, c2}, so E can never fire; the witness starts C twice concurrently. With the cap, C's
completion always empties c2 before c3 is marked, no marking holds both, and E fires at all three.
Tasquencer's own test of that net agrees at {c2} and {c1, c2}, but expects E to wait at {c3} (its
port says so); here E is enabled there next to D, a deferred choice on c3's token. Tasquencer's
TypeScript port reaches its answers through three bugs (a post-set place loses two tokens in the
predecessor step, reset places are not excluded from pre- and post-sets and every unmarked reset
place gets a token, OR-split subsets are generated only as prefixes); we do not reproduce them. We
implement the exact reset-net answer for the engine's own semantics, because "wait while a token
can still come" is the OR-join's contract and any other answer waits for tokens that cannot come,
or fires before tokens that can. ``one_run_per_task=False`` gives YAWL's translation, for
comparison. tests/net/test_orjoin.py checks the backward analysis against an exhaustive forward
search on random bounded nets, and pins the decisions on Tasquencer's acyclic, cancellation-region
and loop nets under both translations.

The engine asks a task to enable only when a task before it (or the task itself) completes, so a
task a cancellation region canceled keeps its input tokens (spec 1.3) but cannot start on them
until one of those completes again. The analysis knows it: each task but an OR-join has a place
``armed:t``, marked when the engine would ask ``t`` (an end transition of a task before it, or
of ``t`` itself, sets it to one) and taken by ``t``'s start; a cancellation region empties it. A
task that is canceled or failed (and is not about to be asked by a completion under way) starts
unarmed; the others armed. Without it, the analysis let such a task fire on its stale tokens,
and an OR-join after it waited for good (h24's conformance audit). Other OR-joins are asked
after every completion: they need no such place.

Re-evaluation happens when any task of its net completes (the engine asks then): Tasquencer and
YAWL ask only after a task feeding the OR-join, which leaves it waiting for good when the last
task that could have fed it completes elsewhere. One limit stays: an XOR- or OR-join's start
here takes a token from every input (spec 7.2) while the analysis lets it take one, so the
analysis may see tokens that cannot come, and the OR-join waits longer than it need.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Mapping
from weakref import WeakKeyDictionary

import msgspec

from cronflow_actors.net.spec import JoinType, NetSpec, SplitType

__all__ = ["ResetNet", "ResetTransition", "is_or_join_enabled", "reset_net_for"]

Marking = dict[str, int]

FORWARD_STATES = 20_000
"""Markings reachable from the current one that a question walks forwards first (module
docstring, 4.): a witness along a chain of tasks takes the backward search a basis that grows
with every task of it (100 tasks before an OR-join: 2.5 s on the loop, 200: 30 s and a lost
lease: conform h36 F1), and a forward walk one marking a step."""


class ResetTransition(msgspec.Struct, frozen=True):
    name: str
    pre: Mapping[str, int]
    post: Mapping[str, int]
    reset: frozenset[str] = frozenset()


def _task_place(task: str) -> str:
    return f"task:{task}"


def _free_place(task: str) -> str:
    return f"free:{task}"


def _armed_place(task: str) -> str:
    return f"armed:{task}"


class ResetNet:
    """The reset net of a NetSpec, seen from one OR-join (whose start transitions are left out)."""

    def __init__(
        self,
        transitions: list[ResetTransition],
        one_run: tuple[tuple[str, str], ...] = (),
        armed: frozenset[str] = frozenset(),
    ) -> None:
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

    @classmethod
    def of(
        cls, spec: NetSpec, or_join: str, *, one_run_per_task: bool = True, armed: bool = True
    ) -> ResetNet:
        """``armed``: with the ``armed:t`` places (module docstring); without, a task may start
        whenever its inputs hold tokens (as good while no task is canceled or failed, and a
        smaller search: up to four times faster)."""
        transitions: list[ResetTransition] = []
        arming = (
            frozenset(t for t, d in spec.tasks.items() if d.join is not JoinType.OR)
            if one_run_per_task and armed
            else frozenset()
        )
        for task in spec.tasks.values():
            running = _task_place(task.name)
            free = {_free_place(task.name): 1} if one_run_per_task else {}
            if task.name in arming:
                free[_armed_place(task.name)] = 1  # (taken by its start, with its free place)
            if task.name != or_join:
                if task.join is JoinType.AND:
                    transitions.append(
                        ResetTransition(
                            f"{task.name}:start",
                            {c: 1 for c in task.inputs} | free,
                            {running: 1},
                        )
                    )
                else:  # XOR, and other OR-joins treated optimistically as XOR
                    transitions.extend(
                        ResetTransition(f"{task.name}:start:{c}", {c: 1} | free, {running: 1})
                        for c in task.inputs
                    )
            reset = frozenset(task.cancel_conditions) | {_task_place(t) for t in task.cancel_tasks}
            # Cancelling a task frees it: reset its free place too, then give one token back.
            released = {_free_place(t): 1 for t in task.cancel_tasks} if one_run_per_task else {}
            reset |= set(released)
            # ... and disarms it; then the engine asks each task after this one's outputs, and
            # this one again (``marking.enable_candidates``): armed, once
            reset |= {_armed_place(t) for t in task.cancel_tasks if t in arming}
            after = {t for c in task.outputs for t in spec.conditions[c].outputs} | {task.name}
            asked = {_armed_place(t): 1 for t in after if t in arming}
            reset |= set(asked)
            released |= asked
            if task.split is SplitType.AND:
                output_sets: Iterable[tuple[str, ...]] = [task.outputs]
            elif task.split is SplitType.XOR:
                output_sets = [(c,) for c in task.outputs]
            else:
                output_sets = (
                    subset
                    for size in range(1, len(task.outputs) + 1)
                    for subset in itertools.combinations(task.outputs, size)
                )
            for outputs in output_sets:
                transitions.append(
                    ResetTransition(
                        f"{task.name}:end:{'+'.join(outputs)}",
                        {running: 1},
                        {c: 1 for c in outputs} | free | released,
                        reset,
                    )
                )
        pairs = (
            tuple((_task_place(t), _free_place(t)) for t in spec.tasks) if one_run_per_task else ()
        )
        return cls(transitions, pairs, arming)

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
        ) and all(marking.get(_armed_place(t), 0) <= 1 for t in self.armed)

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
        (``forward``), then searched backwards if the walk could not tell (the transitions that
        can fire from ``marking`` are worked out once for all of them)."""
        targets = list(targets)
        if forward:
            walked = self._walk(targets, marking)
            if walked is not None:
                return walked
        fireable: set[int] | None = None
        for target in targets:
            if _covers(marking, target):
                return True
            if not self._possible(target):
                continue
            if fireable is None:
                fireable = self._fireable(marking)
            if self._search(target, marking, fireable):
                return True
        return False

    def _walk(self, targets: list[Mapping[str, int]], marking: Mapping[str, int]) -> bool | None:
        """Whether a marking reachable from ``marking`` covers one of ``targets``, walking them
        depth first; None when they are more than ``FORWARD_STATES``. Each marking is kept as
        what differs from ``marking`` (most places, a task's free and armed ones among them,
        keep their count along a chain: copied whole, a chain of n tasks cost n^2: review h36
        F2)."""
        base = {place: count for place, count in marking.items() if count > 0}
        takers, anyway = self._takers, self._takers.get("", ())
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
                    if len(seen) >= FORWARD_STATES:
                        return None
                    seen.add(key)
                    todo.append(after)
        return False

    def _search(
        self, target: Mapping[str, int], marking: Mapping[str, int], fireable: set[int]
    ) -> bool:
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
                    before = self._predecessor(current, transition)
                    if before is None or not self._possible(before):
                        continue
                    if _covers(marking, before):
                        return True
                    if any(_covers(before, known) for known in basis):
                        continue
                    basis = [known for known in basis if not _covers(known, before)]
                    basis.append(before)
                    frontier.append(before)
        return False


def _put(state: Marking, base: Mapping[str, int], place: str, count: int) -> None:
    """``place`` holds ``count`` in ``state``, a marking kept as what differs from ``base``."""
    if count == base.get(place, 0):
        state.pop(place, None)
    else:
        state[place] = count


def _covers(bigger: Mapping[str, int], smaller: Mapping[str, int]) -> bool:
    return all(bigger.get(place, 0) >= count for place, count in smaller.items())


_NETS: WeakKeyDictionary[NetSpec, dict[tuple[str, bool], ResetNet]] = WeakKeyDictionary()


def reset_net_for(spec: NetSpec, or_join: str, armed: bool = True) -> ResetNet:
    """The reset net of ``spec`` for ``or_join`` (``armed``: with the ``armed:t`` places),
    built once per spec, OR-join and kind."""
    per_spec = _NETS.setdefault(spec, {})
    net = per_spec.get((or_join, armed))
    if net is None:
        net = per_spec[or_join, armed] = ResetNet.of(spec, or_join, armed=armed)
    return net


def is_or_join_enabled(
    spec: NetSpec,
    task: str,
    marking: Mapping[str, int],
    started: Iterable[str],
    idle: Iterable[str] = (),
) -> bool:
    """Whether the OR-join ``task`` may be enabled now.

    ``marking`` maps condition names to token counts; ``started`` names the tasks that are
    running; ``idle`` those that cannot start on the tokens they hold until a task before them
    completes (canceled or failed, and not about to be asked). True when at least one input is
    marked and no empty input can still be marked while the marked inputs keep their tokens.
    """
    inputs = spec.tasks[task].inputs
    marked = [c for c in inputs if marking.get(c, 0) > 0]
    if not marked:
        return False
    empty = [c for c in inputs if marking.get(c, 0) <= 0]
    if not empty:
        return True
    current: Marking = {c: n for c, n in marking.items() if n > 0}
    running, waiting = set(started), set(idle)
    # the armed places only while some task is idle: a region's cancel that makes one later is
    # a completion, after which every OR-join is asked again, with it idle
    net = reset_net_for(spec, task, armed=bool(waiting))
    for name in spec.tasks:
        current[_task_place(name) if name in running else _free_place(name)] = 1
        if name in net.armed and name not in running and name not in waiting:
            current[_armed_place(name)] = 1
    base = dict.fromkeys(marked, 1)
    return not net.any_coverable((base | {q: 1} for q in empty), current)
