"""The Cronflow-style API of ``Runtime``: runs of registered flows (trigger, wait, inspect,
list, cancel, replay), human pauses, events, and what the registered flows say of themselves.
Each call goes to the part that does it (``runs``, ``run_views``, ``pauses``, ``events``,
``replays``, ``catalog``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import msgspec
from msgspec.structs import replace

from cronflow_actors.errors import (
    InvalidStateTransitionError,
    NotFoundError,
)
from cronflow_actors.flow.envelope import TriggerEnvelope, open_envelope
from cronflow_actors.messages.engine import Principal, StartWorkflow
from cronflow_actors.messages.migrations import MigrationRecord
from cronflow_actors.runtime.catalog import WorkflowDescription
from cronflow_actors.runtime.ids import resume_id
from cronflow_actors.runtime.instances import root_of
from cronflow_actors.runtime.net_api import NetMethods
from cronflow_actors.runtime.pages import Page
from cronflow_actors.runtime.pauses import PausedRun
from cronflow_actors.runtime.pinning import not_registered
from cronflow_actors.runtime.publish_result import PublishResult
from cronflow_actors.runtime.run_views import RunInfo, RunResult, RunStatus
from cronflow_actors.runtime.runs import check_cancel_reason
from cronflow_actors.runtime.schedules import SchedulePause

__all__ = ["FlowMethods"]

_ENDED = frozenset((RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED))


def _went_on(info: RunInfo) -> tuple[str | None, str]:
    """The run ``info``'s work went on in, and how (migrated, resumed)."""
    return (info.migrated_to, "migrated") if info.migrated_to else (info.resumed_as, "resumed")


