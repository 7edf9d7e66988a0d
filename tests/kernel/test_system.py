from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from cronflow_actors.errors import ActorNameTakenError, ActorSystemNotRunningError
from cronflow_actors.kernel import ActorSystem, LoopActor, ManualClock


class Relay(LoopActor):
    def __init__(self, next_ref: pykka.ActorRef[Any] | None, log: list[str], label: str) -> None:
        super().__init__()
        self.next_ref = next_ref
        self.log = log
        self.label = label

    def on_receive(self, message: Any) -> Any:
        self.log.append(f"{self.label}:{message}")
        if self.next_ref is not None:
            self.next_ref.tell(message + 1)
        return None


async def test_wait_idle_waits_for_chains_of_messages(system: ActorSystem) -> None:
    log: list[str] = []
    c = system.spawn(Relay, None, log, "c")
    b = system.spawn(Relay, c, log, "b")
    a = system.spawn(Relay, b, log, "a")
    a.tell(0)
    await system.wait_idle()
    assert log == ["a:0", "b:1", "c:2"]
    assert system.busy == 0


async def test_registry_by_urn_name_and_class(system: ActorSystem) -> None:
    log: list[str] = []
    named = system.spawn(Relay, None, log, "x", name="relay-x")
    other = system.spawn(Relay, None, log, "y")
    assert system.get_by_name("relay-x") is named
    assert system.get_by_urn(other.actor_urn) is other
    assert set(system.get_by_class(Relay)) == {named, other}
    assert len(system) == 2
    with pytest.raises(ActorNameTakenError, match="relay-x"):
        system.spawn(Relay, None, log, "z", name="relay-x")
    assert len(system) == 2
    await named.stop(block=False)
    assert system.get_by_name("relay-x") is None
    system.spawn(Relay, None, log, "z", name="relay-x")  # the name is free again


async def test_two_systems_do_not_share_actors() -> None:
    async with ActorSystem("one") as one, ActorSystem("two") as two:
        ref = one.spawn(Relay, None, [], "a")
        assert one.get_by_urn(ref.actor_urn) is ref
        assert two.get_by_urn(ref.actor_urn) is None


async def test_stop_stops_every_actor_and_fails_pending_asks() -> None:
    system = ActorSystem("stopping")
    await system.__aenter__()
    log: list[str] = []
    refs = [system.spawn(Relay, None, log, str(i)) for i in range(50)]
    for ref in refs:
        ref.tell(1)
    await system.stop()
    assert len(log) == 50  # messages already queued were handled before stopping
    assert not any(ref.is_alive() for ref in refs)
    assert system.state == "stopped"
    with pytest.raises(ActorSystemNotRunningError, match="is stopped"):
        system.spawn(Relay, None, log, "late")


async def test_spawn_from_another_thread(system: ActorSystem) -> None:
    log: list[str] = []
    refs: list[pykka.ActorRef[Any]] = []

    def spawn_there() -> None:
        ref = system.spawn(Relay, None, log, "t")
        ref.tell(5)
        refs.append(ref)

    thread = threading.Thread(target=spawn_there)
    thread.start()
    thread.join()  # the loop does not run while the thread spawns and tells
    await system.wait_idle()
    assert log == ["t:5"]
    assert refs[0].is_alive()


class Ticker(LoopActor):
    def __init__(self, log: list[float]) -> None:
        super().__init__()
        self.log = log

    def on_receive(self, message: Any) -> Any:
        self.create_task(self._tick(message))
        return None

    async def _tick(self, delay: float) -> None:
        await self.system.clock.sleep(delay)
        self.log.append(self.system.clock.now())


async def test_wait_idle_treats_tasks_parked_on_a_manual_clock_as_idle() -> None:
    clock = ManualClock(start=100.0)
    log: list[float] = []
    async with ActorSystem("timed", clock=clock) as system:
        ref = system.spawn(Ticker, log)
        ref.tell(10.0)
        ref.tell(5.0)
        await system.wait_idle()  # returns although two tasks are sleeping
        assert log == []
        assert clock.sleepers == 2
        clock.advance(6)
        await system.wait_idle()
        assert log == [106.0]
        clock.advance(4)
        await system.wait_idle()
        assert log == [106.0, 110.0]


async def test_actor_counts_give_alive_actors_and_mailbox_depth_by_class(
    system: ActorSystem,
) -> None:
    log: list[str] = []
    quiet = system.spawn(Relay, None, log, "a")
    busy = system.spawn(Relay, None, log, "b")
    await system.wait_idle()
    assert system.actor_counts() == {"Relay": (2, 0)}
    for n in range(3):
        busy.tell(n)
    # the loop has not run yet: the three messages wait in the mailbox
    assert system.actor_counts() == {"Relay": (2, 3)}
    await system.wait_idle()
    assert system.actor_counts() == {"Relay": (2, 0)}
    await quiet.stop(block=False)
    assert system.actor_counts() == {"Relay": (1, 0)}
