from __future__ import annotations

import msgspec
import pytest

from cronflow_actors import net
from cronflow_actors.errors import InvalidWorkflowError
from cronflow_actors.net import JoinType, SplitType, TaskKind


class Review(msgspec.Struct):
    approved: bool


def screen(ctx: object) -> str:
    return "screened"


def router(ctx: object) -> object:
    return None


def checks_workflow() -> net.WorkflowBuilder:
    return (
        net.workflow("checks")
        .start_condition("start")
        .end_condition("end")
        .task("check", net.task(lambda ctx: "ok"))
        .connect_condition("start", "check")
        .connect_task("check", "end")
    )


def hire_workflow() -> net.WorkflowBuilder:
    review = net.work_item("review").actions(
        complete=net.action(Review, policy=net.require_scope("review:write"))
    )
    return (
        net.workflow("hire", version="v2")
        .start_condition("start")
        .end_condition("end")
        .condition("c1")
        .task("screen", net.task(screen).split("xor").route(router))
        .task("review", net.task(review).join("xor"))
        .composite_task("checks", net.composite_task(checks_workflow()))
        .dummy_task("merge", net.dummy_task().join("or"))
        .connect_condition("start", "screen")
        .connect_task("screen", "review", "c1")
        .connect_condition("c1", "checks")
        .connect_task("checks", "merge")
        .connect_task("review", "merge")
        .connect_task("merge", "end")
        .cancellation_region("review", tasks=["checks"], conditions=["c1"])
    )


def test_a_valid_net_builds_to_its_spec() -> None:
    spec = hire_workflow().build()
    assert (spec.name, spec.version, spec.start, spec.end) == ("hire", "v2", "start", "end")
    screen_spec = spec.tasks["screen"]
    assert screen_spec.split is SplitType.XOR
    assert screen_spec.inputs == ("start",)
    assert screen_spec.outputs == ("screen__to__review", "c1")
    assert screen_spec.work_item.handler is screen
    assert screen_spec.work_item.name == "screen"
    review = spec.tasks["review"]
    assert review.join is JoinType.XOR
    assert review.work_item.name == "review"
    assert review.work_item.actions["complete"].schema is Review
    assert review.cancel_tasks == frozenset({"checks"})
    assert review.cancel_conditions == frozenset({"c1"})
    assert spec.tasks["checks"].kind is TaskKind.COMPOSITE
    assert spec.tasks["checks"].subworkflows[0].name == "checks"
    assert spec.tasks["merge"].kind is TaskKind.DUMMY
    assert spec.tasks["merge"].inputs == ("checks__to__merge", "review__to__merge")
    implicit = spec.conditions["screen__to__review"]
    assert implicit.implicit
    assert (implicit.inputs, implicit.outputs) == (("screen",), ("review",))
    assert not spec.conditions["c1"].implicit


def test_every_problem_is_reported_in_one_error() -> None:
    broken = (
        net.workflow("broken", version=2)  # type: ignore[arg-type]
        .condition("c1")
        .condition("c1")
        .task("a", net.task().split("xor"))
        .task("b", net.task().split("sideways").activities(on_enabld=lambda ctx: None))
        .task("orphan", net.task())
        .connect_condition("c1", "a")
        .connect_task("a", "b", "nowhere")
        .connect_condition("b", "a")
        .cancellation_region("a", tasks=["a", "ghost"])
    )
    with pytest.raises(InvalidWorkflowError) as caught:
        broken.build()
    problems = caught.value.problems
    expected = [
        "version must be a non-empty string of at most 200 characters, as in version='v2', got 2",
        "no start condition",
        "no end condition",
        "'c1' is declared twice",
        "task 'a' has a xor split but no router",
        "task 'b' split is 'sideways'",
        "task 'b' has no activity 'on_enabld'",
        "connect_task('a', ...) names 'nowhere', which is not declared",
        "connect_condition('b', ...) needs a condition, but 'b' is a task",
        "a task cannot be in its own cancellation region",
        "'ghost' is not a declared task",
        "task 'orphan' has no incoming flow",
        "task 'orphan' has no outgoing flow",
        "task 'b' has no outgoing flow",
    ]
    for fragment in expected:
        assert any(fragment in problem for problem in problems), (fragment, problems)
    assert f"has {len(problems)} problems" in str(caught.value)


def test_unreachable_elements_and_dead_ends_are_reported() -> None:
    builder = (
        net.workflow("islands")
        .start_condition("start")
        .end_condition("end")
        .condition("island")
        .condition("dead_end")
        .task("a", net.task())
        .task("b", net.task())
        .task("c", net.task())
        .connect_condition("start", "a")
        .connect_task("a", "end", "dead_end")
        .connect_condition("dead_end", "c")
        .connect_task("c", "dead_end")
        .connect_condition("island", "b")
        .connect_task("b", "end")
    )
    with pytest.raises(InvalidWorkflowError) as caught:
        builder.build()
    problems = caught.value.problems
    assert any("'b' cannot be reached from the start" in p for p in problems)
    assert any("'island' cannot be reached from the start" in p for p in problems)
    assert any("'c' cannot reach the end condition" in p for p in problems)
    assert any("'dead_end' cannot reach the end condition" in p for p in problems)


