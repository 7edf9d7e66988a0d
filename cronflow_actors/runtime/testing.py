"""``flow.test()``: a harness that runs a flow on the real engine, on an in-memory store and a
manual clock that jumps to the next timer whenever the run waits for one (sleeps, delays,
retries and timeouts take no real time), and follows the real clock while a handler runs (a
timeout a handler overruns fires after its time, as in production).

    result = await (
        flow.test()
        .trigger({"order": 7})
        .mock_step("charge", lambda ctx: {"charged": True})
        .expect_step("charge").to_succeed()
        .expect_step("notify").to_fail_with("SMTP")
        .run()
    )
    assert result.status == "completed"

Branches, ``parallel``, actions, subflows and retries behave as in production (it is the same
engine). A pause is answered with ``.resume(step, payload)``, an awaited event with
``.emit(name, payload)``; a run still waiting for either when nothing else can happen ends the
test with status ``waiting``. ``run()`` raises ``ExpectationError`` (an ``AssertionError``)
listing every expectation the run did not meet.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any, Self

import msgspec

from cronflow_actors.engine.actors import decode_state
from cronflow_actors.engine.states import FINAL_STATES, WorkItemState
from cronflow_actors.errors import ConfigurationError, ExpectationError
from cronflow_actors.flow.builder import Flow, use_test_harness
from cronflow_actors.flow.trigger_methods import without_triggers
from cronflow_actors.kernel import ManualClock
from cronflow_actors.net.durations import parse_duration
from cronflow_actors.runtime.runtime import Runtime

__all__ = ["ExpectationError", "FlowTest", "StepExpectation", "StepResult", "TestResult"]

_CENTURY = 100 * 365 * 86400.0


class StepResult(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: str
    status: str
    output: Any = None
    error: str | None = None
    attempts: int = 0
    retry_delays: list[float] = msgspec.field(default_factory=list)
    """Seconds waited before each retry (on the test's clock)."""
    duration: float | None = None
    """Seconds from the start of the step's last attempt to its end, on the test's clock (None:
    it did not end); the delays before its retries are ``retry_delays``."""


class TestResult(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    status: str
    output: Any = None
    error: str | None = None
    steps: list[StepResult] = msgspec.field(default_factory=list)
    duration: float = 0.0
    """Real seconds the test took."""
    clock_seconds: float = 0.0
    """Seconds that passed on the run's clock (sleeps, delays, retries)."""

    __test__ = False  # not a pytest test class

    def step(self, id: str) -> StepResult:
        for step in self.steps:
            if step.id == id:
                return step
        ran = [s.id for s in self.steps]
        raise KeyError(f"step {id!r} did not run (steps that ran: {ran})")


class StepExpectation:
    def __init__(self, test: FlowTest, step: str) -> None:
        self._test = test
        self._step = step

    def to_succeed(self) -> FlowTest:
        return self._test._expect(self._step, "completed", None)

    def to_fail(self) -> FlowTest:
        return self._test._expect(self._step, "failed", None)

    def to_fail_with(self, text: str) -> FlowTest:
        """The step fails, and its error holds ``text``."""
        return self._test._expect(self._step, "failed", text)


class FlowTest:
    """Built by ``flow.test()``; chain ``trigger``, ``mock_step``, ``expect_step``,
    ``resume``, ``emit``, ``with_flows``, then ``await run()``."""

    __test__ = False

    def __init__(self, flow: Flow) -> None:
        self._flow = flow
        self._payload: Any = None
        self._headers: dict[str, str] = {}
        self._mocks: dict[str, Callable[..., Any]] = {}
        self._expected: list[tuple[str, str, str | None]] = []
        self._answers: dict[str, Any] = {}
        self._events: list[tuple[str, Any]] = []
        self._others: list[Flow] = []

    def trigger(self, payload: Any = None, *, headers: dict[str, str] | None = None) -> Self:
        self._payload = payload
        self._headers = dict(headers or {})
        return self

    def mock_step(self, step: str, fn: Callable[..., Any]) -> Self:
        """Run ``fn`` instead of the step's function (it takes what the step's takes)."""
        self._mocks[step] = fn
        return self

    def expect_step(self, step: str) -> StepExpectation:
        return StepExpectation(self, step)

    def resume(self, step: str, payload: Any = None) -> Self:
        """Answer the pause of ``step`` (a ``human_in_the_loop`` or ``pause``) with ``payload``."""
        self._answers[step] = payload
        return self

    def emit(self, event: str, payload: Any = None) -> Self:
        """Publish ``event`` once the run waits for it."""
        self._events.append((event, payload))
        return self

    def with_flows(self, *flows: Flow) -> Self:
        """Register other flows too (the subflows this one names by id)."""
        self._others.extend(flows)
        return self

    def _expect(self, step: str, status: str, text: str | None) -> Self:
        self._expected.append((step, status, text))
        return self

    async def run(self, *, within: float = 60.0, horizon: float | str = "365d") -> TestResult:
        """Run the flow to its end (or until it waits for something the test does not give),
        then check the expectations. ``within``: real seconds it may take (a function that
        never returns would hang the test otherwise); ``horizon``: how far the test's clock
        may jump ahead (a run still waiting then ends the test as ``waiting``)."""
        limit = parse_duration(horizon, "horizon")
        began = time.perf_counter()
        clock = ManualClock()
        start = clock.now()
        flows = [_without_triggers(f) for f in (*self._others, self._flow)]
        runtime = Runtime(
            ":memory:", clock=clock, workflows=flows, retention=0, lease_seconds=_CENTURY
        )
        async with runtime as rt:
            try:
                run_id = await rt.replays.trigger(
                    self._flow.id, self._payload, mock_steps=self._mocks, headers=self._headers
                )
            except ConfigurationError as refused:  # named as this test gave it: mock_step()
                if not refused.setting.startswith("mock_steps"):
                    raise
                raise ConfigurationError("mock_step", refused.value, refused.expected) from None
            driven = self._drive(rt, clock, run_id, start + limit)
            unused = await asyncio.wait_for(driven, within)
            info = await rt.inspect(run_id)
            journal = await rt.store.load_journal(run_id)
        by_item: dict[str, list[Any]] = {}
        for entry in journal:
            by_item.setdefault(entry.work_item_id, []).append(entry)
        delays: dict[str, list[float]] = {}
        for entries in by_item.values():
            # on the test's clock a handler takes no time: between two attempts' records
            # lies exactly the delay before the retry
            times = [e.recorded_at for e in sorted(entries, key=lambda e: e.attempt)]
            if len(times) > 1:
                delays[entries[0].step_id or ""] = [b - a for a, b in itertools.pairwise(times)]
        result = TestResult(
            run_id=run_id,
            status=str(info.status),
            output=info.output,
            error=info.error,
            steps=[
                StepResult(
                    id=s.id,
                    kind=s.kind,
                    status=str(s.status),  # one kind of value, whatever the step's kind
                    output=s.output,
                    error=s.error,
                    attempts=s.attempts,
                    retry_delays=delays.get(s.id, []),
                    duration=(
                        None
                        if s.finished_at is None or s.started_at is None
                        else s.finished_at - s.started_at
                    ),
                )
                for s in info.steps
            ],
            duration=time.perf_counter() - began,
            clock_seconds=clock.now() - start,
        )
        unmet = [*unused, *self._unmet(result)]
        if unmet:
            raise ExpectationError(unmet, result)
        return result

    async def _drive(self, rt: Runtime, clock: ManualClock, run_id: str, until: float) -> list[str]:
        """Answer the run's pauses and waits as the test says until it ends or waits for
        something the test does not give; what the test gave that nothing took, said as unmet
        expectations (a ``resume`` of a step that never paused, a misspelt one, would have
        been ignored, the run going on as if nobody had answered)."""
        answered: set[str] = set()
        events = list(self._events)
        resumed: set[str] = set()
        unheard: list[str] = []
        while True:
            await _idle(rt, clock, until)
            info = await rt.inspect(run_id)
            if info.status in FINAL_STATES:
                return _unused(self._answers, resumed, events, unheard, info.steps)
            moved = False
            for pause in await rt.list_paused(limit=1000):
                ours = pause.run_id == run_id and pause.step in self._answers
                if ours and pause.token not in answered:
                    answered.add(pause.token)
                    resumed.add(pause.step)
                    await rt.resume(pause.token, self._answers[pause.step])
                    moved = True
            if events and await _waits_for_an_event(rt, run_id):
                name, payload = events.pop(0)
                if run_id not in (await rt.publish_event(name, payload)).delivered:
                    unheard.append(name)
                moved = True
            if moved:
                continue
            due = clock.next_deadline()
            if due is None or due > until:
                # waits for something the test does not give: the result says waiting
                return _unused(self._answers, resumed, events, unheard, info.steps)
            clock.set(due)

    def _no_step(self, step: str) -> str | None:
        """What is wrong with expecting ``step``, when the flow has no step of that id."""
        try:
            self._flow.get_step(step)
        except KeyError as unknown:
            return f"step {step!r} was expected, but {unknown.args[0]}"
        return None

    def _unmet(self, result: TestResult) -> list[str]:
        unmet = []
        steps = {s.id: s for s in result.steps}
        for step, status, text in self._expected:
            found = steps.get(step)
            if found is None and (missing := self._no_step(step)):
                unmet.append(missing)  # a misspelt id, said so (newcomer h38 F7)
            elif found is None:
                unmet.append(
                    f"step {step!r} was expected to end {status} but never ran: "
                    f"{_where_it_stopped(result)}"
                )
            elif found.status != status:
                detail = f" ({found.error})" if found.error else ""
                unmet.append(
                    f"step {step!r} was expected to end {status}, it ended {found.status}{detail}"
                )
            elif text is not None and text not in (found.error or ""):
                unmet.append(
                    f"step {step!r} failed with {found.error!r}, which does not hold {text!r}"
                )
        return unmet


def _unused(
    answers: dict[str, Any],
    resumed: set[str],
    events: list[tuple[str, Any]],
    unheard: list[str],
    steps: Any,
) -> list[str]:
    """What a test gave that its run never took, each said with what did come."""
    paused = sorted(s.id for s in steps if s.kind in ("human", "pause"))
    failed = {s.id: s.error for s in steps if s.status == "failed"}
    unused = [
        f"resume({step!r}) was given, but pause {step!r} failed before it opened: {failed[step]}"
        if step in failed  # (it read as if no such pause existed: conform h39 F6)
        else f"resume({step!r}) was given, but no pause of step {step!r} came (the run's pause "
        f"steps: {paused})"
        for step in answers
        if step not in resumed
    ]
    waited = sorted(s.id for s in steps if s.kind == "event")
    unused.extend(
        f"emit({event!r}) was given, but the run did not wait for it (its wait_for_event "
        f"steps: {waited})"
        for event, _ in events
    )
    unused.extend(
        f"emit({event!r}) was published while the run waited, but no step of it took the "
        f"event (its wait_for_event steps: {waited}; another name, or a filter that refused it)"
        for event in unheard
    )
    return unused


async def _idle(rt: Runtime, clock: ManualClock, until: float) -> None:
    """Until nothing runs. While handlers run (they take real time), the test's clock jumps to
    its next deadline once that much real time has passed, so a ``parallel``'s or ``race``'s
    timeout they overrun fires as it would in production (a step's timeout is real time
    anyway); once nothing runs, ``_drive`` jumps it at once. A deadline armed while it waits
    (a group that starts after a step) is seen within ``_LOOK``: read once, a group after a
    step waited for its slowest function (newcomer h35 F2)."""
    idle = asyncio.ensure_future(rt.wait_idle())
    reached: dict[float, float] = {}  # a deadline -> when, in real time, it is reached
    try:
        while True:
            due = clock.next_deadline()
            left = _LOOK
            if due is not None and due <= until:
                at = reached.setdefault(due, time.monotonic() + max(due - clock.now(), 0.0))
                left = min(max(at - time.monotonic(), 0.0), _LOOK)
            done, _pending = await asyncio.wait({idle}, timeout=left)
            if done:
                return
            if due is not None and due <= until and time.monotonic() >= reached[due]:
                clock.set(due)
    finally:
        idle.cancel()


_LOOK = 0.05
"""How often ``_idle`` looks for a deadline armed meanwhile (seconds of real time)."""


def _without_triggers(flow: Flow) -> Flow:
    """A copy of the flow that only the test starts (no schedules, polls or listeners)."""
    if not isinstance(flow, Flow):
        raise ConfigurationError("flow", flow, "a cf.define(...) flow")
    return without_triggers(flow)


def _harness(flow: Flow) -> FlowTest:
    return FlowTest(flow)


use_test_harness(_harness)


async def _waits_for_an_event(rt: Runtime, run_id: str) -> bool:
    """Whether a step of the run waits for an event: one of its own, or of a subflow's or a
    per-item flow's (their work items are the run's, in its one snapshot)."""
    state = decode_state((await rt.instances.read(run_id)).body, run_id)
    return any(
        item.kind == "event" and item.state == WorkItemState.STARTED
        for item in state.work_items.values()
    )


def _where_it_stopped(result: TestResult) -> str:
    """Why a step never ran: where the run ended (or waits) before it got there."""
    failed = [s for s in result.steps if s.status == "failed"]
    if result.status == "failed" and failed:
        return f"the run failed at step {failed[-1].id!r} ({failed[-1].error})"
    if result.status == "waiting":
        waiting = [s.id for s in result.steps if s.status not in ("completed", "failed")]
        at = f" at step {waiting[-1]!r}" if waiting else ""
        return (
            f"the run still waits{at} (give it what it waits for: .resume(), .emit(), or a "
            "longer run(horizon=))"
        )
    return f"the run ended {result.status} without it (a branch not taken?)"