class FlowMethods(NetMethods):
    """Runs, pauses and events of ``Runtime`` (which inherits them); a run is a net instance,
    so these build on the net API."""

    async def _start_run(
        self,
        name: str,
        payload: Any,
        instance_id: str | None,
        dequeued: bool,
        *,
        canceled: bool = False,
        reason: str = "",
        by: str | None = None,
        terminated: bool = False,
    ) -> str:
        """A run of a flow (``dequeued``: taken off its concurrency queue in the same
        transaction; ``canceled``: a queued run recorded as canceled, none of its steps run,
        ``reason`` its error, ``by`` who canceled it).
        Callers have waited for the flow's recovery (``Runs.trigger``), or are part of it (the
        queue's restore)."""
        self._check_running("cancel a queued run" if canceled else "start a run")
        spec = None
        if instance_id is not None:
            spec = self.replays.spec_for(instance_id, name, None)
        versions = self.registry.versions(name)
        if spec is None and canceled and versions:  # it runs nothing: deprecated will do
            spec = self.registry.get(name, versions[-1])
        if spec is None:
            spec = self.registry.for_new_instance(name)
        envelope = open_envelope(payload)
        # a replay is counted as one, not as another start by its run's trigger (a webhook's)
        trigger = "replay" if envelope.replay_of is not None else envelope.kind
        command = StartWorkflow(
            payload=payload,
            dequeued=dequeued,
            trigger=trigger,
            canceled=canceled,
            terminated=terminated,
            reason=reason,
            by=envelope.by,
            canceled_by=by,
            # (a resume canceled in its queue keeps what it was to carry, for its own resume:
            # newcomer h27 F2, whose resume ran its run's completed steps again)
            migration=self._kept_steps(name, envelope, spec.version),
            kept=tuple(envelope.resumed.kept) if envelope.resumed is not None else (),
        )
        return await self.instances.start(spec, command, instance_id)

    def _kept_steps(
        self, workflow: str, envelope: TriggerEnvelope, version: str
    ) -> MigrationRecord | None:
        """A replay that resumes its run: the steps that run completed, fast-forwarded with
        the outputs it recorded (the resume's envelope keeps them, so a queued one starts the
        same if that run is deleted meanwhile), as a migration of a flow carries them: those
        of ``version``'s steps."""
        resumed = envelope.resumed
        if resumed is None or envelope.replay_of is None:
            return None
        steps = self.catalog.user_steps(workflow, version)
        return MigrationRecord(
            workflow=workflow,
            from_instance=envelope.replay_of,
            from_version=resumed.version,
            to_version=version,
            fast_forward={k: v for k, v in resumed.outputs.items() if steps is None or k in steps},
            caught=resumed.caught,
            answered=dict(resumed.answered),  # (a copy: consumed as it is used)
            answered_types=dict(resumed.answered_types),
            keys=resumed.keys,
            registered=False,
            source=[]
            if (root := resumed.root) is None
            else [replace(root, outputs=dict(resumed.outputs))],
            # copies: consumed as they are used, and the lists are the run's recorded trigger's
            children=[
                replace(c, outputs=dict(c.outputs), items=list(c.items), keys=list(c.keys))
                for c in resumed.children
            ],
        )

    async def trigger(
        self,
        workflow: str,
        payload: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        instance_id: str | None = None,
        principal: Principal | None = None,
    ) -> str:
        """Start a run of a registered flow; returns its id once the start is durable (it does
        not wait for the run). ``instance_id`` makes it safe to repeat (``InstanceExistsError``
        when that id is taken). A flow at its concurrency limit queues the run instead.
        ``principal``: who asks (an HTTP caller's token): its id is the run's ``started_by``
        and is on its ``Action.initialize`` span."""
        by = principal.id if principal is not None else None
        return await self.runs.trigger(
            workflow, payload, headers=headers, instance_id=instance_id, by=by
        )

    async def fire_schedule(
        self,
        workflow: str,
        schedule: str | None = None,
        *,
        instance_id: str | None = None,
        principal: Principal | None = None,
    ) -> str:
        """Start a run of a flow now, as a tick of one of its schedules would (Temporal's
        ``schedule trigger``): its payload is a tick's (``trigger_type``, ``schedule``,
        ``scheduled_at`` this moment, ...) with ``fired_now: true``; returns its id once the
        start is durable. The schedule's own ticks go on as planned. ``schedule``: its cron
        expression as declared (``"0 9 * * * (Europe/Paris)"`` with its zone, where one
        expression has two), or an interval's length (``"every 15m"``); None for a flow's only
        one. ``instance_id`` and ``principal`` as for ``trigger``."""
        by = principal.id if principal is not None else None
        return await self.schedules.fire_now(workflow, schedule, instance_id=instance_id, by=by)

    async def pause_schedules(
        self, workflow: str, *, note: str = "", principal: Principal | None = None
    ) -> SchedulePause:
        """Pause every cron schedule and interval of a flow until ``resume_schedules``
        (Temporal's schedule pause): their ticks start no run, in every process on the
        database, and are not caught up once resumed; ``fire_schedule`` still starts one.
        Paused already: that pause, as it was. ``NotFoundError`` for a flow not registered
        or with no schedule."""
        self._check_running("pause a flow's schedules")
        check_cancel_reason(note, "note")  # (one line, as a cancel's reason: it is logged)
        by = principal.id if principal is not None else None
        return await self.schedules.pause(workflow, note=note, by=by)

    async def resume_schedules(self, workflow: str) -> bool:
        """Resume the schedules ``pause_schedules`` paused: the next tick starts a run, and
        the ticks that passed while they were paused are skipped. Whether they were paused."""
        self._check_running("resume a flow's schedules")
        return await self.schedules.resume(workflow)

    async def schedules_paused(self, workflow: str) -> SchedulePause | None:
        """The pause of a flow's schedules, or None while they run."""
        self.catalog.root(workflow)  # NotFoundError for a flow not registered
        return await self.schedules.paused(workflow)

    async def wait(
        self,
        run_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - a limit, as in asyncio.wait_for
    ) -> RunResult:
        """The run's ``RunResult`` once it is completed, failed or canceled; ``TimeoutError``
        after ``timeout`` seconds, saying where the run stands (a pause it waits at, say)."""
        if timeout is None:  # what wait_for does without a limit, one coroutine fewer per wait
            return await self.runs.wait(run_id)
        try:
            return await asyncio.wait_for(self.runs.wait(run_id), timeout)
        except TimeoutError:
            said = f"run {run_id} did not end within {timeout:g} s"
            raise TimeoutError(f"{said}{await self._standing(run_id)}") from None

    async def _standing(self, run_id: str) -> str:
        """Where an unfinished run stands, for a wait that gave up on it ("" if unknown)."""
        try:
            info = await self.inspect(run_id)
        except Exception:  # (the wait's own error says enough)
            return ""
        waiting = [s for s in info.steps if str(s.status) == "waiting"]
        if not waiting:
            return f": it is {info.status}"
        where = ", ".join(f"{s.id!r} ({s.kind})" for s in waiting)
        said = f": it is {info.status}, at step {where}"
        if any(s.kind in ("human", "pause") for s in waiting):
            said += (
                "; a pause waits for rt.resume(token, payload), its token in rt.list_paused() "
                "(or cronflow-actors paused)"
            )
        return said

    async def inspect(self, run_id: str) -> RunInfo:
        """Status, payload, output, error, and each step's status, output, error, attempts and
        timings (from the last durable state)."""
        return await self.run_views.inspect(run_id)

    async def inspect_when_ended(self, run_id: str, within: float) -> RunInfo:
        """``inspect(run_id)`` once the run has ended, or after ``within`` seconds, or as this
        runtime begins to drain or stop, whichever comes first (a long poll's answer: ``GET
        /runs/{id}?wait=30``; it holds no drain up). A run nobody knows: ``NotFoundError`` at
        once."""
        info = await self.run_views.inspect(run_id)
        if within <= 0 or info.status in _ENDED or self._drain_begun.is_set():
            return info
        ended = asyncio.ensure_future(self.runs.wait(run_id))
        drain = asyncio.ensure_future(self._drain_begun.wait())
        try:
            await asyncio.wait((ended, drain), timeout=within, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in (ended, drain):
                waiting.cancel()
            if ended.done() and not ended.cancelled():
                ended.exception()  # (a stop's RuntimeNotRunningError: the read below says it)
        return await self.run_views.inspect(run_id)

    async def list_runs(
        self,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[RunInfo]:
        """Runs newest first (steps left out; ``inspect`` has them), filtered by workflow and
        status, ``limit`` at a time: pass the page's ``next_cursor`` for the next one. A failed
        or canceled run that was resumed names its resume (``resumed_as``: one read for the
        page; newcomer h35 F5: it read as a failure nobody dealt with)."""
        page = await self.run_views.list_runs(
            workflow=workflow, status=status, limit=limit, cursor=cursor
        )
        resumes = {r.id: resume_id(r.id) for r in page if r.status in ("failed", "canceled")}
        resumed = await self.store.existing_among(list(resumes.values())) if resumes else set()
        if not resumed:
            return page
        runs = [
            msgspec.structs.replace(r, resumed_as=resumes[r.id])
            if resumes.get(r.id) in resumed
            else r
            for r in page
        ]
        return Page(runs, page.next_cursor)

    async def cancel(
        self,
        run_id: str,
        *,
        principal: Principal | None = None,
        reason: str = "",
        terminate: bool = False,
    ) -> None:
        """End a run as canceled: running handlers are cancelled and no later step runs (a
        run still waiting in its flow's queue leaves it, recorded as canceled). ``reason``:
        why, recorded as the run's error (``inspect`` shows it; up to 500 characters on one
        line, "" for none). ``terminate``: none of its code runs as it ends (no activity, no
        ``cancel`` callback; an outside caller of a net instance still passes its ``cancel``
        policy): the way out of a run whose teardown code raises, refusing each cancel.

        ``principal``: who asks, when it is someone outside (an HTTP caller; None, the
        default, is this process's own call). An instance of a net workflow is then canceled
        through its workflow's ``cancel`` action, whose policy decides (as
        ``cancel_workflow(..., principal=)``); a flow's run has no cancel action of its own."""
        check_cancel_reason(reason)
        if root_of(run_id) != run_id:  # a part of a run: canceled, the run went on without it
            raise NotFoundError(
                "run",
                run_id,
                advice=f"it is a part of run {root_of(run_id)!r} (a subflow's run, an item, a "
                "net's child workflow): cancel that run (a net's child: cancel_workflow)",
            )
        try:
            await self._cancel(run_id, principal, reason, terminate)
        except NotFoundError as missing:  # said of the run, as every door of a run says it
            if missing.kind != "workflow instance":
                raise
            raise NotFoundError("run", run_id) from None
        except InvalidStateTransitionError as refused:  # it has ended: a pending migration?
            if not await self._give_up_migration(run_id, principal, reason):
                raise await self._ended_refusal(run_id, refused) from None

    async def _ended_refusal(
        self, run_id: str, refused: InvalidStateTransitionError
    ) -> InvalidStateTransitionError:
        """The refusal to cancel ``run_id``, which has ended, said of the run (not of its
        "workflow"), with the run its work went on in, if any: an operator believed nothing
        ran any more (chaos h32 F3)."""
        try:
            info = await self.inspect(run_id)
        except Exception:  # (the engine's own words say enough)
            return refused
        advice = "it has ended, and nothing changes it any more"
        went, how = _went_on(info)
        current = info.current_run_id
        if went is not None and current is not None:
            # the chain's end: a resume of a resume named the run between, which had ended
            # too, and "cancel that one" was said again (newcomer h33 F4)
            through = how if current == went else "through resumes or migrations"
            ended = await self._has_ended(current)
            advice += f"; its work went on in run {current!r} ({through})" + (
                ", which has ended too" if ended else ": cancel that one"
            )
        return InvalidStateTransitionError(
            "run", run_id, str(info.status), "canceled", [], advice=advice
        )

    async def _has_ended(self, run_id: str) -> bool:
        """Whether run ``run_id`` has ended (False: unknown, or it goes on)."""
        try:
            return (await self.inspect(run_id)).status in _ENDED
        except Exception:
            return False

    async def _cancel_asked(self, run_id: str, reason: str) -> None:
        """A callback after a commit (``on_pause``, ``on_timeout``, an event wait's
        ``on_retry``) called ``ctx.cancel(reason)``: its run is canceled, as by this process's
        own ``cancel``."""
        await self.cancel(root_of(run_id), reason=reason)

    async def _cancel(
        self, run_id: str, principal: Principal | None, reason: str, terminate: bool
    ) -> None:
        """``cancel`` of a run that has not ended (``cancel`` gives a pending migration up)."""
        try:  # which workflow: the snapshot's record says it, no need to decode its state
            snapshot = None if principal is None else await self.instances.read(root_of(run_id))
        except NotFoundError:
            snapshot = None
        if snapshot is not None and not self._a_flows_run(snapshot):
            await self._cancel_instance(run_id, principal, reason, None, terminate)
            return
        by = principal.id if principal is not None else None  # (the audit's principal)
        try:
            await self._cancel_instance(run_id, None, reason, by, terminate)
            return
        except NotFoundError:
            if await self.queues.cancel(run_id, reason=reason, by=by, terminate=terminate):
                return
        # it left its queue meanwhile, or NotFoundError
        await self._cancel_instance(run_id, None, reason, by, terminate)

    async def resume(
        self, token: str, payload: Any = None, *, principal: Principal | None = None
    ) -> None:
        """Continue a run paused by ``human_in_the_loop``; ``ResumeError`` for a token that
        is unknown or whose pause has ended (``.ended``). ``principal``: who asks (an HTTP
        caller's token): its id is recorded as ``resumed_by``, and as ``approved_by`` unless
        the payload names an approver; a net's work item waiting for a person is completed as
        that caller's call of its ``complete`` action (declared, its policy asked)."""
        await self.pauses.resume(token, payload, principal=principal, is_flow=self._a_flows_run)

    async def list_paused(
        self, *, limit: int = 100, cursor: str | None = None, run_id: str | None = None
    ) -> Page[PausedRun]:
        """The runs waiting for a human, oldest first, with their resume tokens (``blocked``
        says why one is held, its resume refused); ``limit`` at a time, fewer when they are
        big (a page ends once its pauses' stored data reaches about 8 MB, ``next_cursor``
        going on; the pause that reaches it is the page's last). ``run_id``: that run's
        pauses only, each one its children or a net's work items wait in (``get_run_pause``
        gives the oldest)."""
        page = await self.pauses.list_paused(limit=limit, cursor=cursor, run_id=run_id)
        return Page([self._with_block(p) for p in page], page.next_cursor)

    def _with_block(self, paused: PausedRun) -> PausedRun:
        """``paused`` with why its run is held (its definition changed under its version, or
        its version is not registered here), if it is."""
        block = self.pinning.held(paused.run_id)
        if block is not None:
            return msgspec.structs.replace(paused, blocked=block.reason)
        missing = self.pinning.unregistered(paused.run_id)
        if missing is None:
            return paused
        workflow, version = missing
        shared = self.instances.shared
        registered = self.registry.versions(workflow)
        why = not_registered(paused.run_id, workflow, version, registered, shared=shared)
        return msgspec.structs.replace(paused, blocked=why)

    async def get_paused(self, token: str) -> PausedRun:
        """The run paused for a human with this resume token; ``ResumeError`` if no run is
        paused with it (``.ended`` when its pause is over)."""
        self._check_running("read a pause")
        return self._with_block(await self.pauses.get(token))

    async def get_run_pause(self, run_id: str) -> PausedRun:
        """The pause run ``run_id`` waits in, with its resume token (the oldest, if a flow's
        children wait in several; ``list_paused`` has them all): one indexed read, however
        many runs are paused. ``NotPausedError`` (a ``NotFoundError``) if the run waits for no
        person, ``NotFoundError`` if there is no such run. A read of the store, as
        ``list_paused`` is: a runtime not started answers it too (the CLI's ``--db`` reads)."""
        return self._with_block(await self.pauses.of_run(run_id))

    async def publish_event(
        self,
        name: str,
        payload: Any = None,
        *,
        idempotency_key: str | None = None,
        principal: Principal | None = None,
    ) -> PublishResult:
        """Start the flows listening for ``name`` and wake the steps waiting for it. Returns
        the ids of the runs started (a list), with ``.refused``: the flows whose
        ``on_event`` schema refused the payload. When every flow listening refused it,
        raises ``InvalidEventError`` and does nothing. With ``idempotency_key`` the same
        publish sent again starts no flow twice (its runs are named by the key).
        ``principal``: who publishes (an HTTP caller's token): a net's work item waiting for
        the event sees it in its filter and check (``ctx.principal``), and its trace names it."""
        return await self.events.publish(
            name, payload, idempotency_key=idempotency_key, principal=principal
        )

    async def emit(self, name: str, payload: Any = None) -> list[str]:
        """``publish_event`` under Cronflow's other name for it."""
        return await self.publish_event(name, payload)

    async def replay(
        self,
        run_id: str,
        *,
        payload: Any = None,
        mock_steps: Mapping[str, Any] | None = None,
        principal: Principal | None = None,
        resume: bool = False,
        instance_id: str | None = None,
        before: list[str] | None = None,
    ) -> str:
        """Start a new run of ``run_id``'s flow (its newest active version) from the run's
        recorded trigger: its payload (or ``payload``, when given), headers, trigger kind and
        path parameters. Returns the new run's id once its start is durable; the new run
        shows ``replay_of`` in ``inspect`` and ``GET /runs/{id}``. Limits apply as to any run.

        ``mock_steps={"step-id": fn}`` replaces those steps' functions for this run only (``fn``
        takes what the step's function takes; the step's retry, timeout and ``on_error`` still
        apply). Mocks are kept in this runtime's memory, never stored: if the runtime stops
        before the replay ends, the next one runs its other steps as usual and fails a mocked
        step that still has to run with ``MockLostError``, rather than run the real one.
        ``NotFoundError`` for an unknown run or a flow no longer registered,
        ``ConfigurationError`` for a mock of a step the flow does not have. ``principal``: who
        asks, as for ``trigger`` (the replay's, not the run's it replays). ``instance_id``:
        the new run's id, as for ``trigger``, to replay once: asked again with it,
        ``InstanceExistsError`` and nothing starts.

        ``resume=True``: go on from where a failed or canceled run stopped, as Temporal's reset
        and DBOS's resume do: the steps it completed keep the outputs it recorded and are not
        run again (shown completed, 0 attempts), the others run (the step that failed first).
        Its recorded payload only, and its own id (``resume:`` and 32 hex digits, one a run:
        asked again, the same one answers; no ``instance_id``); ``MigrationError`` (nothing
        started) for a run that is not failed or canceled. Like a migration's new run, it
        starts without the flow's ``on_start`` hook and its run ``timeout``. ``before``, a
        list, hears the id of a resume started before this call, when that one answers it."""
        self._check_running("replay a run")
        by = principal.id if principal is not None else None
        return await self.replays.replay(
            run_id,
            payload=payload,
            mock_steps=mock_steps,
            by=by,
            resume=resume,
            instance_id=instance_id,
            before=before,
        )

    def get_workflows(self) -> list[WorkflowDescription]:
        """The registered flows by id: id, name, description, tags, version, triggers, limits
        and the names of their secrets, as each one's current version (the one new runs take)
        says, and ``versions``: every version registered."""
        return self.catalog.descriptions()

    def get_workflow(self, workflow_id: str) -> WorkflowDescription:
        """One registered flow (``NotFoundError`` if none has that id)."""
        return self.catalog.description(workflow_id)
