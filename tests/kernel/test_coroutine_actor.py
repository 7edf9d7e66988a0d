"""A CoroutineActor awaits in its handler and still takes one message at a time, from one mailbox:
an ask resolves to the handler's result, and mailbox_depth counts what waits behind it."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pykka
import pytest

from cronflow_actors.kernel import ActorSystem, CoroutineActor, LoopActor, LoopFuture
from cronflow_actors.messages import ChildFailed


class Query:
    """A message answered at once."""


class Serial(CoroutineActor):
    """Handles each message by awaiting a gate, so a test decides when each one finishes."""

    queries = frozenset({Query})

    def __init__(self, log: list[Any]) -> None:
        super().__init__()
        self.log = log
        self.running = 0
        self.most_running = 0
        self.gates: dict[Any, asyncio.Event] = {}
        self.begun: dict[Any, asyncio.Event] = {}
        self.idle = 0

    def gate(self, message: Any) -> asyncio.Event:
        return self.gates.setdefault(message, asyncio.Event())

    async def began(self, message: Any) -> None:
        """Wait until the handler of ``message`` has begun."""
        await self.begun.setdefault(message, asyncio.Event()).wait()

    async def handle(self, message: Any) -> Any:
        if isinstance(message, ChildFailed):
            self.log.append(("child failed", message.error_message))
            return None
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        self.log.append(("begin", message))
        self.begun.setdefault(message, asyncio.Event()).set()
        try:
            if message != "quick":
                await self.gate(message).wait()
            if message == "boom":
                raise ValueError("boom in handle")
            return f"done {message}"
        finally:
            self.log.append(("end", message))
            self.running -= 1

    def on_query(self, message: Any) -> Any:
        return ("running", self.running, "waiting", self.mailbox_depth)

    def on_idle(self) -> None:
        self.idle += 1


def actor_of(ref: pykka.ActorRef[Any]) -> Any:
    return ref._actor_weakref()


async def test_ask_resolves_to_the_handlers_result_with_one_await(system: ActorSystem) -> None:
    ref = system.spawn(Serial, [])
    actor = actor_of(ref)
    asked = cast("LoopFuture[str]", ref.ask("a", block=False))
    await actor.began("a")
    assert not asked.done()  # the handler awaits its gate: no answer yet
    actor.gate("a").set()
    assert await asked == "done a"


async def test_messages_are_handled_in_order_one_at_a_time(system: ActorSystem) -> None:
    log: list[Any] = []
    ref = system.spawn(Serial, log)
    actor = actor_of(ref)
    asks = [ref.ask(n, block=False) for n in range(5)]
    ref.tell("quick")
    for n in reversed(range(5)):  # opened last to first: still handled first to last
        actor.gate(n).set()
    assert [await a for a in asks] == [f"done {n}" for n in range(5)]
    await system.wait_idle()
    assert actor.most_running == 1
    assert log == [(step, m) for m in [*range(5), "quick"] for step in ("begin", "end")]


async def test_mailbox_depth_counts_the_messages_waiting_behind_a_handler(
    system: ActorSystem,
) -> None:
    ref = system.spawn(Serial, [])
    actor = actor_of(ref)
    asks = [ref.ask(n, block=False) for n in range(4)]
    await actor.began(0)
    assert actor.running == 1
    assert actor.mailbox_depth == 3
    assert system.actor_counts() == {"Serial": (1, 3)}
    actor.gate(0).set()
    actor.gate(1).set()
    assert await asks[1] == "done 1"
    assert actor.mailbox_depth == 1
    for n in (2, 3):
        actor.gate(n).set()
    await asyncio.gather(*(a for a in asks))
    assert actor.mailbox_depth == 0
    assert actor.idle == 1  # one busy period, one idle call at its end


async def test_a_query_is_answered_at_once_while_a_handler_awaits(system: ActorSystem) -> None:
    ref = system.spawn(Serial, [])
    actor = actor_of(ref)
    first = ref.ask("a", block=False)
    ref.tell("b")
    await actor.began("a")
    assert await ref.ask(Query(), block=False) == ("running", 1, "waiting", 1)
    actor.gate("a").set()
    actor.gate("b").set()
    assert await first == "done a"


async def test_an_error_reaches_the_asker_and_the_actor_goes_on(system: ActorSystem) -> None:
    ref = system.spawn(Serial, [])
    actor = actor_of(ref)
    failing = ref.ask("boom", block=False)
    after = ref.ask("quick", block=False)
    actor.gate("boom").set()
    with pytest.raises(ValueError, match="boom in handle"):
        await failing
    assert await after == "done quick"
    assert ref.is_alive()


class Parent(LoopActor):
    def __init__(self, log: list[Any]) -> None:
        super().__init__()
        self.log = log

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ChildFailed):
            self.log.append(message.error_message)
        return None


async def test_a_told_message_whose_handler_raises_fails_the_actor(system: ActorSystem) -> None:
    log: list[Any] = []
    parent = system.spawn(Parent, log)
    ref = system.spawn(Serial, [], parent=parent)
    actor_of(ref).gate("boom").set()
    ref.tell("boom")
    waiting = ref.ask("quick", block=False)
    with pytest.raises(pykka.ActorDeadError):
        await waiting
    await system.wait_idle()
    assert not ref.is_alive()
    assert log == ["boom in handle"]


async def test_stop_waits_for_the_backlog_and_refuses_what_comes_after(
    system: ActorSystem,
) -> None:
    log: list[Any] = []
    ref = system.spawn(Serial, log)
    actor = actor_of(ref)
    asks = [ref.ask(n, block=False) for n in range(3)]
    stopped = ref.stop(block=False)
    late = ref.ask("quick", block=False)
    for n in range(3):
        actor.gate(n).set()
    assert [await a for a in asks] == ["done 0", "done 1", "done 2"]
    assert await stopped is True
    with pytest.raises(pykka.ActorDeadError):
        await late
    assert not ref.is_alive()
    assert len(system) == 0


class Stopper(Serial):
    """Stops itself at once after its first message."""

    async def handle(self, message: Any) -> Any:
        result = await super().handle(message)
        self.stop_now()
        return result


async def test_stop_now_in_a_handler_answers_it_and_refuses_the_backlog(
    system: ActorSystem,
) -> None:
    ref = system.spawn(Stopper, [])
    actor = actor_of(ref)
    asks = [ref.ask(n, block=False) for n in range(3)]
    actor.gate(0).set()
    assert await asks[0] == "done 0"
    for asked in asks[1:]:
        with pytest.raises(pykka.ActorDeadError):
            await asked
    await system.wait_idle()
    assert len(system) == 0
    assert system.busy == 0


async def test_a_stop_from_outside_the_turn_cancels_the_handler_in_progress(
    system: ActorSystem,
) -> None:
    log: list[Any] = []
    ref = system.spawn(Serial, log)
    asks = [ref.ask(n, block=False) for n in range(2)]
    await actor_of(ref).began(0)
    actor_of(ref).stop_now()  # e.g. from one of its own tasks
    for asked in asks:
        with pytest.raises(pykka.ActorDeadError):
            await asked
    await system.wait_idle()
    assert log == [("begin", 0), ("end", 0)]
    assert system.busy == 0


async def test_killing_answers_the_handler_in_progress_and_the_backlog() -> None:
    system = ActorSystem("impatient")
    await system.__aenter__()
    ref = system.spawn(Serial, [])
    asks = [ref.ask(n, block=False) for n in range(3)]
    await actor_of(ref).began(0)
    await system.stop(grace_period=0.01)  # the gates never open
    for asked in asks:
        with pytest.raises(pykka.ActorDeadError):
            await asked
    assert system.busy == 0


async def test_tell_self_first_jumps_the_queue(system: ActorSystem) -> None:
    log: list[Any] = []

    class Recovering(Serial):
        def on_start(self) -> None:
            self.tell_self_first("quick")

    ref = system.spawn(Recovering, log)
    ref.tell("quick-2")
    actor_of(ref).gate("quick-2").set()
    await system.wait_idle()
    assert [m for step, m in log if step == "begin"] == ["quick", "quick-2"]


async def test_proxies_and_children_work_as_for_a_loop_actor(system: ActorSystem) -> None:
    log: list[Any] = []
    ref = system.spawn(Serial, log)
    assert await ref.proxy().running == 0
    child = system.spawn(Serial, [], parent=ref)
    child.tell("boom")
    actor_of(child).gate("boom").set()
    await system.wait_idle()
    assert log == [("child failed", "boom in handle")]


class Expecting(Serial):
    """Keeps its turn while ``expecting`` is set: it waits for the next message."""

    expecting = True

    def keeps_turn(self) -> bool:
        return self.expecting


async def test_a_kept_turn_takes_the_next_message_without_a_new_task(
    system: ActorSystem,
) -> None:
    log: list[Any] = []
    ref = system.spawn(Expecting, log)
    actor = actor_of(ref)
    assert await ref.ask("quick", block=False) == "done quick"
    turn = actor._turn
    assert turn is not None
    assert not turn.done()  # waiting, not ended
    await system.wait_idle()  # a waiting turn is no work in flight
    assert system.busy == 0
    assert await ref.ask("quick", block=False) == "done quick"
    assert actor._turn is turn  # the same task took it
    assert actor.idle == 2  # on_idle ran after each message, as with a turn that ends
    actor.expecting = False
    assert await ref.ask("quick", block=False) == "done quick"
    await system.wait_idle()
    assert actor._turn is None
    assert turn.done()  # it ended once not kept
    assert system.busy == 0


async def test_wait_idle_waits_for_a_message_that_woke_a_kept_turn(system: ActorSystem) -> None:
    ref = system.spawn(Expecting, [])
    actor = actor_of(ref)
    assert await ref.ask("quick", block=False) == "done quick"
    await system.wait_idle()
    ref.tell("slow")  # wakes the waiting turn: counted from here, not from when it resumes
    assert system.busy == 1
    idle = asyncio.ensure_future(system.wait_idle())
    await actor.began("slow")
    for _ in range(10):  # rounds of the loop: the wait may not end while the handler awaits
        await asyncio.sleep(0)
    assert not idle.done()
    actor.gate("slow").set()
    await asyncio.wait_for(idle, 1)
    assert system.busy == 0


async def test_a_kept_turn_ends_with_a_stop_of_either_kind(system: ActorSystem) -> None:
    log: list[Any] = []
    by_message = system.spawn(Expecting, log)
    assert await by_message.ask("quick", block=False) == "done quick"
    turn = actor_of(by_message)._turn
    assert await by_message.stop(block=False) is True  # a stop message wakes the turn
    with pytest.raises(pykka.ActorDeadError):
        await by_message.ask("quick", block=False)
    at_once = system.spawn(Expecting, log)
    assert await at_once.ask("quick", block=False) == "done quick"
    other_turn = actor_of(at_once)._turn
    actor_of(at_once).stop_now()  # from outside the turn: it is cancelled as it waits
    await system.wait_idle()
    assert turn is not None
    assert turn.done()
    assert other_turn is not None
    assert other_turn.done()
    assert not at_once.is_alive()
    assert len(system) == 0
    assert system.busy == 0


async def test_a_message_behind_a_query_still_wakes_a_kept_turn(system: ActorSystem) -> None:
    ref = system.spawn(Expecting, [])
    assert await ref.ask("quick", block=False) == "done quick"
    await system.wait_idle()
    query = ref.ask(Query(), block=False)  # schedules a drain for the query lane
    told = ref.ask("quick", block=False)  # arrives while that drain is due: it wakes nothing

    async def answer() -> Any:
        return await told

    assert await query == ("running", 0, "waiting", 1)
    assert await asyncio.wait_for(answer(), 1) == "done quick"  # the drain woke the turn


async def test_a_keeps_turn_that_raises_fails_the_actor_as_on_idle_would(
    system: ActorSystem,
) -> None:
    class Broken(Serial):
        def keeps_turn(self) -> bool:
            raise RuntimeError("keeps_turn broke")

    log: list[Any] = []
    ref = system.spawn(Broken, log)
    assert await ref.ask("quick", block=False) == "done quick"
    await system.wait_idle()
    assert not ref.is_alive()  # its turn died with the error, the actor stayed alive
    assert system.busy == 0
