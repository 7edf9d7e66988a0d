"""The dispatcher of one instance's turn: it delivers what the elements say to each other.

The workflows, tasks and work items of an instance are actors without mailboxes of their own
(DESIGN.md, "Messages"): Tasquencer's cascade is atomic and depth-first, so separate mailboxes
would interleave cascades. Instead each element sends through ``tx.send``, and the ``Cascade``
hands the message at once to the element it is for (its ``receive``), returning what that
answers, the way Akka's calling-thread dispatcher runs child actors. The whole cascade runs on
the ``WorkflowActor``'s turn and is committed once.

This is the one module that knows every element (``workflows``, ``tasks``, ``work_items``, and
``work_item_create`` for an item that does not exist yet); they know only the messages. A
message names its addressee by ids, except a child's state change, which goes to its parent: a
``WorkItemStateChanged`` to the item's task, a ``WorkflowStateChanged`` to the composite task
that owns the child workflow, a ``TaskStateChanged`` to the task's workflow. ``CreateWorkItem``
and ``InitializeWorkflow`` make the element they name.

With the audit on, each delivery is also a frame of the transaction's audit trail
(``engine/audit.py``): the operations it sets off are recorded as spans under the operation
that sent it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from cronflow_actors.engine import work_item_create, workflows
from cronflow_actors.engine.tasks import Task
from cronflow_actors.engine.transaction import Send, Transaction
from cronflow_actors.engine.work_items import WorkItem
from cronflow_actors.engine.workflows import Workflow
from cronflow_actors.errors import NotFoundError
from cronflow_actors.messages.audit import ENTER, EXIT, LEAVE
from cronflow_actors.messages.elements import (
    CancelTask,
    CreateWorkItem,
    DisableTask,
    ElementMessage,
    EnableTask,
    EnsureTaskStarted,
    EnsureWorkflowStarted,
    FailWorkflow,
    InitializeWorkflow,
    RunTrigger,
    TearDownWorkflow,
    TearDownWorkItem,
)
from cronflow_actors.messages.engine import (
    CancelWorkflow,
    DeliverEvent,
    FailTaskJob,
    TaskStateChanged,
    WorkflowStateChanged,
    WorkItemAction,
    WorkItemFinished,
    WorkItemStateChanged,
)
from cronflow_actors.net.spec import NetSpec

__all__ = ["Cascade"]

Route = Callable[["Cascade", Any], Awaitable[Any]]


class Cascade:
    """Delivers the element messages of one transaction; installs itself as ``tx.send`` and
    ``tx.send_last`` (the same delivery, without an audit frame inside a turn).
    ``root`` is the definition of the instance's root workflow.

    An element, once addressed, lives for the rest of the turn (its record does not change
    identity within a transaction), so the elements are kept here by id and reused. ``close``
    ends the turn and breaks the cycles it made (the transaction's ``send`` and the dispatcher,
    the dispatcher and its own ``send``), so that a turn's objects (the dispatcher, the elements
    it kept, what they refer to) are freed by reference counting as soon as the turn is over,
    not left to the cyclic collector: a turn is hundreds of objects, thousands of turns run a
    second, and garbage in cycles makes the collector run more often and walk every run in
    flight each time."""

    __slots__ = (
        "_events",
        "_items",
        "_previous",
        "_previous_last",
        "_tasks",
        "_workflows",
        "root",
        "send",
        "tx",
    )

    def __init__(self, tx: Transaction, root: NetSpec) -> None:
        self.tx = tx
        self.root = root
        self._tasks: dict[tuple[str, str], Task] = {}
        self._items: dict[str, WorkItem] = {}
        self._workflows: dict[str, Workflow] = {}
        self._previous, self._previous_last = tx.send, tx.send_last
        if tx.audit is None:
            self.send: Send = self._deliver
            self._events: list[Any] = []
        else:  # each delivery is a frame of the audit trail, in its events
            tx.audit.route = self._deliver
            self._events = tx.audit.events
            self.send = self._turn
        """Deliver ``message`` to its element, depth-first: awaiting it runs the element's
        ``receive`` (and everything that sends in turn) to the end; it resolves to the answer.
        Until ``close``; after it, what ``tx.send`` was before (no dispatcher: it raises)."""
        tx.send = tx.send_last = self.send

    def close(self) -> None:
        """The turn is over: neither the transaction nor the dispatcher reaches it any more."""
        tx = self.tx
        tx.send = self.send = self._previous
        tx.send_last = self._previous_last
        if tx.audit is not None:
            tx.audit.route = None

    async def _turn(self, message: ElementMessage) -> Any:
        """With the audit on, the first message of a turn: the turn's frame (``begin_turn``,
        then ``LEAVE``: ``end_turn``, written out); what it sets off is sent in frames of its
        own (``_framed``), but for an element's last act (``send_last``: delivered as it is,
        no frame)."""
        tx = self.tx
        audit = tx.audit
        assert audit is not None
        tx.send = self._framed
        tx.send_last = audit.send_last if audit.check_last_sends else self._deliver
        audit.begin_turn(message)
        try:
            return await self._deliver(message)
        finally:
            self._events.append(LEAVE)
            tx.send = tx.send_last = self._turn

    async def _framed(self, message: ElementMessage) -> Any:
        """With the audit on, a message sent inside a turn: delivered (``_deliver``, written
        out) as one frame of the audit trail, ``ENTER`` to ``EXIT``: the spans that open in it
        end with it."""
        events = self._events
        events.append(ENTER)
        try:
            try:
                route = _ROUTES[type(message)]
            except KeyError:
                raise TypeError(f"no element receives {message!r}") from None
            if route is _task:
                to_task: Any = message
                key = (to_task.workflow_id, to_task.task)
                element = self._tasks.get(key) or self._new_task(key)
                return await element.receive(to_task)
            return await route(self, message)
        finally:
            events.append(EXIT)

    def _deliver(self, message: ElementMessage) -> Awaitable[Any]:
        try:
            route = _ROUTES[type(message)]
        except KeyError:
            raise TypeError(f"no element receives {message!r}") from None
        if route is _task:  # the hottest route (most messages go to a task), written out
            to_task: Any = message
            key = (to_task.workflow_id, to_task.task)
            element = self._tasks.get(key) or self._new_task(key)
            return element.receive(to_task)
        return route(self, message)

    def task(self, workflow_id: str, name: str) -> Task:
        key = (workflow_id, name)
        element = self._tasks.get(key)
        if element is None:
            workflow = self.tx.state.workflows[workflow_id]
            element = self._tasks[key] = Task(self.tx, workflow, name)
        return element

    def _new_task(self, key: tuple[str, str]) -> Task:
        element = self._tasks[key] = Task(self.tx, self.tx.state.workflows[key[0]], key[1])
        return element

    def work_item(self, work_item_id: str) -> WorkItem:
        element = self._items.get(work_item_id)
        if element is None:
            record = self.tx.work_item(work_item_id)
            element = self._items[work_item_id] = WorkItem(self.tx, record)
        return element

    def workflow(self, workflow_id: str) -> Workflow:
        element = self._workflows.get(workflow_id)
        if element is None:
            record = self.tx.workflow(workflow_id)
            element = self._workflows[workflow_id] = Workflow(self.tx, record)
        return element

    def spec_of_new(self, message: InitializeWorkflow) -> NetSpec:
        """The definition of a workflow about to be made: the root's, or the child type of
        its composite task."""
        if message.parent_id is None or message.parent_task is None:
            return self.root
        parent = self.tx.state.workflows[message.parent_id]
        definition = self.tx.specs[parent.path].tasks[message.parent_task]
        spec = definition.child(message.child)
        if spec is None:
            names = [child.name for child in definition.subworkflows]
            raise NotFoundError(
                "child workflow",
                str(message.child),
                f"task {message.parent_task!r} (it has {names})",
            )
        return spec


# -- routes: one per message type, each returning the receiving element's awaitable --------------


def _task(cascade: Cascade, message: Any) -> Awaitable[None]:
    # the hottest route: the lookup of ``Cascade.task``, inline
    key = (message.workflow_id, message.task)
    element = cascade._tasks.get(key) or cascade._new_task(key)
    return element.receive(message)


def _task_checked(cascade: Cascade, message: Any) -> Awaitable[None]:
    cascade.tx.workflow(message.workflow_id)  # NotFoundError for an unknown workflow
    return cascade.task(message.workflow_id, message.task).receive(message)


def _parent_task(cascade: Cascade, message: WorkflowStateChanged) -> Awaitable[None]:
    child = cascade.tx.state.workflows[message.workflow_id]
    parent_id, task = child.parent_id, child.parent_task
    assert parent_id is not None  # only a child workflow reports its changes
    assert task is not None
    return cascade.task(parent_id, task).receive(message)


def _workflow(cascade: Cascade, message: Any) -> Awaitable[None]:
    return cascade.workflow(message.workflow_id).receive(message)


def _work_item(cascade: Cascade, message: Any) -> Awaitable[Any]:
    return cascade.work_item(message.work_item_id).receive(message)


def _create_work_item(cascade: Cascade, message: CreateWorkItem) -> Awaitable[Any]:
    return work_item_create.create(cascade.tx, message)


def _initialize_workflow(cascade: Cascade, message: InitializeWorkflow) -> Awaitable[None]:
    return workflows.initialize(cascade.tx, cascade.spec_of_new(message), message)


_ROUTES: dict[type, Route] = {
    WorkItemStateChanged: _task,
    WorkflowStateChanged: _parent_task,
    EnableTask: _task,
    EnsureTaskStarted: _task,
    CancelTask: _task,
    DisableTask: _task,
    FailTaskJob: _task_checked,
    TaskStateChanged: _workflow,
    EnsureWorkflowStarted: _workflow,
    TearDownWorkflow: _workflow,
    FailWorkflow: _workflow,
    CancelWorkflow: _workflow,
    WorkItemAction: _work_item,
    RunTrigger: _work_item,
    TearDownWorkItem: _work_item,
    WorkItemFinished: _work_item,
    DeliverEvent: _work_item,
    CreateWorkItem: _create_work_item,
    InitializeWorkflow: _initialize_workflow,
}
