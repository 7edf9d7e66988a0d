"""What every ``WorkflowActor`` of a runtime shares (``EngineServices``), and how an instance's
snapshot body is read back (``decode_state``) and written (``encode_state``)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import msgspec

from cronflow_actors.calls import InOrder
from cronflow_actors.engine.audit import AuditTrail
from cronflow_actors.engine.context import WorkflowInfo
from cronflow_actors.engine.endings import EndHooks
from cronflow_actors.engine.handlers import HandlerTracing
from cronflow_actors.engine.registry import WorkflowRegistry
from cronflow_actors.engine.state_body import encode_state, restore
from cronflow_actors.engine.timers import TimerService
from cronflow_actors.errors import RuntimeNotRunningError, SnapshotDamagedError
from cronflow_actors.kernel import Clock
from cronflow_actors.messages import Message, decoder_for
from cronflow_actors.messages.engine import InstanceState
from cronflow_actors.net.fingerprint import fingerprint
from cronflow_actors.net.spec import NetSpec
from cronflow_actors.store import Store

__all__ = [
    "EngineServices",
    "decode_snapshot_body",
    "decode_state",
    "encode_state",
    "restored_state",
]

_state_decoder = decoder_for(InstanceState)


def decode_state(body: bytes, instance_id: str) -> InstanceState:
    """The snapshot body of instance ``instance_id``, decoded; ``SnapshotDamagedError`` (naming
    the run) if it cannot be."""
    state: InstanceState = decode_snapshot_body(_state_decoder, body, instance_id)
    restore(state)  # the outputs written once (engine/state_body.py)
    return state


def restored_state(body: bytes | None, instance_id: str, root: NetSpec) -> InstanceState:
    """An instance's state as last committed (``body``; None: never committed, a fresh state
    of ``root``), as a failed transaction goes back to it."""
    if body is None:
        return InstanceState(
            id=instance_id, workflow=root.name, version=root.version, fingerprint=fingerprint(root)
        )
    state = decode_state(body, instance_id)
    if not state.fingerprint:  # started before fingerprints were recorded: pinned from here
        state.fingerprint = fingerprint(root)
    return state


def decode_snapshot_body(
    decoder: msgspec.msgpack.Decoder[Any], body: bytes, instance_id: str
) -> Any:
    """What ``decoder`` reads from the snapshot body of instance ``instance_id`` (the whole
    state, or only the fields its type names); ``SnapshotDamagedError`` (naming the run) if the
    body cannot be read so."""
    try:
        return decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise SnapshotDamagedError(instance_id, error) from error


def _undelivered(instance_id: str, message: Message) -> None:
    raise RuntimeError(f"no instance directory to hand {message!r} to instance {instance_id}")


class EngineServices:
    """What every WorkflowActor of a runtime shares.

    ``on_finished(info, body, exception)`` hears of a root instance that ended, with its
    committed snapshot body and, for a failure a handler raised in this process, the exception;
    ``on_stopped(instance_id, ref)`` of an instance actor that stopped (finished, passivated or
    failed); ``on_changes`` gets the state-change messages of every durable transaction.
    ``passivate``: whether idle instances leave memory. ``secrets``: workflow name -> what
    ``ctx.secrets`` is in that workflow's user code (kept by the runtime, which may add to it;
    only in memory). ``tracing``: runs handlers inside trace spans (None: not traced, and
    nothing is added to a handler's call). ``audit``: the audit trail (or None).
    """

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        registry: WorkflowRegistry,
        timers: TimerService,
        on_finished: Callable[[WorkflowInfo, bytes, BaseException | None], None],
        on_stopped: Callable[[str, Any], None],
        on_changes: Callable[[list[Message]], None] | None = None,
        tokens: Callable[[], str] | None = None,
        passivate: bool = True,
        secrets: Mapping[str, Any] | None = None,
        tracing: HandlerTracing | None = None,
        audit: AuditTrail | None = None,
        deliver: Callable[[str, Message], None] | None = None,
        end_hooks: EndHooks | None = None,
    ) -> None:
        self.tracing = tracing
        self.audit = audit
        self.secrets: Mapping[str, Any] = secrets if secrets is not None else {}
        self.store = store
        self.clock = clock
        self.registry = registry
        self.timers = timers
        self.on_finished = on_finished
        self.on_stopped = on_stopped
        self.on_changes = on_changes
        self.tokens = tokens
        self.passivate = passivate
        self.callbacks = InOrder()
        """A run's callbacks after a commit, in order (shared with its hooks: ``run_hooks``)."""
        self.deliver: Callable[[str, Message], None] = deliver or _undelivered
        """Hands an instance a message, activating it from its snapshot if it left memory (the
        runtime's instance directory): a notice's end (``engine/notices.py``)."""
        self.notifying: dict[tuple[str, str, str], bool] = {}
        """(instance id, work item id, token) of the notices called in this process whose end
        is not recorded yet: False while the call runs, True once it ended (a wait opened
        again, a reset item's, draws a new token: a notice of its own)."""
        self.end_hooks = end_hooks
        """Calls the hooks of runs' ends, at least once (``engine/endings.py``; None: none)."""
        self.ending: dict[str, bool] = {}
        """Instances whose end's hooks are called in this process, their end not recorded yet:
        False while they run, True once they have all been called."""
        self.publish: Callable[..., Coroutine[Any, Any, Any]] | None = None
        """The runtime's ``publish_event`` (wired at its start): a step's ``ctx.publish_event``."""
        self.draining = False
        """While draining, no new handler or action starts: work items that start stay started
        in the snapshot and run on the next start."""
        self.postponed = 0
        """Handlers a drain put off so (the drain's log says how many: newcomer h36 F7)."""

    def publish_event(
        self, name: str, payload: Any, *, idempotency_key: str, once: bool = False
    ) -> Any:
        """A step's publish (``ctx.publish_event``), through the runtime's events."""
        if self.publish is None:
            raise RuntimeNotRunningError(f"publish event {name!r}", "new")
        return self.publish(name, payload, idempotency_key=idempotency_key, once=once)
