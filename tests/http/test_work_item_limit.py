"""A task's work items an outside caller may add: each is kept in the instance's state, which
every change writes again, so 2,000 initializes over HTTP made each one slower than the last
and its list 2.5 MB (hostile h35 F4). Outside callers bring a generation to
``max_work_items`` (1,000 unless the task says), and the refusal says how to go on."""

from __future__ import annotations

import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.errors import (
    ActionDeniedError,
    InternalOnlyActionError,
    InvalidStateTransitionError,
    WorkItemLimitError,
)
from tests.http.conftest import Serve

ADA = {"Authorization": "Bearer t-ada"}
TOKENS = {"t-ada": cf.Principal(id="ada")}


def lone(workflow: str, name: str, task: net.TaskBuilder, *, started: bool = True) -> net.NetSpec:
    """``task`` alone between start and end, in a workflow outside callers may start (``started``
    False: whose initialize is internal-only)."""
    built = net.workflow(workflow).start_condition("start").end_condition("end")
    add = built.composite_task if task.kind is net.TaskKind.COMPOSITE else built.task
    add(name, task).connect_condition("start", name).connect_task(name, "end")
    return (built.actions(initialize=net.action()) if started else built).build()


def ballot(most: int | None) -> net.NetSpec:
    """A task whose work items outside callers initialize (``most`` of them, or the default)."""
    vote = net.work_item("vote").actions(initialize=net.action(), complete=net.action())
    task = net.task(vote)
    if most is not None:
        task = task.max_work_items(most)
    return lone("ballot" if most is None else f"ballot{most}", "vote", task)


async def test_outside_callers_bring_a_task_to_its_bound_and_no_further(serve: Serve) -> None:
    rt, client = await serve([ballot(3)], tokens=TOKENS)
    started = await client.post("/workflows", json={"workflow": "ballot3"}, headers=ADA)
    workflow_id = started.json()["workflow_id"]
    items = f"/workflows/{workflow_id}/tasks/vote/work-items"
    assert len((await client.get(items, headers=ADA)).json()["work_items"]) == 1  # its default
    for _ in range(2):
        added = await client.post(items, json={"n": 1}, headers=ADA)
        assert added.status_code == 201, added.text
    refused = await client.post(items, json={"n": 1}, headers=ADA)
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["type"] == "urn:cronflow:problem:work-item-limit"
    assert "task 'vote' of 'ballot3' has 3 work items in this generation" in problem["detail"]
    assert "net.task(...).max_work_items(n)" in problem["detail"]
    assert "(open, completed and canceled alike)" in problem["detail"]
    assert len((await client.get(items, headers=ADA)).json()["work_items"]) == 3  # none added
    # a finished item still counts, as the detail says (it is kept in the state): no room made
    [first, *_] = await rt.work_items(workflow_id, "vote")
    await rt.start_work_item(first.id)
    await rt.complete_work_item(first.id)
    again = await client.post(items, json={"n": 1}, headers=ADA)
    assert again.status_code == 409, again.text
    # the net's own code is not bounded
    await rt.initialize_work_item(workflow_id, "vote")
    assert len(await rt.work_items(workflow_id, "vote")) == 4
    with pytest.raises(WorkItemLimitError):
        await rt.initialize_work_item(workflow_id, "vote", principal=TOKENS["t-ada"])


async def test_a_task_takes_a_thousand_from_outside_unless_it_says() -> None:
    [task] = [t for t in ballot(None).tasks.values() if t.name == "vote"]
    assert task.max_work_items == 1_000
    for wrong in (0, -1, True, 2.5, "10"):
        with pytest.raises(ValueError, match="max_work_items takes a whole number from 1"):
            net.task().max_work_items(wrong)  # type: ignore[arg-type]


def composite(most: int | None) -> net.NetSpec:
    """A composite task whose child workflows outside callers add (``most``, or the default)."""
    task = net.composite_task(lone("kid", "X", net.task()))
    if most is not None:
        task = task.max_work_items(most)
    return lone("casework", "cases", task)