def test_one_mistake_is_said_once_not_with_the_paths_it_breaks() -> None:
    """A task and a condition of one name gave 9 problems, one of them twice; two start
    conditions 5, 4 of them paths from the second (devx h40 F11)."""

    def problems_of(builder: net.WorkflowBuilder) -> list[str]:
        with pytest.raises(InvalidWorkflowError) as caught:
            builder.build()
        return caught.value.problems

    clash = (
        net.workflow("clash")
        .start_condition("start")
        .end_condition("end")
        .condition("a")
        .task("a", net.task())
        .connect_condition("start", "a")
        .connect_task("a", "end")
    )
    assert problems_of(clash)[0] == "the name 'a' is declared twice (as condition and task)"
    assert not [p for p in problems_of(clash) if "cannot be reached" in p or "cannot reach" in p]
    two_starts = (
        net.workflow("starts")
        .start_condition("start")
        .start_condition("s2")
        .end_condition("end")
        .task("a", net.task())
        .connect_condition("start", "a")
        .connect_task("a", "end")
    )
    assert problems_of(two_starts) == [
        "the workflow declares 2 start conditions ['start', 's2']; it needs one"
    ]
    orphan = (
        net.workflow("orphan")
        .start_condition("start")
        .end_condition("end")
        .task("a", net.task())
        .task("lone", net.task())
        .connect_condition("start", "a")
        .connect_task("a", "end")
        .connect_task("lone", "end")
    )
    assert problems_of(orphan) == [
        "task 'lone' has no incoming flow; connect a condition or task to it"
    ]


def recheck(join: str | None) -> net.WorkflowBuilder:
    """A task that routes back to a condition of its own inputs: a re-check loop."""
    task = net.dummy_task().split("xor").route(lambda ctx: ctx.route.to_condition("again"))
    return (
        net.workflow("recheck")
        .start_condition("start")
        .end_condition("end")
        .condition("again")
        .dummy_task("check", task if join is None else task.join(join))
        .connect_condition("start", "check")
        .connect_condition("again", "check")
        .connect_task("check", "again", "end")
    )


def test_an_and_join_fed_by_its_own_loop_is_refused() -> None:
    """Its loop's input is marked only after it completes, so it never starts: the net stayed
    initialized for good, with nothing said (newcomer h36 F3)."""
    with pytest.raises(InvalidWorkflowError) as caught:
        recheck(None).build()
    [problem] = caught.value.problems
    assert problem.startswith("task 'check' joins its inputs with AND (the default), and 'again'")
    assert "it can never start. Give it .join('xor')" in problem
    assert recheck("xor").build().tasks["check"].join is JoinType.XOR


def test_a_child_workflows_problems_are_reported_with_the_parent() -> None:
    child = net.workflow("child").start_condition("s").task("x", net.task())
    parent = (
        net.workflow("parent")
        .start_condition("start")
        .end_condition("end")
        .composite_task("sub", net.composite_task(child))
        .connect_condition("start", "sub")
        .connect_task("sub", "end")
    )
    with pytest.raises(InvalidWorkflowError) as caught:
        parent.build()
    assert any(
        "task 'sub', child workflow 'child': the workflow has no end condition" in p
        for p in caught.value.problems
    )


def test_misplaced_builders_and_routes_are_reported() -> None:
    builder = (
        net.workflow("mixed")
        .start_condition("start")
        .end_condition("end")
        .task("a", net.dummy_task().route(router))
        .task("start_again", net.task())
        .connect_condition("start", "a")
        .connect_task("a", "start_again")
        .connect_task("start_again", "start")
        .connect_task("start_again", "end")
        .cancellation_region("a", conditions=["end"])
    )
    with pytest.raises(InvalidWorkflowError) as caught:
        builder.build()
    problems = caught.value.problems
    assert any("declared with .task() but built with net.dummy_task()" in p for p in problems)
    assert any("has a router but an and split" in p for p in problems)
    assert any("flows into the start condition" in p for p in problems)
    assert any("start and end conditions cannot be cancelled" in p for p in problems)


def test_an_implicit_condition_name_cannot_be_taken() -> None:
    builder = (
        net.workflow("clash")
        .start_condition("start")
        .end_condition("end")
        .condition("a__to__b")
        .task("a", net.task())
        .task("b", net.task())
        .connect_condition("start", "a")
        .connect_task("a", "b")
        .connect_task("b", "end")
    )
    with pytest.raises(InvalidWorkflowError, match="implicit condition 'a__to__b'"):
        builder.build()


