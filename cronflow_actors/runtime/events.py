"""Events: ``publish_event(name, payload)`` starts the flows listening for ``name`` and wakes the
steps waiting for it.

A flow listening with a schema (``on_event(name, schema=...)``) starts only for a payload that
matches it, and gets it as the schema converted it. Refusals are listed in the result; when
every flow listening refused the payload, the event is refused as a whole
(``InvalidEventError``): nothing starts and no waiting step hears of it, as for any bad input.

The waiting steps are found through their durable wake-up rows (``kind="event"``, key the event
name), a page at a time, so only the matching waits are touched and the waiting instances need
not be in memory. Each one gets a ``DeliverEvent`` on its own turn, where its filter decides.
A run held because its definition changed (``runtime/pinning.py``), or whose workflow is not
registered here, cannot take it now: the event is kept in its snapshot and delivered to the step
when the run runs again (or to the steps of the run a migration replaces it with that wait for
it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from cronflow_actors.engine.state_access import storable_value
from cronflow_actors.errors import (
    INFRASTRUCTURE,
    EngineError,
    IdempotencyKeyReusedError,
    InstanceBlockedError,
    InstanceBusyError,
    InstanceExistsError,
    InvalidEventError,
    NotFoundError,
    PublishInterruptedError,
    UnknownWorkflowError,
    clipped,
    refused_in,
)
from cronflow_actors.flow.envelope import TriggerEnvelope
from cronflow_actors.flow.triggers import check_event_name, schema_path
from cronflow_actors.kernel import Clock
from cronflow_actors.messages import Message, Principal, WaitRecord, to_schema
from cronflow_actors.messages.engine import DeliverEvent
from cronflow_actors.messages.migrations import KeptEvent
from cronflow_actors.runtime.catalog import FlowCatalog
from cronflow_actors.runtime.ids import derived_run_id
from cronflow_actors.runtime.pinning import KeptFull
from cronflow_actors.runtime.publish_keys import (
    ABSENT,
    ANOTHER,
    ANSWERS,
    DRIVERS,
    FIRST,
    KEY_DAYS,
    KEYS,
    PUBLISHES,
    STEP_KEYS,
    Cut,
    Trouble,
    canonical,
    checked_key,
    named,
)
from cronflow_actors.runtime.publish_result import EventFilterError, EventRefusal, PublishResult
from cronflow_actors.store import Store

__all__ = ["EventFilterError", "EventRefusal", "Events", "PublishResult"]

logger = logging.getLogger(__name__)

_PAGE = 200
_HOLD_CHANGES = 3
"""Tries to deliver or keep an event for a run held and released meanwhile."""


class Events:
    def __init__(
        self,
        *,
        catalog: FlowCatalog,
        store: Store,
        clock: Clock,
        trigger: Callable[..., Awaitable[str]],
        send: Callable[[str, Message], Awaitable[Any]],
        keep: Callable[[str, KeptEvent], Awaitable[bool]],
        recorded: Callable[[str], Awaitable[TriggerEnvelope]],
    ) -> None:
        self._catalog = catalog
        self._recorded = recorded
        """How a run was started (``Replays.recorded_trigger``)."""
        self._keep = keep
        """Keeps an event for a run that cannot run here (``Pinning.keep``); False if it can."""
        self._store = store
        self._clock = clock
        self._trigger = trigger
        self._send = send
        self._answering: dict[str, tuple[asyncio.Lock, int]] = {}
        """A lock (and its users) per keyed publish whose answer record is written: two of
        one key at once each read it, and the second write dropped the first's runs (the
        reviewer's h27 M2). One process's; on a cluster, two processes' may still race."""

    async def publish(
        self,
        name: str,
        payload: Any = None,
        *,
        idempotency_key: str | None = None,
        once: bool = False,
        principal: Principal | None = None,
    ) -> PublishResult:
        """Start every flow listening with ``on_event(name)`` whose schema (if any) the payload
        matches, and wake every step waiting for ``name`` whose filter accepts it. Returns the
        ids of the runs started, with the refusals; ``InvalidEventError`` (nothing done) when
        every flow listening refused it. With ``idempotency_key``, each flow's run is named by
        the key, so the same publish sent again (after a ``PublishInterruptedError``, a lost
        answer) starts no flow twice: the runs it started before are in its answer again; a
        waiting step that heard it then waits no more, and a held run keeps it once. ``once``
        (a step's publish under its own key): another payload under the key is no reuse but
        a later attempt of the step, which publishes the first attempt's payload again.
        ``principal``: who publishes (a net's event filter and check see it)."""
        check_event_name(name)  # nothing could listen for it: refused, not a 202 to nobody
        payload = storable_value(payload, "payload")  # every listener's alike (retest h38 R3)
        key = checked_key(idempotency_key, 200 + 300 * once)  # (a step's: its key + the name)
        if once and key is not None:  # a step's: its first attempt's payload, whatever this is
            key = await self._step_key(name, key)
            payload = await self._first_payload(name, payload, key)
        accepted: list[tuple[str, Any]] = []
        refused: list[EventRefusal] = []
        for flow in self._catalog.listening(name):
            schema = flow.triggers.event_schemas.get(name)
            if schema is None:
                accepted.append((flow.id, payload))
                continue
            try:
                accepted.append((flow.id, msgspec.to_builtins(to_schema(payload, schema))))
            except msgspec.ValidationError as invalid:
                refusal = EventRefusal(
                    workflow=flow.id, detail=str(invalid), path=schema_path(invalid)
                )
                refused.append(refusal)
        if refused and not accepted:
            raise InvalidEventError(name, refused)
        first, since = True, None  # (a retry's earlier attempt may have woken steps: answered)
        if key is not None:  # taken on: its key names this payload from now on
            first, since = await self._same_payload(name, payload, key)
        for refusal in refused:
            logger.info(
                "event %s: flow %s refused its payload: %s", name, refusal.workflow, refusal.detail
            )
        by = principal.id if principal is not None else None
        started = await self._start(name, accepted, key, refused, by)
        try:
            held, delivered, raised, full = await self._wake(
                name, payload, key, set(started), principal, since=since
            )
        except Cut as cut:  # the runtime's own trouble: a 202 said it was done (pg h43 F4)
            if key is not None:  # its retry is answered with these too (retest h43 N1), if
                with contextlib.suppress(Exception):  # the store still takes it
                    await self._as_before(name, key, cut.held, cut.delivered)
            raise PublishInterruptedError(name, started, cut.error, cut.delivered) from cut.error
        except InstanceBusyError as busy:  # what this publish did, and how to finish it
            again = "with its idempotency key" if key else "with an idempotency key next time"
            doing = (
                f"publishing event {name!r}, which started {len(started)} run(s) and woke some "
                f"of the waiting steps before; publish it again ({again}: no run starts or "
                "hears it twice)"
            )
            raise InstanceBusyError(busy.instance_id, 2, doing) from busy
        if first and not (started or held or delivered or raised or full):
            # a retry of the key's publish, at once with this one, may have started its runs
            started = await self._started_by_key(name, key, accepted)
            if not started:
                await self._did_nothing(name, key, refused)
        if key is not None:
            held, delivered = await self._as_before(name, key, held, delivered)
        reached = started or held or delivered or raised or full or refused
        note = None if reached else self._catalog.unheard(name)
        return PublishResult(
            started, refused, held, delivered, filter_errors=raised, not_kept=full, note=note
        )

    async def _as_before(
        self, name: str, key: str, held: list[str], delivered: list[str]
    ) -> tuple[list[str], list[str]]:
        """The runs that held the publish of ``key`` and those that heard it, by this call and
        the ones before it: a retry finds the steps that heard it waiting no more, and was told
        it reached nobody (conform h27 M3), when its answer should be the one it lost."""
        ident, now, ttl = named(key, name, ""), self._clock.now(), KEY_DAYS * 86_400
        lock, users = self._answering.get(ident) or (asyncio.Lock(), 0)
        self._answering[ident] = (lock, users + 1)
        try:
            async with lock:
                before = await self._store.kv_get(ANSWERS, ident, now=now, default=None)
                was_held, was_delivered = before if isinstance(before, list) else ([], [])
                all_held = [*was_held, *(run for run in held if run not in was_held)]
                all_delivered = [*was_delivered, *(r for r in delivered if r not in was_delivered)]
                if (all_held, all_delivered) != (was_held, was_delivered):
                    answer = [all_held, all_delivered]
                    await self._store.kv_set(ANSWERS, ident, answer, now=now, ttl=ttl)
        finally:
            lock, users = self._answering[ident]
            if users == 1:
                del self._answering[ident]
            else:
                self._answering[ident] = (lock, users - 1)
        return all_held, all_delivered

    async def _start(
        self,
        name: str,
        accepted: list[tuple[str, Any]],
        key: str | None,
        refused: list[Any],
        by: str | None,
    ) -> list[str]:
        """Start each flow listening that took the payload (``accepted``); the ids of the runs
        started (with a key: by this publish or before it, of this payload), each refusal added
        to ``refused``; ``by``: who published (each run's ``started_by``)."""
        started: list[str] = []
        now = self._clock.now()
        for flow_id, converted in accepted:
            event = {"name": name, "payload": converted, "timestamp": now}
            run_payload = (
                {"event": event, **converted} if isinstance(converted, dict) else {"event": event}
            )
            run_id = (
                None
                if key is None
                else derived_run_id("event", PUBLISHES, named(key, name, flow_id))
            )
            try:
                started.append(
                    await self._trigger(
                        flow_id, run_payload, kind="event", instance_id=run_id, derived=True, by=by
                    )
                )
            except InstanceExistsError:  # started by this publish before (its key)?
                assert run_id is not None
                if await self._started_with(run_id, converted):
                    started.append(run_id)
                else:  # by one of another payload, whose retry freed the key meanwhile
                    refused.append(EventRefusal(workflow=flow_id, detail=ANOTHER))
            except INFRASTRUCTURE as trouble:  # the runtime's own (a stop, a store): not the flow's
                if not started:
                    raise  # nothing was taken on: the call may be sent again as it was
                raise PublishInterruptedError(name, started, trouble) from trouble
            except Exception as error:  # the flow's own (its user code, a refusal of its start,
                # whatever the class): the other flows start, and waiting steps hear it
                logger.exception("event %s: flow %s could not start", name, flow_id)
                detail = f"its start raised {type(error).__name__}: {error}"
                refused.append(EventRefusal(workflow=flow_id, detail=detail))
        return started

    async def _step_key(self, name: str, key: str) -> str:
        """A step's own ``key``, in the namespace no caller's key reaches (``STEP_KEYS``); as
        it was, when the step published under it before that namespace (a release before: its
        run again after the upgrade published again, the reviewer's h29 H2). Only a step's own
        publish records a first payload, so no caller made one under the old key."""
        ident, now = named(key, name, ""), self._clock.now()
        if await self._store.kv_get(FIRST, ident, now=now, default=ABSENT) is not ABSENT:
            return key
        return f"{STEP_KEYS}{key}"

    async def _first_payload(self, name: str, payload: Any, key: str) -> Any:
        """The payload a step's first attempt published under ``key`` (kept as long as the key),
        this one if it is the first: a later attempt that sends another (a timestamp) publishes
        that first one again, as a retry, finishing what a crash cut (the final checker's h28
        F1: answered with what the first had done, it left the event unpublished for good)."""
        ident, now, ttl = named(key, name, ""), self._clock.now(), KEY_DAYS * 86_400
        return await self._store.kv_setdefault(FIRST, ident, payload, now=now, ttl=ttl)

    async def _started_by_key(
        self, name: str, key: str | None, accepted: list[tuple[str, Any]]
    ) -> list[str]:
        """The runs ``key``'s ids name that a publish of this payload started (a retry sent
        while this publish was under way: its key is not to be freed, nor this one refused)."""
        if key is None:
            return []
        found = []
        for flow_id, converted in accepted:
            run_id = derived_run_id("event", PUBLISHES, named(key, name, flow_id))
            if await self._started_with(run_id, converted):
                found.append(run_id)
        return found

    async def _started_with(self, run_id: str, converted: Any) -> bool:
        """Whether run ``run_id`` exists and was started by a publish of ``converted``: a key's
        run answers only its own payload's publish (hostile h26 M1: a retry freed the key, a
        publish of another payload took it and was answered with the first one's run)."""
        try:
            payload = (await self._recorded(run_id)).payload
        except NotFoundError:
            return False
        event = payload.get("event") if isinstance(payload, dict) else None
        return isinstance(event, dict) and canonical(event.get("payload")) == canonical(converted)

    async def _did_nothing(self, name: str, key: str | None, refused: list[Any]) -> None:
        """The publish reached nothing: its key, if any, names nothing (kept 30 days, every
        such publish stored a row: the hostile client's h25 L2), so it stays free; and when
        every flow listening refused it (their starts raised), ``InvalidEventError`` (or, when
        the key's run there was another payload's, ``IdempotencyKeyReusedError``: a 422)."""
        if key is not None:
            await self._store.kv_delete(KEYS, named(key, name, ""))
            if any(refusal.detail == ANOTHER for refusal in refused):  # a reuse, as documented
                raise IdempotencyKeyReusedError(f"the publish of event {clipped(name)}", key)
        if refused:
            raise InvalidEventError(name, refused)

    async def _same_payload(self, name: str, payload: Any, key: str) -> tuple[bool, float | None]:
        """Whether this is the first publish of ``key`` (not a retry), and when the first was
        made (None: by a release that did not say); ``IdempotencyKeyReusedError`` if it was
        published with another payload (its digest is kept for ``KEY_DAYS`` days): a retry
        sends the same, and was answered as done while the other payload was dropped (hostile
        h23 L2, h24 M3)."""
        digest = hashlib.sha256(canonical(payload)).hexdigest()
        ident, now, ttl = named(key, name, ""), self._clock.now(), KEY_DAYS * 86_400
        mine = f"{digest} {uuid.uuid4().hex} {now!r}"  # the digest, which publish set it, when
        # one step in the store: of two processes publishing the key at once, one names it
        kept = await self._store.kv_setdefault(KEYS, ident, mine, now=now, ttl=ttl)
        parts = kept.split(" ") if isinstance(kept, str) else []
        if not parts or parts[0] != digest:
            raise IdempotencyKeyReusedError(f"the publish of event {clipped(name)}", key)
        first = kept == mine  # (its own time bounds nothing: another process's clock may be
        # ahead of this one's, and its waits were skipped by the first publish: review h43 F3)
        return first, float(parts[2]) if len(parts) > 2 and not first else None

    async def _wake(
        self,
        name: str,
        payload: Any,
        key: str | None,
        started_here: set[str],
        principal: Principal | None,
        *,
        since: float | None,
    ) -> tuple[list[str], list[str], list[EventFilterError], list[str]]:
        """Deliver the event to every step waiting for ``name``: the runs that keep it (held),
        those whose step took it, those whose step's filter raised, and those that keep no
        more. A run this publish started (``started_here``) may wait for the same name at
        once: the event it started from is not news to it (it hears the next one). A retry of
        a keyed publish first made at ``since`` reaches only the steps waiting then: one that
        began waiting later did not hear it in another run either (a retried "close of day
        1" closed day 2's waiters: cronflow h43 F1; ``engine/heard.py`` keeps that rule within
        a run that heard it)."""
        after = None
        held: list[str] = []
        delivered: list[str] = []
        raised: list[EventFilterError] = []
        full: list[str] = []
        # names the publish in what held runs keep of it (kept once for its key)
        publish = (
            uuid.uuid4().hex if key is None else uuid.uuid5(PUBLISHES, named(key, name, "")).hex
        )
        while True:
            page = await self._store.open_waits("event", key=name, after=after, limit=_PAGE)
            waits = [
                wait
                for wait in page
                if wait.instance_id not in started_here
                and (since is None or wait.created_at <= since)
            ]
            verdicts = await asyncio.gather(
                *(
                    self._deliver(wait, name, payload, publish, key is not None, principal)
                    for wait in waits
                ),
                return_exceptions=True,
            )
            cut = next((v for v in verdicts if isinstance(v, BaseException)), None)
            for wait, verdict in zip(waits, verdicts, strict=True):
                if isinstance(verdict, BaseException):
                    continue
                if isinstance(verdict, EventFilterError):
                    raised.append(verdict)
                elif verdict is _FULL:
                    full.append(wait.instance_id)
                elif verdict is not None:
                    (delivered if verdict else held).append(wait.instance_id)
            if isinstance(cut, Trouble):
                raise Cut(cut.error, sorted(set(delivered)), sorted(set(held)))
            if cut is not None:
                raise cut
            if len(page) < _PAGE:
                return sorted(set(held)), sorted(set(delivered)), raised, sorted(set(full))
            after = (page[-1].created_at, page[-1].wait_id)

    async def _deliver(  # noqa: PLR0917 - _wake passes its own arguments on
        self,
        wait: WaitRecord,
        name: str,
        payload: Any,
        publish: str,
        keyed: bool,
        principal: Principal | None,
    ) -> bool | EventFilterError | object | None:
        """True if the waiting step took the event; False if the run cannot run here (held, or
        its workflow not registered: the event is kept for it, as part of ``publish``); what
        its filter raised, if it did; None otherwise: its filter refused it, its step no longer
        waits, or, held and released again and again meanwhile, it could be neither delivered
        nor kept (logged as an error)."""
        command = DeliverEvent(  # a keyed publish sent again reaches no step that waits since
            work_item_id=wait.wait_id,
            event=name,
            payload=payload,
            publish=publish if keyed else None,
            principal=principal,
        )
        busy = 0
        for _attempt in range(_HOLD_CHANGES + _BUSY_TRIES):
            try:
                took = await self._send(wait.instance_id, command)
                return True if took else None  # None: its filter refused, or it waits no more
            except InstanceBusyError:
                # another process's transaction holds the run's row (a process paused in it):
                # asked again while the server ends such a transaction; then the publish fails
                # (503: publish it again; with its idempotency key, no run hears it twice)
                busy += 1
                if busy >= _BUSY_TRIES:
                    raise
                continue
            except (InstanceBlockedError, UnknownWorkflowError) as cannot_run:
                kept = KeptEvent(
                    work_item_id=wait.wait_id,
                    event=name,
                    payload=payload,
                    publish=publish,
                    principal=principal,
                )
                try:
                    if not await self._keep(wait.instance_id, kept):
                        continue  # it can run now: it can take the event
                except KeptFull as full:
                    logger.warning(
                        "event %s for %s (run %s): %s", name, wait.wait_id, wait.instance_id, full
                    )
                    return _FULL  # not kept: ``not_kept`` lists it, not ``held``
                reason = (
                    cannot_run.reason
                    if isinstance(cannot_run, InstanceBlockedError)
                    else str(cannot_run)
                )
                logger.warning(
                    "event %s for %s (run %s) is kept until the run runs again: %s",
                    name,
                    wait.wait_id,
                    wait.instance_id,
                    reason,
                )
                return False
            except INFRASTRUCTURE as trouble:  # not the step's: it did not hear it (pg h43 F4)
                raise Trouble(trouble) from trouble
            except EngineError as error:
                logger.debug("event %s not delivered to %s: %s", name, wait.wait_id, error)
            except Exception as error:  # the store's driver's, unless the filter raised it
                driver = type(error).__module__.partition(".")[0] in DRIVERS
                if driver and refused_in(error) is None:  # (review h43 F1)
                    raise Trouble(error) from error  # (a claim's connection cut, say)
                logger.exception(
                    "the filter of %s (run %s) raised; the event is not delivered",
                    wait.wait_id,
                    wait.instance_id,
                )
                detail = f"{type(error).__name__}: {error}"
                return EventFilterError(run_id=wait.instance_id, detail=detail)
            return None
        logger.error(
            "event %s for %s (run %s) was neither delivered nor kept: the run was held and its "
            "snapshot kept changing meanwhile (%d tries); publish the event again",
            name,
            wait.wait_id,
            wait.instance_id,
            _HOLD_CHANGES,
        )
        return None  # not kept: not one of the runs ``held`` lists


_FULL = object()
"""``_deliver``'s word for a run that keeps no more events (``KeptFull``)."""

_BUSY_TRIES = 4
"""Tries to deliver an event to a run whose row another process keeps locked, 2 s each (the
server ends a transaction left idle after ``idle_transaction_timeout``: the lease's duration,
5 s by default)."""
