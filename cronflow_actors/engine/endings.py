"""The hooks of a run's end, called at least once: a flow's ``on_success`` or ``on_failure``,
then ``on_complete`` (``runtime/run_hooks.py`` calls them; the engine only knows that some are
owed).

The commit that ends the run records them owed (``InstanceState.end_owed``) when its flow has a
hook for that outcome (``EndHooks.owed``), and an ended instance that owes them is runnable:
loaded at start. Once that commit is durable the ``WorkflowActor`` has them called, off its
turn; when they have all been called (each one that raises is logged, not called again) the
runtime hands the instance ``EndHooksDone``, whose transaction drops the debt. A crash or a
stop between the two leaves it: the next start loads the instance and calls them again, with
``ctx.error`` read back from the run's record. So a hook may run twice (a crash after it did
its work and before the end of the calls was recorded), never not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from cronflow_actors.engine.context import WorkflowInfo
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.messages.engine import EndHooksDone, GiveUpMigration

__all__ = [
    "EndHooks",
    "call",
    "done",
    "ended",
    "forget",
    "give_up",
    "given_up",
    "owed",
    "recover",
]


class EndHooks(Protocol):
    """What calls the hooks of runs' ends (the runtime's ``RunHooks``, by flow)."""

    def owed(self, workflow: str, state: str) -> bool:
        """Whether a run of root workflow ``workflow`` that ended in ``state`` has hooks."""
        ...

    def call(
        self,
        info: WorkflowInfo,
        body: bytes,
        raised: BaseException | None,
        done: Callable[[], None],
    ) -> None:
        """Call the hooks of the run ``info`` (ended; ``body``: its committed snapshot;
        ``raised``: the exception that failed it, in this process), then ``done()``."""
        ...


def owed(actor: Any, state: str) -> None:
    """The run ends in this transaction, in ``state``: its hooks are owed if it has any; none
    for a run canceled for its migration, which goes on in the run that replaces it, whose end
    calls them (a migrated run's ``on_complete`` was called twice, once while it went on:
    conform h26 L1)."""
    if actor.state.migrated_to is not None:
        return
    hooks = actor.services.end_hooks
    if hooks is not None and hooks.owed(actor.root.name, state):
        actor.state.end_owed = True


def call(actor: Any, info: WorkflowInfo, body: bytes, raised: BaseException | None) -> None:
    """Have the hooks of the ended run called (they are owed, and the commit that says so,
    ``body``, is durable); ``EndHooksDone`` follows them, through the instance directory."""
    services, instance_id = actor.services, actor.instance_id
    services.ending[instance_id] = False
    services.end_hooks.call(info, body, raised, lambda: ended(services, instance_id))


def ended(services: Any, instance_id: str) -> None:
    """The hooks of ``instance_id``'s end have been called: record it (the instance may have
    left memory meanwhile: it is loaded to take it)."""
    if instance_id in services.ending:
        services.ending[instance_id] = True  # a load before it is recorded records it
    services.deliver(instance_id, EndHooksDone())


def recover(actor: Any, info: WorkflowInfo, body: bytes) -> None:
    """The ended instance was loaded (from ``body``) owing its hooks: called again, unless
    they are being called in this process (their end is on its way), or were and their end was
    not recorded (recorded now)."""
    here = actor.services.ending.get(actor.instance_id)
    if here is None:
        call(actor, info, body, None)
    elif here:
        actor.tell_self_first(EndHooksDone())


def done(tx: Transaction) -> None:
    """The hooks have been called: no longer owed."""
    if tx.state.end_owed:
        tx.state.end_owed = False
        tx.rewritten = True


def given_up(tx: Transaction, command: GiveUpMigration) -> bool:
    """The migration that canceled this run for ``command.given_up`` was given up: the run names
    no successor, and its end's hooks are owed, in the commit that says so (called at least once
    from there, as any end's: chaos h27 F3 found them called off the record, lost to a crash).
    Once: a second give-up finds no successor named (hostile h27 L1: hooks called twice)."""
    state = tx.state
    if state.migrated_to != command.given_up:
        return False
    state.migrated_to = None
    state.end_owed = command.owed
    tx.rewritten = True
    if tx.audit is not None:  # its Action.cancel span: who gave it up, why (conform h27 M6)
        tx.audit.begin_turn(command)
        tx.audit.end_turn()
    return True


async def give_up(actor: Any, command: GiveUpMigration) -> bool:
    """Carry ``command`` out (``given_up``), then have the hooks it made owed called."""
    done: bool = await actor._transact(command, command.principal)
    root = actor.state.workflows.get(actor.instance_id)
    if done and actor.state.end_owed and root is not None:
        recover(actor, Transaction.workflow_info(root), actor._body)
    return done


def forget(actor: Any) -> None:
    """``EndHooksDone`` was applied (or could not be: then the debt stays, for the next load)."""
    actor.services.ending.pop(actor.instance_id, None)