def test_two_flows_whose_implicit_conditions_have_one_name_are_refused() -> None:
    """x -> y__to__z and x__to__y -> z both made 'x__to__y__to__z': they shared one condition,
    and x's completion enabled z (h42 net F2)."""
    builder = (
        net.workflow("clash")
        .start_condition("start")
        .end_condition("end")
        .task("S", net.task().split("and"))
        .task("x", net.task())
        .task("y__to__z", net.task())
        .task("x__to__y", net.task())
        .task("z", net.task())
        .connect_condition("start", "S")
        .connect_task("S", "x", "x__to__y")
        .connect_task("x", "y__to__z")
        .connect_task("x__to__y", "z")
        .connect_task("y__to__z", "end")
        .connect_task("z", "end")
    )
    with pytest.raises(InvalidWorkflowError) as refused:
        builder.build()
    assert refused.value.problems == [
        "the flows 'x' -> 'y__to__z' and 'x__to__y' -> 'z' both need the implicit condition "
        "'x__to__y__to__z': rename a task, or route one through a condition of its own"
    ]


def test_a_dummy_task_given_net_task_is_told_to_build_it_with_net_dummy_task() -> None:
    # the advice was ".task()", which built a task nobody could start: the instance stuck
    # (newcomer h33 F1)
    builder = (
        net.workflow("fork")
        .start_condition("start")
        .end_condition("end")
        .dummy_task("fork", net.task().split("and"))
        .connect_condition("start", "fork")
        .connect_task("fork", "end")
    )
    with pytest.raises(InvalidWorkflowError) as caught:
        builder.build()
    [problem] = caught.value.problems
    assert problem == (
        "task 'fork' is declared with .dummy_task() but built with net.task(): build it with "
        "net.dummy_task() (its .split(...), .join(...) as net.task()'s), or declare it with "
        ".task()"
    )
    # the other way, the dummy it was built as comes first (review h33 F9, retest h33 F8)
    joined = (
        net.workflow("join")
        .start_condition("start")
        .end_condition("end")
        .task("j", net.dummy_task().join("and"))
        .connect_condition("start", "j")
        .connect_task("j", "end")
    )
    with pytest.raises(InvalidWorkflowError) as caught:
        joined.build()
    [problem] = caught.value.problems
    assert problem == (
        "task 'j' is declared with .task() but built with net.dummy_task(): declare it with "
        ".dummy_task(), or build it with net.task(work_item or handler)"
    )
    mended = (
        net.workflow("fork")
        .start_condition("start")
        .end_condition("end")
        .dummy_task("fork", net.dummy_task().split("and"))
        .connect_condition("start", "fork")
        .connect_task("fork", "end")
        .build()
    )
    assert mended.tasks["fork"].split.value == "and"


def test_functions_of_the_wrong_shape_and_a_schema_msgspec_cannot_use_are_refused() -> None:
    """A handler, a policy, a router or an action's callback written for another shape, and a
    dict as an action's schema, built; each failed every call that reached it with a bare
    TypeError naming no workflow or task (devx h40 F3, F4, F5)."""
    item = net.work_item("w").actions(
        complete=net.action({"approved": bool}, callback=lambda ctx: None),
        fail=net.action(policy=lambda ctx: True),
        finish=net.action(),
    )
    broken = (
        net.workflow("shapes")
        .start_condition("start")
        .end_condition("end")
        .task("auto", net.task(lambda ctx, extra: 1).policy(lambda: "complete"))
        .task("ask", net.task(item).split("xor").route(lambda: "end"))
        .connect_condition("start", "auto")
        .connect_task("auto", "ask")
        .connect_task("ask", "end")
    )
    with pytest.raises(InvalidWorkflowError) as caught:
        broken.build()
    problems = caught.value.problems
    expected = [
        "task 'auto' handler must take one argument, as in handler(ctx); it takes (ctx, extra)",
        "task 'auto' policy must take one argument, as in policy(ctx); it takes ()",
        "work item 'w' action 'complete': schema {'approved': <class 'bool'>} cannot check JSON (",
        "work item 'w' action 'complete' callback must take 2 arguments, as in callback(ctx, "
        "payload); it takes (ctx)",
        "work item 'w' action 'fail' policy must take 2 arguments, as in policy(ctx, payload)",
        "task 'ask' router must take one argument, as in route(ctx); it takes ()",
        # the actions it has, by their names (they read <WorkItemVerb.CANCEL: 'cancel'>: F11)
        "work item 'w' has no action 'finish'; actions: ['cancel', 'complete', 'fail', "
        "'initialize', 'reset', 'start']",
    ]
    for fragment in expected:
        assert any(fragment in problem for problem in problems), (fragment, problems)
    assert len(problems) == len(expected), problems