async def test_outside_callers_bring_a_composite_task_to_its_bound_too(serve: Serve) -> None:
    """A composite task's child workflows are kept in the state as work items are: an outside
    caller added 1,200 where ``max_work_items(2)`` was declared and ignored (conform h38 F3)."""
    rt, client = await serve([composite(2)], tokens=TOKENS)
    started = await client.post("/workflows", json={"workflow": "casework"}, headers=ADA)
    workflow_id = started.json()["workflow_id"]
    children = f"/workflows/{workflow_id}/tasks/cases/children"
    assert len(await rt.child_workflows(workflow_id, "cases")) == 1  # its default
    added = await client.post(children, json={"n": 1}, headers=ADA)
    assert added.status_code == 201, added.text
    refused = await client.post(children, json={"n": 1}, headers=ADA)
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["type"] == "urn:cronflow:problem:work-item-limit"
    assert "task 'cases' of 'casework' has 2 child workflows in this" in problem["detail"]
    assert "net.composite_task(...).max_work_items(n)" in problem["detail"]
    assert len(await rt.child_workflows(workflow_id, "cases")) == 2  # none added
    await rt.initialize_workflow(workflow_id, "cases")  # the net's own code is not bounded
    assert len(await rt.child_workflows(workflow_id, "cases")) == 3
    # past the bound by the net's own, it says how many there are (retest h38 R7)
    with pytest.raises(WorkItemLimitError, match=r"has 3 \(at most 2\) child workflows"):
        await rt.initialize_workflow(workflow_id, "cases", principal=TOKENS["t-ada"])


async def test_a_caller_the_action_does_not_admit_hears_that_before_the_bound() -> None:
    """The bound answered 409 (and how many children there are) to a caller with no right to
    add one, where a lower count answered its 403 (review h38 F4)."""
    mallory = cf.Principal(id="mallory")
    closed_kid = lone("kid", "X", net.task(), started=False)
    vote = net.task(net.work_item("vote")).max_work_items(1)  # no initialize declared
    async with cf.Runtime(db=":memory:") as rt:
        rt.register(lone("full", "cases", net.composite_task(closed_kid).max_work_items(1)))
        rt.register(lone("ballot1", "vote", vote))
        cases, ballot = await rt.start_workflow("full"), await rt.start_workflow("ballot1")
        with pytest.raises(InternalOnlyActionError):
            await rt.initialize_workflow(cases, "cases", principal=mallory)
        with pytest.raises(InternalOnlyActionError):
            await rt.initialize_work_item(ballot, "vote", principal=mallory)


async def test_a_caller_the_policy_refuses_hears_that_before_the_bound_or_the_state() -> None:
    """A caller the initialize policy refuses got the bound's 409, or the task's state, first
    (review h38 F3): both say something of the instance to one who may not touch it."""
    eve, ada = cf.Principal(id="eve"), TOKENS["t-ada"]
    only_ada = net.action(policy=lambda ctx, payload: ctx.principal.id == "ada")
    vote = net.work_item("vote").actions(initialize=only_ada, complete=net.action())
    async with cf.Runtime(db=":memory:") as rt:
        rt.register(lone("ballot", "vote", net.task(vote).max_work_items(1)))
        ballot = await rt.start_workflow("ballot")  # its default item: at the bound
        with pytest.raises(ActionDeniedError):
            await rt.initialize_work_item(ballot, "vote", principal=eve)
        with pytest.raises(WorkItemLimitError):
            await rt.initialize_work_item(ballot, "vote", principal=ada)
        [item] = await rt.work_items(ballot, "vote")
        await rt.start_work_item(item.id)
        await rt.complete_work_item(item.id)  # the task completes: no more items
        with pytest.raises(ActionDeniedError):
            await rt.initialize_work_item(ballot, "vote", principal=eve)
        with pytest.raises(InvalidStateTransitionError):
            await rt.initialize_work_item(ballot, "vote", principal=ada)


