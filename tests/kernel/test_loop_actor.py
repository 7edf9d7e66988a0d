"""A LoopActor behaves as pykka documents its actors to behave."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pykka
import pytest
from pykka.messages import ProxySetAttr

from cronflow_actors.errors import ActorSystemNotRunningError, WouldBlockLoopError
from cronflow_actors.kernel import ActorSystem, BlockingWorker, LoopActor
from cronflow_actors.messages import ChildFailed, ChildStopped


class Recorder(LoopActor):
    def __init__(self, log: list[Any] | None = None) -> None:
        super().__init__()
        self.log: list[Any] = log if log is not None else []
        self.value = 0

    def on_start(self) -> None:
        self.log.append("start")

    def on_stop(self) -> None:
        self.log.append("stop")

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self.log.append(("failure", str(exception_value)))

    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("boom in handler")
        self.log.append(message)
        return f"got {message}"

    def add(self, amount: int) -> int:
        self.value += amount
        return self.value


async def test_tells_are_handled_in_order_after_on_start(system: ActorSystem) -> None:
    log: list[Any] = []
    ref = system.spawn(Recorder, log)
    for i in range(1000):
        ref.tell(i)
    await system.wait_idle()
    assert log == ["start", *range(1000)]


async def test_ask_returns_the_reply_and_is_awaitable(system: ActorSystem) -> None:
    ref = system.spawn(Recorder)
    assert await ref.ask("ping", block=False) == "got ping"


async def test_ask_exception_goes_to_the_caller_and_the_actor_lives_on(system: ActorSystem) -> None:
    log: list[Any] = []
    ref = system.spawn(Recorder, log)
    with pytest.raises(RuntimeError, match="boom in handler"):
        await ref.ask("boom", block=False)
    assert ref.is_alive()
    assert await ref.ask("after", block=False) == "got after"
    assert ("failure", "boom in handler") not in log


async def test_proxy_calls_and_attributes(system: ActorSystem) -> None:
    ref = system.spawn(Recorder)
    proxy = ref.proxy()
    assert await proxy.add(5) == 5
    assert await proxy.add(2) == 7
    assert await proxy.value == 7
    # pykka's proxy attribute assignment always blocks; on the loop it is refused before
    # anything is sent, so the actor's state is unchanged.
    with pytest.raises(WouldBlockLoopError):
        proxy.value = 100
    assert await proxy.value == 7
    await ref.ask(ProxySetAttr(attr_path=("value",), value=100), block=False)
    assert await proxy.value == 100


async def test_blocking_waits_on_the_loop_are_refused_before_sending(system: ActorSystem) -> None:
    log: list[Any] = []
    ref = system.spawn(Recorder, log)
    with pytest.raises(WouldBlockLoopError, match="await it"):
        ref.ask("blocked")
    with pytest.raises(WouldBlockLoopError):
        ref.stop()
    await system.wait_idle()
    assert log == ["start"]
    assert ref.is_alive()


async def test_a_tell_that_raises_calls_on_failure_and_stops_the_actor(system: ActorSystem) -> None:
    log: list[Any] = []
    ref = system.spawn(Recorder, log)
    ref.tell("boom")
    await system.wait_idle()
    assert not ref.is_alive()
    assert log == ["start", ("failure", "boom in handler")]  # on_stop is not called on failure
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("more")


async def test_asks_pending_at_stop_fail_with_actor_dead_error(system: ActorSystem) -> None:
    log: list[Any] = []
    ref = system.spawn(Recorder, log)
    before = ref.ask("before", block=False)
    stopped = ref.stop(block=False)
    pending = ref.ask("after", block=False)  # queued behind the stop
    assert await before == "got before"
    assert await stopped is True
    with pytest.raises(pykka.ActorDeadError):
        await pending
    with pytest.raises(pykka.ActorDeadError):
        await ref.ask("later", block=False)
    assert log == ["start", "before", "stop"]
    assert await ref.stop(block=False) is False  # already dead


async def test_asks_pending_when_a_tell_fails_get_actor_dead_error(system: ActorSystem) -> None:
    ref = system.spawn(Recorder)
    ref.tell("boom")
    pending = ref.ask("after", block=False)
    with pytest.raises(pykka.ActorDeadError):
        await pending


class FailsToStart(LoopActor):
    stopped = False

    def on_start(self) -> None:
        raise ValueError("cannot start")

    def on_stop(self) -> None:
        FailsToStart.stopped = True


async def test_an_actor_whose_on_start_raises_is_stopped(system: ActorSystem) -> None:
    ref = system.spawn(FailsToStart)
    pending = ref.ask("hello", block=False)
    with pytest.raises(pykka.ActorDeadError):
        await pending
    assert not ref.is_alive()
    assert FailsToStart.stopped is False
    assert [f.error_type for f in system.unhandled_failures] == ["ValueError"]


async def test_a_thread_talks_to_a_loop_actor_with_blocking_calls(system: ActorSystem) -> None:
    ref = system.spawn(Recorder)
    results: list[Any] = []

    def from_thread() -> None:
        results.append(ref.ask("from thread"))  # block=True, from a thread
        results.append(ref.proxy().add(3).get(timeout=5))
        results.append(ref.stop())

    await asyncio.to_thread(from_thread)
    assert results == ["got from thread", 3, True]


class Echo(pykka.ThreadingActor):
    def __init__(self, target: pykka.ActorRef[Any]) -> None:
        super().__init__()
        self.target = target

    def on_receive(self, message: Any) -> Any:
        # A ThreadingActor asks a LoopActor and blocks its own thread for the answer.
        return ("echo", self.target.ask(message))


async def test_a_threading_actor_asks_a_loop_actor(system: ActorSystem) -> None:
    loop_ref = system.spawn(Recorder)
    echo = Echo.start(loop_ref)
    try:
        answer = await asyncio.get_running_loop().run_in_executor(None, echo.ask, "hi")
        assert answer == ("echo", "got hi")
    finally:
        await asyncio.get_running_loop().run_in_executor(None, echo.stop)


async def test_a_loop_actor_awaits_a_threading_actor_with_loop_futures(system: ActorSystem) -> None:
    worker = BlockingWorker.start()
    try:
        from cronflow_actors.kernel import RunBlocking

        future = worker.ask(RunBlocking(fn=sum, args=([1, 2, 3],)), block=False)
        assert await future == 6
    finally:
        await asyncio.get_running_loop().run_in_executor(None, worker.stop)


async def test_pykka_start_spawns_into_the_running_system(system: ActorSystem) -> None:
    ref = Recorder.start()
    assert system.get_by_urn(ref.actor_urn) is ref
    assert await ref.ask("x", block=False) == "got x"
    # Per-instance actors stay out of pykka's global registry.
    assert ref not in pykka.ActorRegistry.get_all()


async def test_pykka_start_outside_a_system_is_a_clear_error() -> None:
    with pytest.raises(ActorSystemNotRunningError, match="start it with"):
        Recorder.start()


class Parent(LoopActor):
    def __init__(self) -> None:
        super().__init__()
        self.notices: list[Any] = []
        self.stopped = False

    def on_receive(self, message: Any) -> Any:
        if message == "spawn":
            return self.system.spawn(Recorder, parent=self.actor_ref)
        self.notices.append(message)
        return None

    def on_stop(self) -> None:
        self.stopped = True


async def test_a_childs_failure_reaches_its_parent_as_a_message(system: ActorSystem) -> None:
    parent = system.spawn(Parent)
    child = await parent.ask("spawn", block=False)
    child.tell("boom")
    await system.wait_idle()
    notices = await parent.proxy().notices
    assert len(notices) == 1
    failure = notices[0]
    assert isinstance(failure, ChildFailed)
    assert failure.child_urn == child.actor_urn
    assert failure.error_type == "RuntimeError"
    assert failure.error_message == "boom in handler"
    assert system.unhandled_failures == []
    assert await parent.proxy().children == []


class DeafParent(Parent):
    hears_child_stops = False


@pytest.mark.parametrize("parent_class", [Parent, DeafParent])
async def test_a_childs_stop_reaches_a_parent_that_hears_them(
    system: ActorSystem, parent_class: type[Parent]
) -> None:
    parent = system.spawn(parent_class)
    stopping = await parent.ask("spawn", block=False)
    failing = await parent.ask("spawn", block=False)
    assert await stopping.stop(block=False) is True
    failing.tell("boom")
    await system.wait_idle()
    notices = await parent.proxy().notices
    kinds = [type(notice) for notice in notices]
    # a failure is heard either way; a normal stop only by a parent that hears them
    heard = [ChildStopped, ChildFailed] if parent_class is Parent else [ChildFailed]
    assert kinds == heard
    assert notices[0].child_urn == (stopping if heard[0] is ChildStopped else failing).actor_urn
    assert await parent.proxy().children == []  # both left it, heard or not
    assert system.unhandled_failures == []


async def test_stopping_a_parent_stops_its_children(system: ActorSystem) -> None:
    parent = system.spawn(Parent)
    children = [await parent.ask("spawn", block=False) for _ in range(3)]
    assert len(await parent.proxy().children) == 3
    assert await parent.stop(block=False) is True
    await system.wait_idle()
    assert [c.is_alive() for c in children] == [False, False, False]
    assert len(system) == 0


class Sleeper(LoopActor):
    def __init__(self) -> None:
        super().__init__()
        self.cancelled = asyncio.Event()

    def on_receive(self, message: Any) -> Any:
        self.create_task(self._work())
        return None

    async def _work(self) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


async def test_an_actors_tasks_are_cancelled_when_it_stops(system: ActorSystem) -> None:
    ref = system.spawn(Sleeper)
    ref.tell("go")
    await asyncio.sleep(0)
    actor = ref._actor_weakref()
    assert actor is not None
    await ref.stop(block=False)
    await asyncio.wait_for(actor.cancelled.wait(), 5)
    await system.wait_idle()


class Chatty(LoopActor):
    def on_receive(self, message: Any) -> Any:
        if message > 0:
            self.actor_ref.tell(message - 1)
        return None


async def test_one_busy_actor_does_not_starve_another(system: ActorSystem) -> None:
    chatty = system.spawn(Chatty)
    quiet = system.spawn(Recorder)
    chatty.tell(100_000)  # an endless-looking chain of self-tells
    await asyncio.sleep(0)
    assert await asyncio.wait_for(quiet.ask("hello", block=False), 5) == "got hello"
    await system.wait_idle()


class Worker(LoopActor):
    """Starts its work in on_start and stops itself from its own task when the work is done."""

    start_at_once = True

    def __init__(self, log: list[Any], gate: asyncio.Event) -> None:
        super().__init__()
        self.log = log
        self.gate = gate

    def on_start(self) -> None:
        self.log.append("start")
        self.create_task(self._work())

    async def _work(self) -> None:
        await self.gate.wait()
        self.log.append("worked")
        self.stop_now()

    def on_receive(self, message: Any) -> Any:
        self.log.append(message)
        return message


async def test_start_at_once_runs_on_start_as_the_actor_is_spawned(system: ActorSystem) -> None:
    log: list[Any] = []
    gate = asyncio.Event()
    ref = system.spawn(Worker, log, gate)
    assert log == ["start"]  # before the loop turns, and before any message
    assert await ref.ask("hello", block=False) == "hello"
    gate.set()
    await system.wait_idle()
    assert log == ["start", "hello", "worked"]
    assert not ref.is_alive()
    assert len(system) == 0
    assert system.busy == 0


async def test_stop_now_from_its_own_task_answers_what_waits_and_lets_the_actor_go(
    system: ActorSystem,
) -> None:
    log: list[Any] = []
    gate = asyncio.Event()
    ref = system.spawn(Worker, log, gate)
    actor = weakref.ref(ref._actor_weakref())  # type: ignore[arg-type]
    gate.set()
    await asyncio.sleep(0)  # the task runs and stops the actor; no drain is due
    with pytest.raises(pykka.ActorDeadError):
        await ref.ask("too late", block=False)
    await system.wait_idle()
    gc.disable()  # freed by reference counting, not left to the cyclic GC
    try:
        del ref
        assert actor() is None
    finally:
        gc.enable()
    assert log == ["start", "worked"]
