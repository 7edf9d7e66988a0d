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
   output), one per output for an XOR-split, and for an OR-split the one that marks every output.
   YAWL gives it one per non-empty subset of outputs, but a reset net is monotone (a transition
   that can fire on some tokens can on more, and leaves as many more), and the end with every
   output takes what any subset's takes, resets the same places and gives a superset: whatever
   a subset's end lets a later marking cover, the full end does too, so coverability, all the
   OR-join asks, gets the same answer without the 2^k transitions.
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
   search. Both are exact; the walk finds a witness along a long chain in as many steps, where
   the backward search's basis grows with every task of it. The walk takes the transitions
   nearest an input of the OR-join first (in the net's graph), so a witness is mostly found
   in a straight line. Before it, one line of steps is tried, each the transition nearest an
   input the question lacks (``coverability.ResetSearch._probe``): it finds a witness down one
   of many parallel branches, where the walk counts each step's other branches too. The walk
   goes through ``FIRST_STATES`` markings, then the backward search
   through ``FIRST_WORK`` steps (it sees a join that can never fire at once, where the walk
   first goes through every order its other branches can run in), then the walk again, to
   ``FORWARD_STATES`` (``coverability.ResetSearch.decide``).
5. Both see only the OR-join's cone: the transitions that can, in some steps, put a token on
   one of its inputs (and the places they take from). Another transition only takes or resets
   tokens of the cone's places, never gives them one, so leaving it out of a run keeps as many
   tokens in the cone and the run's end covers as much: the answer is the same, and tasks that
   run beside the OR-join without leading to it no longer multiply the markings to walk (nine
   manual tasks in parallel with it took the search 2 s, 150 tasks more 7.5 s: retest h36 R1).
6. The backward search drops a marking that needs a token on a place no token can reach (a
   join's input whose branch cannot run): it holds no witness, whatever else it needs. Whether
   a place is out of reach is a backward search of its own, for a token there alone, asked of
   the places a marking needs and M lacks when they are two or more (the target's, always),
   once a backward search, to ``MOST_NESTED`` levels, its steps counted in the question's.
   Without it a join of k branches that can all run and one that cannot made the basis hold
   every combination of the k branches' steps (eight held the loop for minutes).
7. The search is bounded (``BACKWARD_WORK`` steps, ``FORWARD_STATES`` markings). Past both the
   question is left undecided and the OR-join waits, with a warning in the log: it is asked
   again after the next completion of its net, when fewer tasks are left to run, and a net
   whose tasks all wait (for people, say) has few markings to search. This may wait where the
   exact answer would not; unbounded, one question held the event loop for minutes (3,000
   tasks before an OR-join did, and the process lost its lease: retest h36 R1). The bounds are
   steps, not time, so the machine's speed or load does not change an answer. An OR-join's
   net keeps its latest answers by the marking of the cone they were given for
   (``coverability.ANSWERS``): the same question, asked again after a completion outside the
   cone, is answered without a search (an undecided one took the whole bound again each time).

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
and an OR-join after it waited for good (h24's conformance audit). Other OR-joins have one
too: one of two or more inputs is asked after every completion that leaves one of its inputs
marked (``marking.enable_candidates``), unless it is canceled or failed, and then, as any
task, only by a completion before it (a region's cancel of one was undone at once by the same
completion: conform h37 F3); one of one input only by a completion before it (without the
place, a canceled one kept its token and an OR-join after it waited for it for good: retest
h37 F1).

Re-evaluation happens when any task of its net completes (the engine asks then): Tasquencer and
YAWL ask only after a task feeding the OR-join, which leaves it waiting for good when the last
task that could have fed it completes elsewhere. One limit stays: an XOR- or OR-join's start
here takes a token from every input (spec 7.2) while the analysis lets it take one, so the
analysis may see tokens that cannot come, and the OR-join waits longer than it need. And two
OR-joins that feed each other (YAWL's "vicious circle") each wait for what the other may send:
neither fires, and the run is reported as one that can never move again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from weakref import WeakKeyDictionary

from cronflow_actors.net import coverability
from cronflow_actors.net.coverability import (
    Marking,
    ResetSearch,
    ResetTransition,
    armed_place,
    free_place,
    task_place,
)
from cronflow_actors.net.spec import JoinType, NetSpec, SplitType

__all__ = ["ResetNet", "ResetTransition", "is_or_join_enabled", "reset_net_for"]

logger = logging.getLogger(__name__)


class ResetNet(ResetSearch):
    """The reset net of a NetSpec, seen from one OR-join (whose start transitions are left out)."""

    @classmethod
    def of(
        cls,
        spec: NetSpec,
        or_join: str,
        *,
        one_run_per_task: bool = True,
        armed: bool = True,
        cone: bool = True,
    ) -> ResetNet:
        """``armed``: with the ``armed:t`` places (module docstring); without, a task may start
        whenever its inputs hold tokens (a smaller search, but not the engine's answer: a task
        a region cancels on the way would start again on its stale tokens). ``cone``: only the
        OR-join's cone (module docstring, 5.), which answers the same for markings of its
        inputs."""
        transitions: list[ResetTransition] = []
        arming = frozenset(spec.tasks) if one_run_per_task and armed else frozenset()
        for task in spec.tasks.values():
            running = task_place(task.name)
            free = {free_place(task.name): 1} if one_run_per_task else {}
            if task.name in arming:
                free[armed_place(task.name)] = 1  # (taken by its start, with its free place)
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
            reset = frozenset(task.cancel_conditions) | {task_place(t) for t in task.cancel_tasks}
            # Cancelling a task frees it: reset its free place too, then give one token back.
            released = {free_place(t): 1 for t in task.cancel_tasks} if one_run_per_task else {}
            reset |= set(released)
            # ... and disarms it; then the engine asks each task after this one's outputs, and
            # this one again (``marking.enable_candidates``): armed, once
            reset |= {armed_place(t) for t in task.cancel_tasks if t in arming}
            after = {t for c in task.outputs for t in spec.conditions[c].outputs} | {task.name}
            asked = {armed_place(t): 1 for t in after if t in arming}
            reset |= set(asked)
            released |= asked
            # an OR-split's end: the one with every output, whose tokens cover each subset's
            # (module docstring, 1.: the answer is the same; a transition per subset was 2^k
            # of them, and 20 outputs held the loop for 20 s and took 2.5 GB, net h44 F1)
            if task.split is SplitType.XOR:
                output_sets: Iterable[tuple[str, ...]] = [(c,) for c in task.outputs]
            else:
                output_sets = [task.outputs]
            for outputs in output_sets:
                transitions.append(
                    ResetTransition(
                        f"{task.name}:end:{'+'.join(outputs)}",
                        {running: 1},
                        {c: 1 for c in outputs} | free | released,
                        reset,
                    )
                )
        if cone:
            transitions = _cone(transitions, spec.tasks[or_join].inputs)
        places = {place for t in transitions for place in (*t.pre, *t.post)}
        pairs = (
            tuple(
                (task_place(t), free_place(t))
                for t in spec.tasks
                if task_place(t) in places or free_place(t) in places
            )
            if one_run_per_task
            else ()
        )
        arming = frozenset(t for t in arming if armed_place(t) in places)
        net = cls(transitions, pairs, arming, spec.tasks[or_join].inputs)
        net.tasks = tuple(t for t in spec.tasks if task_place(t) in places or t in arming)
        return net


def _cone(transitions: list[ResetTransition], inputs: Iterable[str]) -> list[ResetTransition]:
    """The transitions that can, in some steps, put a token on one of ``inputs`` (module
    docstring, 5.), in their order."""
    producers: dict[str, list[int]] = {}
    for index, transition in enumerate(transitions):
        for place in transition.post:
            producers.setdefault(place, []).append(index)
    kept: set[int] = set()
    places, todo = set(inputs), list(inputs)
    while todo:
        for index in producers.get(todo.pop(), ()):
            if index in kept:
                continue
            kept.add(index)
            for place in transitions[index].pre:
                if place not in places:
                    places.add(place)
                    todo.append(place)
    return [t for index, t in enumerate(transitions) if index in kept]


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
    running, waiting = set(started), set(idle)
    # the armed places always: left out while no task was idle, a witness could run through a
    # task a region cancels on the way and start it again on its stale tokens, and the OR-join
    # waited where it need not (conform h37's random nets, seeds 11/1525 and 11/10684)
    net = reset_net_for(spec, task)
    # the marking of the cone alone (module docstring, 5.): the net's other places take a
    # question's time, not its answer (5,000 tasks: 3 ms a question for a cone of six)
    places = net.places
    current: Marking = {c: n for c, n in marking.items() if n > 0 and c in places}
    for name in net.tasks:
        current[task_place(name) if name in running else free_place(name)] = 1
        if name in net.armed and name not in running and name not in waiting:
            current[armed_place(name)] = 1
    # the answer depends on the marking of the OR-join's cone alone (module docstring, 5.):
    # a question asked again after a completion elsewhere is answered as it was
    key = frozenset(current.items())
    if key in net.answers:
        return net.answers[key] is False
    base = dict.fromkeys(marked, 1)
    targets = [base | {q: 1} for q in empty]
    waits = net.decide(targets, current, work=coverability.BACKWARD_WORK)
    net.remember(key, waits)
    if waits is None:
        logger.warning(
            "the OR-join %r of %r waits undecided: its net has more markings to search than"
            " one question may take (%d walked forwards, %d steps back); it is asked again"
            " after the next completion in its net, with fewer tasks left to run",
            task,
            spec.name,
            coverability.FORWARD_STATES,
            coverability.BACKWARD_WORK,
        )
    return waits is False