async def test_the_same_holds_for_a_composite_task_and_a_workflow_s_cancel() -> None:
    """A child workflow's initialize policy was asked after the composite task's bound, and a
    workflow's cancel policy after the workflow's state (review h38 F3, the rest)."""
    eve, ada = cf.Principal(id="eve"), TOKENS["t-ada"]
    only_ada = net.action(policy=lambda ctx, payload: ctx.principal.id == "ada")
    kid = net.workflow("kid").start_condition("start").end_condition("end")
    kid.task("X", net.task()).connect_condition("start", "X").connect_task("X", "end")
    built = net.workflow("cases").start_condition("start").end_condition("end")
    child = net.composite_task(kid.actions(initialize=only_ada).build()).max_work_items(1)
    built.composite_task("cases", child)
    built.connect_condition("start", "cases").connect_task("cases", "end")
    async with cf.Runtime(db=":memory:") as rt:
        rt.register(built.actions(cancel=only_ada).build())
        cases = await rt.start_workflow("cases")  # its default child: past a bound of 1
        with pytest.raises(ActionDeniedError):
            await rt.initialize_workflow(cases, "cases", principal=eve)
        with pytest.raises(WorkItemLimitError, match="has 1 child workflow in this generation"):
            await rt.initialize_workflow(cases, "cases", principal=ada)
        await rt.cancel_workflow(cases, principal=ada)
        for principal, refusal in ((eve, ActionDeniedError), (ada, InvalidStateTransitionError)):
            with pytest.raises(refusal):
                await rt.cancel_workflow(cases, principal=principal)
            with pytest.raises(refusal):
                await rt.initialize_workflow(cases, "cases", principal=principal)
        assert await rt.workflow_state(cases) == "canceled"
        assert len(await rt.child_workflows(cases, "cases")) == 1


async def test_an_outside_call_may_not_grow_an_instance_past_its_bound_in_bytes(
    serve: Serve,
) -> None:
    """150 work items of 900 KB, each under --max-body and max_work_items, made every change
    rewrite 135 MB and every listing slow (hostile h39 F4): an outside call that would leave
    the instance over 16 MiB of state is a 409, nothing changed; the net's own code is not
    bounded, and a call that does not grow it goes through."""
    rt, client = await serve([ballot(None)], tokens=TOKENS)
    started = await client.post("/workflows", json={"workflow": "ballot"}, headers=ADA)
    workflow_id = started.json()["workflow_id"]
    items = f"/workflows/{workflow_id}/tasks/vote/work-items"
    big = {"blob": "x" * 900_000}
    added = 0
    while True:
        answer = await client.post(items, json=big, headers=ADA)
        if answer.status_code != 201:
            break
        added += 1
        assert added < 30, "never refused"
    assert answer.status_code == 409, answer.text
    problem = answer.json()
    assert problem["type"] == "urn:cronflow:problem:instance-too-large"
    assert "over the 16 MiB an outside caller's call may bring it to" in problem["detail"]
    assert "pass a reference to it" in problem["detail"]
    assert added == 18  # 18 x 900 KB fit in 16 MiB, the 19th does not
    assert len(await rt.work_items(workflow_id, "vote")) == added + 1  # (and its default)
    await rt.initialize_work_item(workflow_id, "vote", big)  # the net's own: not bounded
    [item, *_] = await rt.work_items(workflow_id, "vote")
    await rt.start_work_item(item.id)
    # past the bound, a call that adds little goes through (its complete declared, outside)
    done = await client.post(f"/work-items/{item.id}/complete", json={"ok": 1}, headers=ADA)
    assert done.status_code == 200, done.text
    small = await client.post(items, json={"n": 1}, headers=ADA)  # a small item: allowed
    assert small.status_code == 201, small.text
