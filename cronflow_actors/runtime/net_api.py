"""The net API of ``Runtime``: start and cancel workflow instances, wait for their end, act
on work items (the external boundary: actions under their policies), and query the last
durable state of instances, tasks and work items."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from cronflow_actors.engine.actors import decode_state
from cronflow_actors.engine.context import WorkflowInfo, WorkItemInfo
from cronflow_actors.engine.states import TaskState, WorkflowState, WorkItemVerb, is_final
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.errors import (
    ConfigurationError,
    InternalOnlyActionError,
    InvalidStateTransitionError,
    NotFoundError,
)
from cronflow_actors.flow.envelope import flow_payload
from cronflow_actors.kernel import running_loop
from cronflow_actors.messages import SnapshotRecord
from cronflow_actors.messages.engine import (
    CancelWorkflow,
    InitializeChildWorkflow,
    InitializeWorkItem,
    InstanceState,
    Principal,
    StartWorkflow,
    Stats,
    WorkItemAction,
)
from cronflow_actors.net.spec import awaited
from cronflow_actors.runtime.flow_runs import is_flows_run
from cronflow_actors.runtime.give_up import GiveUpMethods
from cronflow_actors.runtime.instances import root_of
from cronflow_actors.runtime.migrations import MigrationLinks
from cronflow_actors.runtime.runs import check_cancel_reason, check_instance_id
from cronflow_actors.runtime.work_list import OpenWorkItem, work_list

__all__ = ["NetDescription", "NetMethods"]


class NetDescription(msgspec.Struct, frozen=True, kw_only=True):
    """A registered net workflow, as ``get_nets`` describes it."""

    name: str
    version: str | None
    """The version new instances take (None: every version is deprecated)."""
    versions: list[str]
    """Every version registered, in registration order."""
    deprecated: list[str]
    migrations: list[tuple[str, str]]
    """The migrations registered between its versions, (from, to)."""
    actions: list[str]
    """The actions of its current version's root an outside caller may take (``initialize``,
    ``cancel``: declared with ``net.action``). Its current version: the one new instances
    take, or its newest if every version is deprecated."""
    awaits: list[str] = msgspec.field(default_factory=list)
    """The events its current version's work items wait for (``WaitSpec(kind="event")``)."""
    item_actions: dict[str, list[str]] = msgspec.field(default_factory=dict)
    """The actions an outside caller may take on the work items of each of its current root's
    tasks (``start``, ``complete``, ...: declared with ``net.action``), by task; tasks with none
    left out (newcomer h33 F11: only the workflow's were listed)."""


_A_FLOW = (
    "{!r} is a Cronflow-style flow, whose runs an outside caller reaches through "
    "Runtime.{} (POST /runs{})"
)
"""The advice of a net action refused on a flow's run: the flow's own door."""


