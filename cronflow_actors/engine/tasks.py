"""The task element: enable, start, complete, fail, cancel, disable (spec sections 1.3, 2, 3, 7).

A ``Task`` is an actor on its instance's turn: its record is its state (with the marking of the net
it fires in), and ``receive`` (a ``match`` over ``TaskMessage``) is its one way in. It hears from
its children through ``WorkItemStateChanged`` (work items) and ``WorkflowStateChanged`` (child
workflows of composite tasks): it keeps their stats, runs its ``on_*_state_changed`` activity,
drains the auto-trigger queue, and then, for a terminal change that is not a teardown, asks its
completion policy whether to complete, fail or continue. Its own changes go to its workflow as
``TaskStateChanged``; what it asks of its children, its siblings (enable, disable, cancel) and its
workflow (start, fail) goes through ``tx.send`` too. This module knows no other element; what
it withdraws from its siblings (deferred choice, cancellation region) is ``engine/withdrawal.py``.

Differences from Tasquencer, on purpose (spec section 14):
- a task completes only from ``started``: a policy that says "complete" for a task that never
  started (its only work item was canceled before starting) leaves it enabled;
- a policy that says "fail" when the task starts fails the workflow too, as it does later on;
- a composite task that completes cancels its child workflows that are still running;
- a router that raises while a report is applied (a handler's result, a timer, an event) fails
  the workflow with its error, and an ``on_enabled`` that raises then fails its task (which a
  catching task answers); the report stands (a call is refused, as in Tasquencer).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Final

from cronflow_actors.calls import call_user
from cronflow_actors.engine import fast_forward
from cronflow_actors.engine.chains import asked, enable_next
from cronflow_actors.engine.context import Context, Transition
from cronflow_actors.engine.policies import decision_of, default_answer
from cronflow_actors.engine.states import (
    FINAL_STATES,
    TASK_TRANSITIONS,
    TaskState,
    WorkflowState,
    WorkItemState,
    check_move,
    count_move,
    refuse_move,
)
from cronflow_actors.engine.task_children import Pending as _Pending
from cronflow_actors.engine.task_children import child_changed, create_children, create_held
from cronflow_actors.engine.transaction import Transaction, normalize
from cronflow_actors.engine.withdrawal import (
    asking,
    cancel_region,
    disable_losers,
    failed_by,
    idle_tasks,
    none_can_lose,
    started_tasks,
)
from cronflow_actors.errors import (
    DEADLINE_TYPE,
    INFRASTRUCTURE,
    CancelRunRequested,
    InvalidStateTransitionError,
    StepTimeoutError,
    class_name,
    refuse_call,
)
from cronflow_actors.messages.elements import (
    CancelTask,
    DisableTask,
    EnableTask,
    EnsureTaskStarted,
    EnsureWorkflowStarted,
    FailWorkflow,
    TaskMessage,
    TearDownWorkflow,
    TearDownWorkItem,
)
from cronflow_actors.messages.engine import (
    CancelWorkflow,
    FailTaskJob,
    Stats,
    TaskStateChanged,
    WorkflowRecord,
    WorkflowStateChanged,
    WorkItemStateChanged,
)
from cronflow_actors.net.marking import (
    enable_candidates,
    is_join_satisfied,
    or_join_reads_others,
    production_counts,
    resolve_routes,
    start_counts,
)
from cronflow_actors.net.spec import CaughtFailure, JoinType, SplitType, TaskKind, caught_in

__all__ = ["Task"]

_ENABLEABLE = frozenset(s for s, after in TASK_TRANSITIONS.items() if TaskState.ENABLED in after)
_ACTIVE = frozenset({TaskState.ENABLED, TaskState.STARTED})
# The enum members read on every step's path, as ``Final`` module constants: on CPython 3.11
# every attribute read on an Enum class (``TaskState.STARTED``) goes through ``EnumType``'s
# ``__getattr__`` hook (~900 instructions), a constant is a global (compiled: a C static).
_STARTED: Final = TaskState.STARTED
_COMPLETED: Final = TaskState.COMPLETED
_WORKFLOW_INITIALIZED: Final = WorkflowState.INITIALIZED
_ENABLED: Final = TaskState.ENABLED
_OR_JOIN: Final = JoinType.OR
_AND_SPLIT: Final = SplitType.AND
_DUMMY: Final = TaskKind.DUMMY
_TASK: Final = TaskKind.TASK
_ChildChange = WorkItemStateChanged | WorkflowStateChanged
_AS_IT_STARTS = Transition(prev_state=WorkItemState.STARTED, next_state=WorkItemState.COMPLETED)
"""What a policy is asked as its task starts (spec 1.3, ``maybeComplete``)."""
_SCHEDULING = frozenset(
    {"on_enabled", "on_started", "on_work_item_state_changed", "on_workflow_state_changed"}
)


class Task:
    """One task of one workflow of an instance, for one message."""

    __slots__ = ("_held", "definition", "name", "record", "spec", "tx", "workflow")

    def __init__(self, tx: Transaction, workflow: WorkflowRecord, name: str) -> None:
        self.tx = tx
        self.workflow = workflow
        self.name = name
        self.record = workflow.tasks[name]
        self.spec = tx.specs[workflow.path]
        self.definition = self.spec.tasks[name]
        self._held: list[WorkflowStateChanged] | None = None
        """While it makes several child workflows: those that ended meanwhile, their policy
        asked once all are made (``_create_children``)."""

    def receive(self, message: TaskMessage) -> Awaitable[None]:
        """What the task does with ``message`` (awaiting it carries it out)."""
        # by ``type(message) is``, the most frequent first, not a ``match`` on the classes:
        # a class pattern is an isinstance through the message class's metaclass (~600
        # instructions for each one passed over, ~800 for the one that matches; the messages
        # are final classes); about 15 a run of (a)
        kind = type(message)
        sent: Any = message  # (read as ``kind`` says)
        if kind is WorkItemStateChanged:
            return self._work_item_changed(sent)
        if kind is EnableTask:
            return self._enable(last=True)
        if kind is EnsureTaskStarted:
            return self._ensure_started(silent=sent.silent)
        if kind is WorkflowStateChanged:
            return child_changed(self, sent)
        if kind is CancelTask:
            return self._cancel(teardown=sent.teardown)
        if kind is DisableTask:
            return self._disable()
        if kind is FailTaskJob:
            return self._fail_by_job(sent.error)
        raise TypeError(f"a task does not receive {message!r}")

    # -- the transitions ---------------------------------------------------------------------------

    async def _enable(self, *, last: bool = False) -> None:
        """Enable the task if its join is satisfied and its state allows it (a new generation).
        With no ``on_enabled`` activity it initializes one work item (composite: one child
        workflow); a dummy task runs straight through to completion. ``last``: the caller does
        nothing after (``Transaction.send_last``), as for ``_activity``."""
        workflow, record, name = self.workflow, self.record, self.name
        if record.state not in _ENABLEABLE or workflow.state in FINAL_STATES:
            return
        # only an OR-join reads the others, and only one with both marked and empty inputs
        or_join = self.definition.join is _OR_JOIN and or_join_reads_others(
            self.definition, workflow.marking
        )
        started = started_tasks(workflow) if or_join else ()
        idle = idle_tasks(self.tx, workflow, self.spec) if or_join else ()
        if not is_join_satisfied(self.spec, name, workflow.marking, started, idle):
            return
        if self.tx.chain is not None:  # (a loop that never waits: chains.MOST_ENABLES)
            self.tx.chain.enabled(self.tx, workflow, name)
        record.generation += 1
        self._move(_ENABLED)
        record.children = []
        record.stats = Stats()
        record.error = record.error_type = ""  # (a job's failure of the generation before)
        if self.tx.state.migration is not None and await fast_forward.on_enable(self):
            return  # its migrator (or a recorded output) decided (spec section 9)
        if self.definition.kind is _DUMMY:
            await self._activity("on_enabled")
            await self._ensure_started()
            return
        await self._activity("on_enabled", default_child=True, last=last)

    async def _ensure_started(
        self, failed: Exception | None = None, *, silent: bool = False
    ) -> None:
        """``enabled`` -> ``started`` on the first start of a work item or child workflow: take one
        token from every input condition, disable the competitors that lost their token (deferred
        choice), run ``on_started``, then ask the policy once (a dummy task just completes).
        ``failed``: its ``on_enabled`` raised that while a report was applied; it starts with no
        child and fails with it, as its policy would answer (a catching task completes).
        ``silent``: a fast-forwarded task's start reached it through a child workflow (conform
        h27 M1: a migrated root's ``on_started`` ran again, spec section 9 suppresses it)."""
        tx, workflow, record, name = self.tx, self.workflow, self.record, self.name
        if record.state == _STARTED:
            return
        if _STARTED not in TASK_TRANSITIONS[record.state]:  # (check_move, no call)
            refuse_move("task", (workflow.name, name), record.state, _STARTED)
        if workflow.state == _WORKFLOW_INITIALIZED:
            await tx.send(EnsureWorkflowStarted(workflow_id=workflow.id, silent=silent))
            if workflow.state in FINAL_STATES:
                return  # its workflow's composite task ended it as it started (spec 1.3)
        spec, generation = self.spec, record.generation
        self._move(_STARTED)
        counts, emptied = start_counts(spec, name, workflow.marking)
        tx.mark(workflow, counts, self.definition.inputs)
        if not none_can_lose(spec, name, emptied):  # (a coroutine only where one may lose)
            await disable_losers(tx, workflow, spec, name, emptied, starting=True)
        if failed is not None:
            error = f"on_enabled of task {name!r}: {type(failed).__name__}: {failed}"
            await self._carry_out("fail", error, error_type=class_name(failed))
            return
        if "on_started" in self.definition.activities:
            await self._activity("on_started")
        if self.definition.kind is _DUMMY:
            await self._complete()
            return
        # its activity may have ended (or renewed) it (``_started_in``, written out; ``self.``
        # as mypy holds ``record.state`` to what it was above); a task without a policy takes
        # the default's answer here (``_decide``: a call and a coroutine less, most tasks)
        if self.record.state == _STARTED and record.generation == generation:
            if self.definition.policy is None:
                decision = default_answer(self.definition.kind, record.stats, _AS_IT_STARTS)
            else:
                decision = await self._decide(_AS_IT_STARTS)
            if decision != "continue":  # (what ``_carry_out`` does nothing with: no coroutine)
                await self._carry_out(decision, f"task {name!r} failed when it started")

    async def _complete(self, *, caught: CaughtFailure | None = None, silent: bool = False) -> None:
        """``started`` -> ``completed``: tear down open children, run ``on_completed``, apply
        the cancellation region, produce tokens per the split, enable what follows (and the
        task itself if its join is still satisfied), and let the workflow check its end
        condition. ``caught``: a catching task's failure, its output instead of one reduced
        from its items. ``silent``: fast-forwarded (no reduce, no ``on_completed``)."""
        tx, workflow, record, name = self.tx, self.workflow, self.record, self.name
        if record.state != _STARTED or workflow.state in FINAL_STATES:
            return
        spec, definition = self.spec, self.definition
        if caught is not None:
            workflow.set_output(name, caught.record(), caught=True)
        elif definition.reduce is not None and not silent:
            # the work items of its generation, or its child workflows (a composite task)
            items: list[Any] = [
                tx.work_item_info(tx.state.work_items[i])
                if definition.kind is TaskKind.TASK
                else tx.workflow_info(tx.state.workflows[i])
                for i in record.children
            ]
            output = normalize(await call_user(definition.reduce, items))
            workflow.set_output(name, output)
            workflow.last = output
        change = await self._leave(_COMPLETED, "" if silent else "on_completed")
        or_joins = asking(tx, workflow, spec, name)  # (an OR-join asked meanwhile reads it)
        if definition.cancel_tasks or definition.cancel_conditions:  # (most tasks have none)
            await cancel_region(tx, workflow, spec, name, definition)
        routed = None
        if definition.split is not _AND_SPLIT:
            # a caught failure as a CaughtFailure, which no output is (net.caught reads it)
            failure = caught if caught is not None else caught_in(workflow, name)
            output = failure if failure is not None else workflow.outputs.get(name)
            info = tx.task_info(workflow, name)
            ctx = tx.context(workflow, f"router of task {name!r}", task=info, output=output)
            ctx.answered_error = record.carried_error or None  # (carried: what it answered)
            try:
                routed = resolve_routes(spec, name, await call_user(definition.router, ctx))
            except Exception as error:
                if not tx.reported:  # a call: refused, and nothing of it changes
                    refuse_call(error, f"router of task {name!r} in {workflow.name!r}")
                    raise
                asked(tx, or_joins)
                await tx.send(change)  # a report: its workflow fails with the router's error
                await tx.send_last(failed_by(error, workflow.id, f"router of task {name!r}", tx))
                return
        counts, marked = production_counts(spec, name, workflow.marking, routed)
        tx.mark(workflow, counts, marked, produced_by=name, split=definition.split)
        candidates = enable_candidates(spec, name, workflow.marking, workflow.tasks)
        await enable_next(tx, workflow, name, candidates, self._enable, or_joins, change)

    async def _fail(
        self, error: str, *, cause: str | None = None, error_type: str | None = None
    ) -> None:
        """``started`` -> ``failed``: open children are canceled (no policies), ``on_failed``
        runs, and the workflow fails (which cancels the other active tasks). ``cause``: the
        work item whose failure this is."""
        if self.record.state != TaskState.STARTED:
            return
        change = await self._leave(TaskState.FAILED, "on_failed")
        await self.tx.send(change)
        failed = FailWorkflow(
            workflow_id=self.workflow.id, error=error, cause=cause, error_type=error_type
        )
        await self.tx.send_last(failed)

    async def _fail_by_job(self, error: str) -> None:
        """A job's failure of a task (a deadline: ``StepTimeoutError``): as if its policy said
        so, so a catching task completes with the failure; nothing if it is no longer started.
        The task keeps the error, which no child has."""
        record = self.record
        if record.state == TaskState.STARTED:
            record.error, record.error_type = f"{StepTimeoutError.__name__}: {error}", DEADLINE_TYPE
            failed = f"task {self.name!r}: {record.error}"
            await self._carry_out("fail", failed, error_type=DEADLINE_TYPE)

    async def _cancel(self, *, teardown: bool) -> None:
        """An enabled or started task is canceled (by its workflow's shutdown or a cancellation
        region): its open children are canceled without policies, then ``on_canceled``."""
        record = self.record
        if record.state not in _ACTIVE:
            if teardown:
                return
            check_move("task", (self.workflow.name, self.name), record.state, TaskState.CANCELED)
        change = await self._leave(TaskState.CANCELED, "on_canceled")
        await self.tx.send_last(change)

    async def _disable(self) -> None:
        """An enabled task whose join no longer holds (or whose workflow shuts down)."""
        if self.record.state != TaskState.ENABLED:
            return
        change = await self._leave(TaskState.DISABLED, "on_disabled")
        await self.tx.send_last(change)

    # -- what the children report ------------------------------------------------------------------

    async def _work_item_changed(self, message: WorkItemStateChanged) -> None:
        """The ``on_work_item_state_changed`` analogue: stats, activity (its auto-trigger queue
        drained first), then the policy for a terminal change that is not a teardown."""
        record = self.record
        generation = self.tx.state.work_items[message.work_item_id].generation
        if generation == record.generation:  # (an older one's stats are gone with it)
            count_move(record.stats, message.prev, message.next)
        if message.prev is None:
            record.children.append(message.work_item_id)
            return
        if "on_work_item_state_changed" in self.definition.activities:
            await self._activity("on_work_item_state_changed", changed=message)
        if (
            message.call_policy
            and message.next in FINAL_STATES
            and record.state == _STARTED  # (``_started_in``, written out)
            and record.generation == generation
        ):
            transition = Transition(
                prev_state=message.prev, next_state=message.next, child_id=message.work_item_id
            )
            definition = self.definition
            if definition.policy is None:  # (``_decide``'s default, without its coroutine)
                decision = default_answer(definition.kind, record.stats, transition)
            else:
                decision = await self._decide(transition)
            # ``_carry_out``'s first case written out, and nothing for "continue": no coroutine
            # of it, nor a failure's message formatted (two reprs) for an item that did not fail
            if decision == "complete":
                await self._complete()
            elif decision != "continue":
                item = self.tx.state.work_items[message.work_item_id]  # (not "failed": h44 F3)
                why = item.error or f"its task's policy answered {decision!r} as it {item.state}"
                failed = f"task {self.name!r}: work item {item.id!r}: {why}"
                await self._carry_out(decision, failed, cause=item.id)

    # -- internals ---------------------------------------------------------------------------------

    def _started_in(self, generation: int) -> bool:
        """Whether the task is (still) started in ``generation``: an activity's chain may have
        ended it, or ended it and started the next (spec section 14: a policy asked about one
        generation must not decide the next)."""
        return self.record.state == _STARTED and self.record.generation == generation

    def _move(self, target: TaskState) -> TaskStateChanged:
        tx, record, previous = self.tx, self.record, self.record.state
        if target not in TASK_TRANSITIONS[previous]:  # (check_move, without a call if allowed)
            refuse_move("task", (self.workflow.name, self.name), previous, target)
        record.state = target
        change = TaskStateChanged(
            workflow_id=self.workflow.id,
            task=self.name,
            generation=record.generation,
            prev=previous,
            next=target,
        )
        tx.changes.append(change)
        if tx.audit is not None:
            tx.audit.task_moved(change)
        return change

    async def _leave(self, target: TaskState, activity: str) -> TaskStateChanged:
        """Leave the active states: move, cancel open children (no policies) and the task's
        scheduled jobs, then run the activity for the new state."""
        tx, workflow = self.tx, self.workflow
        change = self._move(target)
        # the open children of the current generation are canceled, policies bypassed
        stats = self.record.stats
        if stats.initialized or stats.started:
            if self.definition.kind is TaskKind.TASK:
                for child_id in list(self.record.children):
                    await tx.send(TearDownWorkItem(work_item_id=child_id))
            else:
                for child_id in list(self.record.children):
                    await tx.send(TearDownWorkflow(workflow_id=child_id))
        tx.cancel_task_jobs(workflow.id, self.name)
        if activity in self.definition.activities:
            await self._activity(activity)
        return change

    async def _decide(self, transition: Transition) -> str:
        return await decision_of(self, transition)

    async def _carry_out(
        self, decision: str, error: str, *, cause: str | None = None, error_type: str | None = None
    ) -> None:
        if decision == "complete":
            await self._complete()
        elif decision == "fail" and self.definition.catch:
            item = self.tx.state.work_items.get(cause) if cause else None
            failure = CaughtFailure(
                error=error,
                error_type=item.error_type if item is not None else error_type,
                error_data=item.error_data if item is not None else None,
            )
            await self._complete(caught=failure)
        elif decision == "fail":
            await self._fail(error, cause=cause, error_type=error_type)

    def _context(
        self, where: str, pending: list[_Pending] | None, changed: _ChildChange | None
    ) -> Context:
        """The ctx of a task's activity, policy or router; ``pending`` collects the children an
        activity initializes (None: it may not)."""
        scheduling = where in _SCHEDULING
        return self.tx.task_context(
            self.workflow, self.name, where, pending, changed, self._check_can_add, scheduling
        )

    def _check_can_add(self, what: str) -> None:
        if (state := self.record.state) not in _ACTIVE:  # done while so, not a state (h44 F4)
            ident, ok = f"{self.workflow.name}/{self.name}", ["enabled", "started"]
            raise InvalidStateTransitionError("task", ident, str(state), what, ok, only_while=True)

    async def _activity(
        self,
        activity: str,
        *,
        changed: _ChildChange | None = None,
        default_child: bool = False,
        last: bool = False,
    ) -> None:
        """Run a task activity, then initialize the children it asked for and drain their
        auto-triggers in order. ``default_child``: with no activity, initialize one child;
        ``last``: the caller does nothing after."""
        tx, definition = self.tx, self.definition
        fn = definition.activities.get(activity)
        if fn is None and not default_child:
            return
        may_add = activity in _SCHEDULING and definition.kind is not _DUMMY
        pending: list[_Pending] = []
        if fn is not None:
            ctx = self._context(activity, pending if may_add else None, changed)
            try:
                await tx.activity(fn, ctx, activity, "task", self.workflow.id, self.name)
            except Exception as error:
                if not tx.reported:  # a call: refused, and nothing of it changes
                    where = f"{activity} of task {self.name!r} in {self.workflow.name!r}"
                    refuse_call(error, where)
                    raise
                if activity != "on_enabled" or isinstance(error, INFRASTRUCTURE):
                    raise  # not user code's, or not where a report fails its task
                if isinstance(error, CancelRunRequested):  # ctx.cancel(): the run ends so
                    await tx.send(CancelWorkflow(workflow_id=tx.state.id, reason=error.reason))
                    return
                await self._ensure_started(failed=error)  # a report stands: the task fails
                return
        elif definition.kind is _TASK:
            pending.append((tx.new_id("w"), None, None))
        elif definition.kind is TaskKind.COMPOSITE:
            pending.append((tx.new_id("f"), None, None))
        kind, check = definition.kind, self._check_can_add  # (``_create_children``, called)
        if kind is _TASK or len(pending) < 2:
            await create_children(self.tx, self.workflow, self.name, kind, pending, last, check)
        else:
            await create_held(self, kind, pending, last)

    async def _create_children(self, pending: list[_Pending], *, last: bool = False) -> None:
        """Initialize the children an activity (or a migrator) asked for, then drain their
        auto-triggers in order; ``last`` as for ``_activity``."""
        await create_held(self, self.definition.kind, pending, last)
