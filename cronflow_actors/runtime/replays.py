"""Replays: a new run of a flow from another run's recorded trigger, with steps mocked if asked.

``replay(run_id)`` starts a run of the flow's newest active version with the recorded payload
(or an override), headers, trigger kind and path parameters; the new run records
``replay_of``. It is a run like any other: durable, queued under the flow's limits, listed.

Mocks (``mock_steps={"charge": fn}``) are per-run handler overrides, for replays and for any
run started with ``Replays.trigger`` (a test harness on the real engine): the run gets a
definition of its own, compiled from the flow with those steps' functions replaced (their
retry, timeout and ``on_error`` still apply), and kept in this process's memory under the run's
id; the instance directory takes it instead of the registered one whenever it loads that run.
Code is never stored: what is stored is a mark listing the run's mocked steps (key-value
namespace ``cronflow:replays``), written before the run starts and removed when it ends. A
runtime that finds marks when it starts has lost those mocks: the runs go on with their other
steps as usual, and a mocked step that still has to run fails with ``MockLostError`` (no retry,
no fallback) instead of running the real handler it stood in for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import msgspec

from cronflow_actors.calls import call_user
from cronflow_actors.engine.actors import decode_state
from cronflow_actors.errors import (
    ConfigurationError,
    InstanceExistsError,
    InvalidPayloadError,
    MockLostError,
    NotFoundError,
    NotReplayableError,
    ReplayRefusedError,
)
from cronflow_actors.flow.compiled import CompiledFlow
from cronflow_actors.flow.envelope import Resumed, TriggerEnvelope, open_envelope
from cronflow_actors.flow.mocks import mocked, stand_ins
from cronflow_actors.flow.triggers import WebhookRequest, schema_path
from cronflow_actors.kernel import Clock
from cronflow_actors.messages import QueuedRun, SnapshotRecord, to_schema
from cronflow_actors.messages.engine import InstanceState
from cronflow_actors.net.migration import refused
from cronflow_actors.net.spec import NetSpec
from cronflow_actors.runtime.carried import (
    answered_errors,
    carried_events,
    carried_on,
    links_of,
    sources_of,
)
from cronflow_actors.runtime.catalog import FlowCatalog
from cronflow_actors.runtime.ids import resume_id
from cronflow_actors.runtime.migration_plans import PlanBook
from cronflow_actors.runtime.pruning import forget_successor, record_successors
from cronflow_actors.runtime.run_views import stored_run
from cronflow_actors.runtime.runs import check_instance_id
from cronflow_actors.runtime.successors import going_on
from cronflow_actors.store import MISSING, Store

__all__ = ["Replays"]


async def _as_its_webhook_takes(flow: CompiledFlow, trigger: TriggerEnvelope, payload: Any) -> Any:
    """``payload``, given to replay a run a webhook of ``flow`` started, as that webhook's
    ``schema`` converts it and its ``validate`` accepts it, with the recorded request's kept
    headers, parameters and query (a replay would otherwise pair the delivery's headers, a
    signed one's too, with a payload no check saw; a signed webhook's run takes none: its
    signature is the check, which no replay can give). The webhook is the one the run recorded
    (a run of an earlier version recorded none: those whose path takes its parameters, of
    which the payload passes one). ``InvalidPayloadError`` (nothing started) if it does not,
    or if a ``validate`` raised (it sees the request as the run kept it: its kept headers)."""
    hooks = [
        h
        for h in flow.triggers.webhooks
        if h.path == trigger.webhook
        or (trigger.webhook is None and set(h.params) == set(trigger.params))
    ]
    refusals = []
    for hook in hooks:
        converted = payload
        if hook.hmac_secret is not None:  # the check it has is a signature no replay can give
            reason = (
                "it takes signed requests only (hmac_secret), and no signature saw a new "
                "payload: replay the run with its recorded one, or send the new one to the "
                "webhook, signed"
            )
            refusals.append((hook.path, reason, "$"))
            continue
        if hook.schema is not None:
            try:
                converted = msgspec.to_builtins(to_schema(payload, hook.schema))
            except msgspec.ValidationError as invalid:
                refusals.append((hook.path, str(invalid), schema_path(invalid)))
                continue
        if hook.validate is not None:
            request = WebhookRequest(
                payload=converted,
                headers=trigger.headers,
                method=hook.method,
                path=hook.path,
                params=trigger.params,
                query=trigger.query,
            )
            try:
                verdict = await call_user(hook.validate, request)
            except Exception as error:  # the flow's code, on a request a replay rebuilt
                verdict = f"it raised {type(error).__name__}: {error}"
            if verdict is not True:
                kept = "its kept headers only" if trigger.headers else "no headers kept"
                reason = f"its validate refused it ({kept}): {verdict}"
                refusals.append((hook.path, reason, "$"))
                continue
        return converted
    if not refusals:
        return payload  # its webhook is gone, or had no check of its payload
    where, reason, path = refusals[0]
    raise InvalidPayloadError(f"webhook {where!r} of flow {flow.id!r}", "replay", reason, path)


logger = logging.getLogger(__name__)

_MARKS = ("cronflow:replays", "mocked")
"""(namespace, key) of the marks: run id -> the ids of its mocked steps."""


class Replays:
    def __init__(
        self,
        *,
        catalog: FlowCatalog,
        store: Store,
        clock: Clock,
        read: Callable[[str], Awaitable[SnapshotRecord]],
        trigger: Callable[..., Awaitable[str]],
        new_id: Callable[[], str],
        spawn: Callable[[Coroutine[Any, Any, None], str], Any],
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._clock = clock
        self._read = read
        self._trigger = trigger
        self._new_id = new_id
        self._spawn = spawn
        self._pinned: dict[str, NetSpec] = {}
        """Runs with mocks started here -> their own definition."""
        self._lost: dict[str, list[str]] = {}
        """Runs with mocks started by an earlier runtime -> their mocked steps."""
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        """At start: the marks left by an earlier runtime are runs whose mocks are lost."""
        marks = await self._store.kv_get(*_MARKS, now=self._clock.now(), default={})
        for run_id, steps in marks.items():
            snapshot = await self._store.load_snapshot(run_id)
            if snapshot is None and await self._store.queued_run(run_id) is None:
                continue  # its start never became durable
            if snapshot is not None and snapshot.terminal:
                continue
            self._lost[run_id] = list(steps)
        if set(marks) != set(self._lost):
            await self._store.kv_set(*_MARKS, dict(self._lost), now=self._clock.now())

    # -- definitions of the runs with mocks -------------------------------------------------------

    def spec_for(self, instance_id: str, workflow: str, version: str | None) -> NetSpec | None:
        """The definition a run with mocks runs on, or None for any other run."""
        if not self._pinned and not self._lost:
            return None
        spec = self._pinned.get(instance_id)
        if spec is not None:
            return spec
        steps = self._lost.get(instance_id)
        if steps is None:
            return None
        flow = self._catalog.compiled.get(workflow)
        if flow is None:
            return None  # not registered: the caller says so
        if version is not None and flow.version != version:
            # the stand-ins can only be made from the version registered now; never fall back
            # to the registered definition, whose real handlers the mocks stood in for
            raise MockLostError(instance_id, ", ".join(steps))
        spec = stand_ins(flow, instance_id, steps, self._catalog.resolve).spec
        self._pinned[instance_id] = spec
        return spec

    def finished(self, run_id: str) -> None:
        """A run ended: forget its mocks and remove its mark."""
        if run_id in self._pinned or run_id in self._lost:
            self._pinned.pop(run_id, None)
            self._lost.pop(run_id, None)
            self._spawn(self._unmark(run_id), f"unmark replay {run_id}")

    # -- replay -----------------------------------------------------------------------------------

    async def replay(
        self,
        run_id: str,
        *,
        payload: Any = None,
        mock_steps: Mapping[str, Any] | None = None,
        by: str | None = None,
        resume: bool = False,
        instance_id: str | None = None,
        before: list[str] | None = None,
    ) -> str:
        """``Runtime.replay``; ``before`` hears the id of a resume started before this call (its
        answer then: one resume a run), as the store's refusal of a second start says it, so
        calls at the same moment each learn whether theirs started it (the second verifier's
        h27 V3: a read before the start answered every one of them as new)."""
        if instance_id is not None:
            check_instance_id(instance_id)
        if not resume:
            return await self._replay(run_id, payload, mock_steps, by, False, instance_id, before)
        # kept while its resume is, linked before it is read: a prune after the read lost it
        # (ops h41 F3: its key started the work again; review h42 F2)
        pair = (run_id, resume_id(run_id))
        await record_successors(self._store, [pair], self._clock.now())
        try:
            return await self._replay(run_id, payload, mock_steps, by, True, instance_id, before)
        except BaseException:
            await forget_successor(self._store, *pair)  # refused: nothing of it stays (h42 N4)
            raise

    async def _replay(  # noqa: PLR0917 - replay's own, checked
        self,
        run_id: str,
        payload: Any,
        mock_steps: Mapping[str, Any] | None,
        by: str | None,
        resume: bool,
        instance_id: str | None,
        before: list[str] | None,
    ) -> str:
        recorded, workflow, stored = await self._recorded(run_id)
        if self._catalog.is_net(workflow):
            raise NotReplayableError(run_id, workflow)
        trigger = open_envelope(recorded)
        resumed = None
        replaced = stored[1].migrated_to if stored is not None else None
        if replaced is not None and not resume and await self._goes_on(run_id, replaced):
            raise refused(  # its work goes on there: a replay would do it twice (h25 F5)
                f"run {run_id!r}",
                f"it was canceled for its migration to {replaced!r}, which goes on from it",
                f"replay {replaced!r} (or the run at the end of its migrations) instead",
                ReplayRefusedError,
            )
        if resume:  # one resume a run: asked again, the same one answers
            resumed = _resumable(run_id, stored, payload, mock_steps, instance_id)
            instance_id = resume_id(run_id)
        if payload is None:
            payload = trigger.payload
        elif trigger.kind == "webhook":  # what its webhook checks of a payload, this one too
            payload = await _as_its_webhook_takes(self._catalog.root(workflow), trigger, payload)
        try:
            return await self.trigger(
                workflow,
                payload,
                mock_steps=mock_steps,
                instance_id=instance_id,
                headers=trigger.headers,
                kind=trigger.kind,
                params=trigger.params,
                query=trigger.query,
                webhook=trigger.webhook,
                replay_of=run_id,
                by=by,
                resumed=resumed,
                derived=resume,
            )
        except InstanceExistsError as taken:
            if not resume:
                raise
            if before is not None:
                before.append(taken.instance_id)
            return taken.instance_id  # resumed before: that resume

    async def recorded_trigger(self, run_id: str) -> TriggerEnvelope:
        """How run ``run_id`` was started, as stored (``NotFoundError`` if it is not)."""
        recorded, _workflow, _stored = await self._recorded(run_id)
        return open_envelope(recorded)

    async def trigger(
        self,
        workflow: str,
        payload: Any,
        *,
        mock_steps: Mapping[str, Any] | None = None,
        instance_id: str | None = None,
        **trigger: Any,
    ) -> str:
        """Start a run of ``workflow`` (as ``Runs.trigger`` does, with its keyword arguments)
        whose ``mock_steps`` replace those steps' functions for this run only. What a replay
        does, and what a test harness can do to run a flow with mocks on the real engine."""
        flow = self._catalog.root(workflow)
        mocks = _checked_mocks(flow, mock_steps)
        run_id = instance_id or self._new_id()
        if mocks:
            spec = mocked(flow, mocks, self._catalog.resolve).spec
            if instance_id is not None:  # a run of that id keeps its own mocks' mark
                await self._not_taken(instance_id)
            await self._mark(run_id, sorted(mocks))
            self._pinned[run_id] = spec
        try:
            return await self._trigger(workflow, payload, instance_id=run_id, **trigger)
        except BaseException:
            if mocks:
                self._pinned.pop(run_id, None)
                await self._unmark(run_id)
            raise

    async def _recorded(
        self, run_id: str
    ) -> tuple[Any, str, tuple[SnapshotRecord, InstanceState] | None]:
        """The stored trigger (payload, headers, kind) of a run, its flow, and its snapshot
        with its state decoded (None while it waits in its flow's queue)."""
        if not isinstance(run_id, str) or not run_id or "." in run_id:
            raise NotFoundError("run", str(run_id))
        snapshot = await stored_run(self._read, self._store, run_id)
        if isinstance(snapshot, QueuedRun):
            return msgspec.msgpack.decode(snapshot.payload), snapshot.workflow, None
        state = decode_state(snapshot.body, snapshot.instance_id)
        root = state.workflows.get(state.id)
        if root is None:
            raise NotFoundError("run", run_id)
        return root.payload, root.name, (snapshot, state)

    async def going_on(self, run_id: str) -> str:
        """The run whose work ``run_id``'s goes on in (``successors.going_on``): a webhook's
        duplicate names it beside the run its key named, canceled or failed."""
        return await going_on(self._read, self._store, run_id)

    async def _goes_on(self, run_id: str, successor: str) -> bool:
        """Whether the run a migration canceled ``run_id`` for goes on from it: it started from
        it, or its migration is pending (not a stranger's run under its id, nor a migration
        given up: then a replay is the way to run its work again)."""
        try:
            snapshot = await self._read(successor)
        except NotFoundError:
            return await PlanBook(self._store, self._clock).get(run_id) is not None
        return links_of(decode_state(snapshot.body, successor)).migrated_from == run_id

    async def _not_taken(self, run_id: str) -> None:
        """``InstanceExistsError`` if a run (or a queued one) has the id ``run_id``."""
        try:
            await stored_run(self._read, self._store, run_id)
        except NotFoundError:
            return
        raise InstanceExistsError(run_id)

    async def _mark(self, run_id: str, steps: list[str]) -> None:
        async with self._lock:
            now = self._clock.now()
            marks = await self._store.kv_get(*_MARKS, now=now, default={})
            if run_id in marks:  # a mocked start of that id is under way
                raise InstanceExistsError(run_id)
            marks[run_id] = steps
            await self._store.kv_set(*_MARKS, marks, now=now)

    async def _unmark(self, run_id: str) -> None:
        try:
            async with self._lock:
                now = self._clock.now()
                marks = await self._store.kv_get(*_MARKS, now=now, default=MISSING)
                if marks is not MISSING and marks.pop(run_id, None) is not None:
                    await self._store.kv_set(*_MARKS, marks, now=now)
        except Exception as error:  # the next start drops a mark of a finished run
            logger.warning("the replay mark of run %s was not removed: %s", run_id, error)


def _checked_mocks(flow: CompiledFlow, mock_steps: Any) -> dict[str, Any]:
    if mock_steps is None:
        return {}
    if not isinstance(mock_steps, Mapping):
        raise ConfigurationError(
            "mock_steps", mock_steps, 'a dict of step ids to functions: {"charge": fake_charge}'
        )
    known = flow.mockable
    for step, mock in mock_steps.items():
        if step not in known:
            raise ConfigurationError(
                "mock_steps", step, f"the id of a step of flow {flow.id!r} (one of {known})"
            )
        if not callable(mock):
            raise ConfigurationError(
                f"mock_steps[{step!r}]", mock, "a function taking what the step's function takes"
            )
    return dict(mock_steps)


def _resumable(
    run_id: str,
    stored: tuple[SnapshotRecord, InstanceState] | None,
    payload: Any,
    mock_steps: Mapping[str, Any] | None,
    instance_id: str | None,
) -> Resumed:
    """What a resume of the run ``state`` keeps (``replay(resume=True)``): a run that failed or
    was canceled (not for a migration: its successor goes on), with its recorded payload (the
    outputs it kept were made from that one), no mocks and no id of its own (one resume a run,
    asked again: the same). ``stored`` (its snapshot and state, read once for the replay)
    None: the run waits in its flow's queue."""
    if payload is not None:
        raise ConfigurationError(
            "payload",
            payload,
            "none with resume=True: a resume keeps the steps the run completed, which its "
            "recorded payload made (replay it from the start to give another)",
        )
    if mock_steps:
        raise ConfigurationError(
            "mock_steps", mock_steps, "none with resume=True (replay it from the start)"
        )
    if instance_id is not None:
        raise ConfigurationError(
            "instance_id",
            instance_id,
            "none with resume=True: a resume's id is its run's (one resume a run: asked again, "
            "the same one answers)",
        )
    subject = f"run {run_id!r}"
    status = "queued" if stored is None else stored[0].status
    if stored is None or status not in ("failed", "canceled"):
        raise refused(
            subject,
            f"it is {status}: a resume goes on from where a failed or canceled run stopped",
            "replay it from the start instead (without resume)",
            ReplayRefusedError,
        )
    state = stored[1]
    if state.migrated_to is not None:
        raise refused(
            subject,
            f"it was canceled for its migration to {state.migrated_to!r}, which goes on from it",
            f"resume {state.migrated_to!r} instead if that one failed",
            ReplayRefusedError,
        )
    outputs, caught, children = carried_on(state, None, keys=True)
    kept = list(carried_events(state))
    answered = answered_errors(state, outputs)
    # the root's payload as it was started, not the resume it was handed in turn: each resume
    # of a resume held the one before's twice (its root, and its root's entry among the
    # children), and a chain of 20 stored 2 GB a run (h44)
    root = sources_of(state)[0]
    root = msgspec.structs.replace(root, outputs={}, payload=_unresumed(root.payload))
    for n, child in enumerate(children):
        if child.path == () and not child.place:  # the root's entry: matched by path alone
            children[n] = msgspec.structs.replace(child, payload=_unresumed(child.payload))
    return Resumed(
        version=state.version,
        outputs=outputs,
        caught=caught,
        children=children,
        kept=kept,
        answered=answered.errors,
        answered_types=answered.types,
        root=root,
    )


def _unresumed(stored: Any) -> Any:
    """A flow run's stored trigger without the resume it was handed (``TriggerEnvelope.
    resumed``): its steps' outputs are carried apart."""
    if type(stored) is TriggerEnvelope and stored.resumed is not None:
        return msgspec.structs.replace(stored, resumed=None)
    if type(stored) is dict and stored.get("resumed") is not None:
        return {key: value for key, value in stored.items() if key != "resumed"}
    return stored