class NetMethods(GiveUpMethods):
    """Workflow and work-item calls and queries of ``Runtime`` (which inherits them)."""

    # -- workflow calls -------------------------------------------------------------------------

    async def start_workflow(
        self,
        name: str,
        payload: Any = None,
        *,
        version: str | None = None,
        principal: Principal | None = None,
        instance_id: str | None = None,
    ) -> str:
        """Initialize a root instance; returns its id once it is durable. External callers
        need the workflow's custom ``initialize`` action. ``instance_id`` (letters, digits,
        ``-`` and ``_``) makes the start idempotent: an id already in use raises
        ``InstanceExistsError`` and starts nothing, also when two starts of it race."""
        self._check_running("start a workflow")
        if instance_id is not None:
            check_instance_id(instance_id)
            await self.runs.check_free(instance_id)
        await self._recovered(name)
        spec = self.registry.for_new_instance(name, version)
        trigger = "manual" if principal is None else "api"
        if name in self.catalog.roots and principal is not None:  # (the other door's answer:
            # a 404, where a 403 "Forbidden" read as a missing right: console h40 F7)
            nets = [n.name for n in self.get_nets()]
            raise NotFoundError(
                "net workflow",
                name,
                f"this runtime (registered nets: {nets})",
                advice=_A_FLOW.format(name, "trigger", ""),
            )
        if name in self.catalog.roots:  # a flow's run: its payload travels in an envelope
            payload = flow_payload(payload)
        net = name not in self.catalog.roots  # (a flow's run started here is a flow's)
        command = StartWorkflow(payload=payload, principal=principal, trigger=trigger, net=net)
        # its place under max_active_runs first, before its id is claimed (admission.py)
        return await self.instances.with_place(
            lambda: self.instances.start(spec, command, instance_id)
        )

    def get_nets(self) -> list[NetDescription]:
        """The registered net workflows by name (flows are ``get_workflows``'): their versions,
        the one new instances take, the deprecated ones, the migrations registered between
        them and what an outside caller may do to an instance (newcomer h27 F7: a rolling
        upgrade could not check from outside that a net's versions and migration were there)."""
        nets = []
        registry = self.registry
        for name in registry.names():
            if name in self.catalog.roots or name in self.catalog.compiled:
                continue  # a flow's compiled net
            versions = registry.versions(name)
            deprecated = [v for v in versions if registry.is_deprecated(name, v)]
            active = [v for v in versions if v not in deprecated]
            # what new instances do (conform h35 F4: a deprecated newest was described)
            current = registry.get(name, active[-1] if active else versions[-1])
            migrations = [(m.from_version, m.to_version) for m in registry.migrations(name)]
            nets.append(
                NetDescription(
                    name=name,
                    version=active[-1] if active else None,
                    versions=versions,
                    deprecated=deprecated,
                    migrations=migrations,
                    actions=sorted(current.actions),
                    awaits=awaited(current),
                    item_actions={
                        task: sorted(spec.work_item.actions)
                        for task, spec in current.tasks.items()
                        if spec.work_item is not None and spec.work_item.actions
                    },
                )
            )
        return nets

    async def cancel_workflow(
        self,
        workflow_id: str,
        *,
        principal: Principal | None = None,
        reason: str = "",
        by: str | None = None,
        terminate: bool = False,
    ) -> None:
        """Cancel a workflow top-down (a child workflow's composite task then hears of it).
        ``reason``: why, recorded as its error (up to 500 characters on one line); ``by``: who
        asked, for its audit trail, when ``principal`` (whom its cancel action admits) is not
        given; ``terminate``: no activity and no ``cancel`` callback runs in it (``cancel``).

        A root canceled for a migration whose next run never started (its start raised) is
        ended; its cancel gives that migration up (as ``cancel`` of the run does), by the
        caller who asked for the migration (a net's) or any (a flow's)."""
        if terminate and root_of(workflow_id) != workflow_id:  # (its parent's code skipped
            raise ConfigurationError(  # too: the parent's next task had no item, review h42 F3)
                "terminate",
                terminate,
                f"false for {workflow_id!r}, a child workflow: a terminate ends a whole run, none "
                f"of its code running; cancel this child plainly, or terminate its run "
                f"{root_of(workflow_id)!r}",
            )
        try:
            await self._cancel_instance(workflow_id, principal, reason, by, terminate)
        except InvalidStateTransitionError:  # ended: for a migration that is pending? (a root's)
            root = root_of(workflow_id) == workflow_id
            if not root or not await self._give_up_migration(workflow_id, principal, reason):
                raise

    async def _cancel_instance(
        self,
        workflow_id: str,
        principal: Principal | None,
        reason: str,
        by: str | None,
        terminate: bool = False,
    ) -> None:
        """``cancel_workflow`` of an instance that has not ended (``terminate``: without its
        code, ``cancel(..., terminate=True)``)."""
        check_cancel_reason(reason)
        cancel = CancelWorkflow(
            workflow_id=workflow_id, principal=principal, reason=reason, by=by, terminate=terminate
        )
        try:
            await self._send(workflow_id, cancel)
        except InternalOnlyActionError as refused:
            # a flow's run has no cancel action: say which door cancels it
            snapshot = await self.instances.read(root_of(workflow_id))
            if not self._a_flows_run(snapshot):
                raise
            root = root_of(workflow_id)  # a part of a run is canceled with its run
            advice = _A_FLOW.format(snapshot.workflow, "cancel", f"/{root}/cancel")
            raise InternalOnlyActionError(refused.element, "cancel", advice=advice) from None

    def _a_flows_run(self, snapshot: SnapshotRecord) -> bool:
        """Whether the run of ``snapshot`` is a flow's (``flow_runs.is_flows_run``): one whose
        flow is registered here as nothing was refused as a net instance's, whose cancel action
        no caller could pass (hostile h28 M2)."""
        return is_flows_run(
            snapshot.workflow,
            lambda: decode_state(snapshot.body, snapshot.instance_id),
            flows=self.catalog.roots,
        )

    async def migrate(
        self, workflow_id: str, to_version: str, *, principal: Principal | None = None
    ) -> str:
        """Migrate root instance ``workflow_id`` to version ``to_version`` of its workflow
        (spec section 9); returns the id of the new root once the migration is durable.

        The old root is canceled (reason ``migration``: its ``cancel`` action is skipped, its
        activities run) and a root of the target version starts in fast-forward mode, through
        every version on the way (one registered ``net.migration`` per step; a Cronflow-style
        flow may go straight to any registered version). The new root's tasks are
        fast-forwarded or run as their migrators say (``net.migration``); a flow's steps that
        completed in the old run keep their recorded outputs. Durable: a crash in the middle
        is carried on when a runtime starts again. ``migration_links`` finds either side
        from the other. ``MigrationError`` (nothing changed) for an instance that has ended
        or was migrated, an unknown or deprecated version, no route of migrations.

        ``principal``: who asks, when it is someone outside (an HTTP caller; None, the default,
        is this process's own call). Since a migration ends the old root, a net instance's
        ``cancel`` action must admit that caller (authenticated, its policy asked; its callback
        is not run), as for ``cancel_workflow``, or the call is refused and nothing changes;
        a flow's run has no cancel action of its own (its migration, like its cancel, is an
        operator's call). The old root's cancel span records the caller."""
        self._check_running("migrate a workflow")
        return await self.migrations.migrate(workflow_id, to_version, principal)

    async def migration_links(self, workflow_id: str) -> MigrationLinks:
        """How root instance ``workflow_id`` stands to migrations: ``migrated_from`` (and
        ``from_version``) if a migration started it, ``migrated_to`` if one replaced it."""
        return await self.migrations.links(root_of(workflow_id))

    async def wait_workflow(self, workflow_id: str) -> WorkflowInfo:
        """Return once the root instance ``workflow_id`` is completed, failed or canceled."""
        self._check_running("wait for a workflow")
        if root_of(workflow_id) != workflow_id:
            raise NotFoundError(
                "root workflow instance", workflow_id, "wait_workflow (a child's id was given)"
            )
        ended = self._ended.get(workflow_id)
        if ended is not None:
            return ended
        # Registered before anything is awaited, so an end in between is not missed.
        future: asyncio.Future[WorkflowInfo] = running_loop().create_future()
        self._waiters.setdefault(workflow_id, []).append(future)
        try:
            if workflow_id not in self.instances:
                # (in memory and not ended: its end will be announced, and if its actor stops
                # first, _instance_stopped looks at the store for the waiters)
                info = await self.workflow(workflow_id)
                if is_final(info.state):
                    self._unwait(workflow_id, future)
                    return info
            return await future
        except BaseException:
            # a wait given up (a timeout, a long poll's end) leaves nothing behind: a run that
            # waits a week for a person was waited for by every poll of it until it ended
            self._unwait(workflow_id, future)
            raise

    def _unwait(self, workflow_id: str, future: asyncio.Future[WorkflowInfo]) -> None:
        waiters = self._waiters.get(workflow_id)
        if waiters is not None and future in waiters:
            waiters.remove(future)
            if not waiters:
                del self._waiters[workflow_id]

    # -- work item calls ---------------------------------------------------------------------------

    async def initialize_work_item(
        self,
        workflow_id: str,
        task: str,
        payload: Any = None,
        *,
        principal: Principal | None = None,
    ) -> str:
        """Initialize a work item of ``task`` (its latest generation); returns its id."""
        command = InitializeWorkItem(
            workflow_id=workflow_id, task=task, payload=payload, principal=principal
        )
        result: str = await self._send(workflow_id, command)
        return result

    async def initialize_workflow(
        self,
        workflow_id: str,
        task: str,
        payload: Any = None,
        *,
        workflow: str | None = None,
        principal: Principal | None = None,
    ) -> str:
        """Initialize a child workflow of composite ``task`` (its latest generation), through
        the child's ``initialize`` action; returns its id. ``workflow``: the child type, for a
        dynamic composite task. What a composite task whose children were canceled before it
        started needs to go on (a task's twin: ``initialize_work_item``)."""
        command = InitializeChildWorkflow(
            workflow_id=workflow_id, task=task, payload=payload, principal=principal, child=workflow
        )
        result: str = await self._send(workflow_id, command)
        return result

    async def start_work_item(
        self, work_item_id: str, payload: Any = None, *, principal: Principal | None = None
    ) -> None:
        await self._act("start", work_item_id, payload, principal)

    async def complete_work_item(
        self, work_item_id: str, payload: Any = None, *, principal: Principal | None = None
    ) -> None:
        await self._act("complete", work_item_id, payload, principal)

    async def fail_work_item(
        self, work_item_id: str, payload: Any = None, *, principal: Principal | None = None
    ) -> None:
        await self._act("fail", work_item_id, payload, principal)

    async def cancel_work_item(
        self, work_item_id: str, payload: Any = None, *, principal: Principal | None = None
    ) -> None:
        await self._act("cancel", work_item_id, payload, principal)

    async def reset_work_item(
        self, work_item_id: str, payload: Any = None, *, principal: Principal | None = None
    ) -> None:
        await self._act("reset", work_item_id, payload, principal)

    async def _act(
        self, action: str, work_item_id: str, payload: Any, principal: Principal | None
    ) -> None:
        command = WorkItemAction(
            action=WorkItemVerb(action),
            work_item_id=work_item_id,
            payload=payload,
            principal=principal,
        )
        try:
            await self._send(work_item_id, command)
        except NotFoundError as missing:  # of the item named (hostile h38 F4: "no workflow
            if missing.kind != "workflow instance":  # instance 'abc'" for an item 'abc')
                raise
            raise NotFoundError("work item", work_item_id) from None
        except InternalOnlyActionError as refused:  # a flow's step: its run's doors (hostile h29)
            snapshot = await self.instances.read(root_of(work_item_id))
            if not self._a_flows_run(snapshot):
                raise
            advice = (
                f"{snapshot.workflow!r} is a Cronflow-style flow, whose steps an outside caller "
                "reaches through Runtime.resume (POST /resume/{token}: a pause's token) or "
                f"Runtime.cancel (POST /runs/{root_of(work_item_id)}/cancel)"
            )
            raise InternalOnlyActionError(refused.element, action, advice=advice) from None
        except InvalidStateTransitionError as ended:
            moved = None if ended.allowed else await self._moved_to(work_item_id)
            if moved is None:
                raise
            raise InvalidStateTransitionError(  # where its work went (newcomer h27 F6)
                ended.kind,
                ended.ident,
                ended.current,
                ended.requested,
                [],
                advice=f"its instance was migrated to {moved!r}, where its work goes on (its "
                f"work items: GET /workflows/{moved}/tasks/<task>/work-items)",
            ) from None

    async def _moved_to(self, work_item_id: str) -> str | None:
        """The instance a migration replaced the instance of ``work_item_id`` with, if any."""
        try:
            return (await self.migrations.links(root_of(work_item_id))).migrated_to
        except NotFoundError:
            return None

    # -- queries (last durable state) ------------------------------------------------------------

    async def workflow(self, workflow_id: str) -> WorkflowInfo:
        """A root or child workflow instance."""
        state = await self._state(workflow_id)
        return Transaction.workflow_info(_workflow(state, workflow_id))

    async def workflow_state(self, workflow_id: str) -> WorkflowState:
        return WorkflowState((await self.workflow(workflow_id)).state)

    async def task_states(self, workflow_id: str) -> dict[str, TaskState]:
        """``{task: state}`` of a workflow's tasks (implicit conditions are not tasks)."""
        workflow = _workflow(await self._state(workflow_id), workflow_id)
        return {name: TaskState(record.state) for name, record in workflow.tasks.items()}

    async def marking(self, workflow_id: str) -> dict[str, int]:
        """Tokens per condition (implicit ones included)."""
        workflow = _workflow(await self._state(workflow_id), workflow_id)
        return dict(workflow.marking)

    async def work_items(self, workflow_id: str, task: str) -> list[WorkItemInfo]:
        """The work items of ``task``'s latest generation, in creation order."""
        state = await self._state(workflow_id)
        record = _task(_workflow(state, workflow_id), task)
        return [
            Transaction.work_item_info(state.work_items[i])
            for i in record.children
            if i in state.work_items
        ]

    async def work_item(self, work_item_id: str) -> WorkItemInfo:
        try:
            state = await self._state(work_item_id)
        except NotFoundError:  # no instance: no item of it either
            state = None
        item = state.work_items.get(work_item_id) if state is not None else None
        if item is None:
            raise NotFoundError("work item", work_item_id)
        return Transaction.work_item_info(item)

    async def task_stats(self, workflow_id: str, task: str) -> Stats:
        """Children of ``task``'s latest generation per state."""
        record = _task(_workflow(await self._state(workflow_id), workflow_id), task)
        stats: Stats = msgspec.structs.replace(record.stats)  # a copy the caller may keep
        return stats

    async def task_generation(self, workflow_id: str, task: str) -> int:
        record = _task(_workflow(await self._state(workflow_id), workflow_id), task)
        return int(record.generation)

    async def open_work_items(self, workflow_id: str) -> list[OpenWorkItem]:
        """The work items of workflow ``workflow_id``, and of the child workflows below it, that an
        outside caller may act on now, each with those actions: a net's work list. One read of the
        instance's last durable state; a workflow's items by its tasks' order, then its children's,
        breadth first. A started item that waits for a person has its ``token`` (a resume answers it
        too)."""
        state = await self._state(workflow_id)
        top = _workflow(state, workflow_id)
        return work_list(state, top, self.registry.get(state.workflow, state.version))

    async def child_workflows(self, workflow_id: str, task: str) -> list[WorkflowInfo]:
        """The child workflows of composite ``task``'s latest generation."""
        state = await self._state(workflow_id)
        record = _task(_workflow(state, workflow_id), task)
        return [
            Transaction.workflow_info(state.workflows[i])
            for i in record.children
            if i in state.workflows
        ]


def _workflow(state: InstanceState, workflow_id: str) -> Any:
    workflow = state.workflows.get(workflow_id)
    if workflow is None:
        raise NotFoundError("workflow instance", workflow_id)
    return workflow


def _task(workflow: Any, task: str) -> Any:
    record = workflow.tasks.get(task)
    if record is None:
        raise NotFoundError(
            "task", task, f"workflow {workflow.name!r} (tasks: {sorted(workflow.tasks)})"
        )
    return record
