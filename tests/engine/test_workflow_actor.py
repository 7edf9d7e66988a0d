"""The WorkflowActor's one mailbox: a command's asker gets its result from one await, once it is
durable; commands that arrive meanwhile wait in the mailbox (and are counted there); a
ReadCommitted query is answered at once, ahead of them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pykka
import pytest

from cronflow_actors.engine.actors import EngineServices, WorkflowActor
from cronflow_actors.engine.registry import WorkflowRegistry
from cronflow_actors.engine.timers import TimerService
from cronflow_actors.errors import NotFoundError
from cronflow_actors.kernel import ActorSystem, LoopFuture, ManualClock
from cronflow_actors.messages import Mutation
from cronflow_actors.messages.engine import (
    CancelWorkflow,
    InitializeWorkItem,
    ReadCommitted,
    StartWorkflow,
)
from cronflow_actors.store import MemoryStore
from tests.engine.helpers import build, manual


class GatedStore(MemoryStore):
    """A MemoryStore whose commits wait for ``gate``."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()
        self.commits = 0

    async def commit(self, mutation: Mutation) -> None:
        self.waiting.set()
        await self.gate.wait()
        await super().commit(mutation)
        self.commits += 1


class Setup:
    def __init__(self, system: ActorSystem, store: GatedStore, clock: ManualClock) -> None:
        self.system = system
        self.store = store
        self.stopped: list[str] = []

        async def no_timers(_after: Any, _limit: int) -> list[Any]:
            return []

        self.services = EngineServices(
            store=store,
            clock=clock,
            registry=WorkflowRegistry(),
            timers=TimerService(clock, lambda _i, _t: None, no_timers),
            on_finished=lambda _info, _body, _error: None,
            on_stopped=lambda instance_id, _ref: self.stopped.append(instance_id),
            passivate=False,  # a waiting instance stays in memory; a finished one leaves
        )
        self.spec = build("w", manual("a"), [("start", "a"), ("a", "end")])

    def spawn(self, instance_id: str) -> pykka.ActorRef[Any]:
        return self.system.spawn(WorkflowActor, self.services, instance_id, self.spec, None)


@pytest.fixture
async def setup(clock: ManualClock) -> AsyncIterator[Setup]:
    store = GatedStore()
    async with store, ActorSystem("engine", clock=clock) as system:
        yield Setup(system, store, clock)


async def test_a_command_answers_its_result_once_durable(setup: Setup) -> None:
    ref = setup.spawn("i1")
    setup.store.gate.clear()
    started = cast("LoopFuture[str]", ref.ask(StartWorkflow(), block=False))
    await setup.store.waiting.wait()
    assert not started.done()  # the commit waits: nobody is told yet
    setup.store.gate.set()
    assert await started == "i1"  # the result itself, not a future of it
    assert setup.store.commits == 1


async def test_commands_wait_in_the_mailbox_while_one_commits(setup: Setup) -> None:
    ref = setup.spawn("i2")
    actor: Any = ref._actor_weakref()
    setup.store.gate.clear()
    started = ref.ask(StartWorkflow(), block=False)
    initialized = ref.ask(InitializeWorkItem(workflow_id="i2", task="a"), block=False)
    canceled = ref.ask(CancelWorkflow(workflow_id="i2"), block=False)
    await setup.store.waiting.wait()
    assert actor.mailbox_depth == 2
    assert setup.system.actor_counts()["WorkflowActor"] == (1, 2)
    # a query is answered at once, ahead of them: nothing is committed yet
    assert await ref.ask(ReadCommitted(), block=False) is None
    setup.store.gate.set()
    assert await started == "i2"
    assert isinstance(await initialized, str)
    assert await canceled is None
    await setup.system.wait_idle()
    assert setup.stopped == ["i2"]  # finished and idle: it left memory
    assert not ref.is_alive()


async def test_a_refused_command_reaches_its_asker_and_changes_nothing(setup: Setup) -> None:
    ref = setup.spawn("i3")
    assert await ref.ask(StartWorkflow(), block=False) == "i3"
    committed = await ref.ask(ReadCommitted(), block=False)
    with pytest.raises(NotFoundError):
        await ref.ask(CancelWorkflow(workflow_id="i3.nope"), block=False)
    assert await ref.ask(ReadCommitted(), block=False) is committed
    assert ref.is_alive()
