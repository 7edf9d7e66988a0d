"""Migrations of running net instances (spec section 9), the scenarios of Tasquencer's
versionManager tests (simple, composite, dynamic composite, deferred choice) and its
workflow-fast-forwarded and migration-auto-trigger-continue tests, on a real SQLite file.

One difference from Tasquencer on purpose: a task without ``on_enabled`` initializes one work
item (one child workflow) when it is enabled, here as in normal runs, so a task a migrator
lets ``continue`` without children gets that default child."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.errors import MigrationError
from tests.engine.helpers import build, open_item, run, states


def answer(calls: list[str], name: str, mode: str) -> Callable[[Any], str]:
    def migrator(ctx: Any) -> str:
        calls.append(name)
        return mode

    return migrator


def chain(*names: str) -> list[tuple[str, str]]:
    """The flows start -> names in a row -> end."""
    return [("start", names[0]), *itertools.pairwise(names), (names[-1], "end")]


def simple(version: str, *tasks: str, **options: Any) -> net.NetSpec:
    """start -> tasks in a row -> end, each task a manual one."""
    manual = {name: net.task() for name in tasks}
    return build("simple", manual, chain(*tasks), version=version, **options)


async def test_fast_forwards_what_was_done_and_leaves_new_work_enabled(rt: cf.Runtime) -> None:
    canceled: list[str] = []
    v1 = simple(
        "v1",
        "A",
        "B",
        activities={"on_canceled": lambda ctx: canceled.append("on_canceled")},
        actions={"cancel": net.action(callback=lambda ctx, p: canceled.append("cancel action"))},
    )
    calls: list[str] = []
    hooks: list[tuple[Any, ...]] = []
    migration = (
        net.migration(v1, simple("v2", "A", "B", "C"))
        .initializer(
            lambda ctx: hooks.append(
                ("initializer", ctx.workflow.id, ctx.migrating_from.id, ctx.is_internal)
            )
        )
        .task_migrators(
            {
                "simple/A": answer(calls, "A", "fast_forward"),
                "simple/B": answer(calls, "B", "continue"),
                "simple/C": answer(calls, "C", "continue"),
            }
        )
        .build()
    )
    for spec in (v1, simple("v2", "A", "B", "C"), migration):
        rt.register(spec)
    old = await rt.start_workflow("simple", version="v1")
    assert await states(rt, old) == {"A": "enabled", "B": "disabled"}

    new = await rt.migrate(old, "v2")

    assert new != old
    assert calls == ["A", "B"]  # C is not enabled yet
    assert await states(rt, new) == {"A": "completed", "B": "enabled", "C": "disabled"}
    assert [i.state for i in await rt.work_items(new, "A")] == []  # fast-forwarded: no child
    assert [i.state for i in await rt.work_items(new, "B")] == ["initialized"]
    assert await rt.workflow_state(old) == "canceled"
    assert canceled == ["on_canceled"]  # the cancel action is skipped, the activity runs
    assert hooks == [("initializer", new, old, True)]
    assert (await rt.workflow(new)).version == "v2"
    links = await rt.migration_links(new)
    assert (links.migrated_from, links.from_version, links.migrated_to) == (old, "v1", None)
    assert (await rt.migration_links(old)).migrated_to == new


async def test_the_new_root_goes_on_and_the_finalizer_runs_when_it_ends(rt: cf.Runtime) -> None:
    calls: list[str] = []
    ended: list[tuple[Any, ...]] = []
    modes: list[str] = []

    def migrate_c(ctx: Any) -> str:
        modes.append(ctx.execution_mode)
        calls.append("C")
        return "continue"

    v2 = simple("v2", "A", "B", "C")
    migration = (
        net.migration("v1", "v2", workflow="simple")
        .finalizer(
            lambda ctx: ended.append((ctx.workflow.id, ctx.workflow.state, ctx.migrating_from.id))
        )
        .task_migrators({"simple/A": answer(calls, "A", "fast_forward"), "simple/C": migrate_c})
        .build()
    )
    for spec in (simple("v1", "A", "B"), v2, migration):
        rt.register(spec)
    old = await rt.start_workflow("simple", version="v1")
    new = await rt.migrate(old, "v2")
    await run(rt, new, "B")  # B has no migrator: the normal path
    assert await states(rt, new) == {"A": "completed", "B": "completed", "C": "enabled"}
    assert (calls, modes) == (["A", "C"], ["fast_forward"])
    assert ended == []
    await run(rt, new, "C")
    assert await rt.workflow_state(new) == "completed"
    assert ended == [(new, "completed", old)]


async def test_a_migrator_is_called_again_on_every_later_enable(rt: cf.Runtime) -> None:
    def looping(version: str) -> net.NetSpec:
        task = net.task().join("xor").split("xor")
        task.route(lambda ctx: ctx.route.to_condition("again" if ctx.output["more"] else "end"))
        flows = [("start", "L"), ("L", "again"), ("again", "L"), ("L", "end")]
        return build("loop", {"L": task}, flows, conditions=["again"], version=version)

    generations: list[int] = []

    def migrate_l(ctx: Any) -> str:
        generations.append(ctx.task.generation)
        return "continue"

    migration = (
        net.migration(looping("v1"), looping("v2")).task_migrators({"loop/L": migrate_l}).build()
    )
    for spec in (looping("v1"), looping("v2"), migration):
        rt.register(spec)
    old = await rt.start_workflow("loop", version="v1")
    new = await rt.migrate(old, "v2")
    await run(rt, new, "L", {"more": True})
    await run(rt, new, "L", {"more": True})
    await run(rt, new, "L", {"more": False})
    assert generations == [1, 2, 3]
    assert await rt.workflow_state(new) == "completed"


async def test_a_fast_forwarded_task_keeps_its_recorded_output_and_routes_on_it(
    rt: cf.Runtime,
) -> None:
    router_saw: list[Any] = []

    def route(ctx: Any) -> Any:
        router_saw.append(ctx.output)
        return ctx.route.to_task(ctx.output["go"])

    v1 = build(
        "route", {"A": net.task(), "B": net.task()}, [("start", "A"), ("A", "B"), ("B", "end")]
    )
    v2 = build(
        "route",
        {"A": net.task().split("xor").route(route), "left": net.task(), "right": net.task()},
        [("start", "A"), ("A", "left"), ("A", "right"), ("left", "end"), ("right", "end")],
        version="v2",
    )
    migration = (
        net.migration(v1, v2).task_migrators({"route/A": lambda ctx: "fast_forward"}).build()
    )
    for spec in (v1, v2, migration):
        rt.register(spec)
    old = await rt.start_workflow("route", version="v1")
    await run(rt, old, "A", {"go": "right"})
    new = await rt.migrate(old, "v2")
    assert router_saw == [{"go": "right"}]
    assert await states(rt, new) == {"A": "completed", "left": "disabled", "right": "enabled"}
    state = await rt._state(new)
    assert state.workflows[new].outputs["A"] == {"go": "right"}


def auto_task() -> net.TaskBuilder:
    return net.task().activities(on_enabled=lambda ctx: ctx.work_item.initialize())


def diagnostics(version: str) -> net.WorkflowBuilder:
    builder = net.workflow("diagnostics", version=version)
    builder.start_condition("start").end_condition("end")
    tasks = ["triage", "assign_doctor", *(["lab_review"] if version == "v2" else [])]
    for name in tasks:
        builder.task(name, auto_task())
    builder.connect_condition("start", tasks[0])
    for source, target in itertools.pairwise(tasks):
        builder.connect_task(source, target)
    builder.connect_task(tasks[-1], "end")
    return builder


def skip_in_fast_forward(ctx: Any) -> None:
    if ctx.execution_mode != "fast_forward":
        ctx.workflow.initialize()


def composite_root(version: str) -> net.NetSpec:
    child = diagnostics(version)
    return build(
        "clinic",
        {
            "intake": auto_task(),
            "diagnostics": net.composite_task(child).activities(on_enabled=skip_in_fast_forward),
            "discharge": auto_task(),
        },
        chain("intake", "diagnostics", "discharge"),
        version=version,
    )


async def test_composite_tasks_migrate_with_their_child_workflows(rt: cf.Runtime) -> None:
    calls: list[str] = []

    def migrate_diagnostics(ctx: Any) -> str:
        calls.append("diagnostics")
        ctx.workflow.initialize()
        return "continue"

    migration = (
        net.migration(composite_root("v1"), composite_root("v2"))
        .task_migrators(
            {
                "clinic/intake": answer(calls, "intake", "fast_forward"),
                "clinic/diagnostics": migrate_diagnostics,
                "clinic/discharge": answer(calls, "discharge", "continue"),
                "diagnostics/triage": answer(calls, "triage", "fast_forward"),
                "diagnostics/assign_doctor": answer(calls, "assign_doctor", "fast_forward"),
            }
        )
        .build()
    )
    for spec in (composite_root("v1"), composite_root("v2"), migration):
        rt.register(spec)
    old = await rt.start_workflow("clinic", version="v1")
    await run(rt, old, "intake")
    [child] = await rt.child_workflows(old, "diagnostics")
    await run(rt, child.id, "triage")
    assert await states(rt, child.id) == {"triage": "completed", "assign_doctor": "enabled"}

    new = await rt.migrate(old, "v2")

    assert calls == ["intake", "diagnostics", "triage", "assign_doctor"]
    assert await states(rt, new) == {
        "intake": "completed",
        "diagnostics": "started",
        "discharge": "disabled",
    }
    [new_child] = await rt.child_workflows(new, "diagnostics")
    assert await states(rt, new_child.id) == {
        "triage": "completed",
        "assign_doctor": "completed",
        "lab_review": "enabled",
    }
    assert await rt.workflow_state(child.id) == "canceled"
    await run(rt, new_child.id, "lab_review")
    assert await rt.workflow_state(new_child.id) == "completed"
    assert await states(rt, new) == {
        "intake": "completed",
        "diagnostics": "completed",
        "discharge": "enabled",
    }
    assert calls[-1] == "discharge"


async def test_a_root_a_fast_forwarded_task_starts_through_its_child_runs_no_on_started(
    rt: cf.Runtime,
) -> None:
    """Spec section 9: "Workflow onStarted is suppressed when started from fast-forward". A
    fast-forwarded task of a composite task's child started the child silently, but the child
    started its composite task, whose start started the new root with its ``on_started``: a
    "your case has started" sent twice for one case (conform h27 M1)."""
    log: list[str] = []

    def spec(version: str) -> net.NetSpec:
        child = build(
            "child",
            {"pre": net.task(), "more": net.task()},
            [("start", "pre"), ("pre", "more"), ("more", "end")],
            version=version,
        )
        started = {"on_started": lambda ctx: log.append(f"{version} {ctx.execution_mode}")}
        tasks = {"top": net.composite_task(child), "tail": net.task()}
        flows = [("start", "top"), ("top", "tail"), ("tail", "end")]
        return build("root", tasks, flows, version=version, activities=started)

    migrators = {"root/top": lambda ctx: "continue", "child/pre": lambda ctx: "fast_forward"}
    for registered in (spec("v1"), spec("v2")):
        rt.register(registered)
    rt.register(net.migration("v1", "v2", workflow="root").task_migrators(migrators).build())
    old = await rt.start_workflow("root", version="v1")
    [child] = await rt.child_workflows(old, "top")
    await run(rt, child.id, "pre")
    new = await rt.migrate(old, "v2")
    assert log == ["v1 normal"]
    [new_child] = await rt.child_workflows(new, "top")
    assert await states(rt, new_child.id) == {"pre": "completed", "more": "enabled"}
    assert await rt.workflow_state(new) == "started"


async def test_a_later_call_in_a_migrated_instance_is_no_fast_forward(rt: cf.Runtime) -> None:
    """``ctx.execution_mode`` said ``fast_forward`` in every call of an instance a migration
    started: an activity guarded as the spec's (and these tests') pattern guards it skipped its
    work in an ordinary call long after, a composite task got no child, and the instance waited
    for good (conform h26 H1). Spec section 9: the mode of the current call."""
    seen: list[str] = []

    def kid() -> net.NetSpec:
        return build("kid", {"x": net.task()}, [("start", "x"), ("x", "end")])

    def guarded(ctx: Any) -> None:
        seen.append(ctx.execution_mode)
        skip_in_fast_forward(ctx)

    def root(version: str) -> net.NetSpec:
        tasks = {
            "intake": net.task(),
            "care": net.composite_task(kid()).activities(on_enabled=guarded),
        }
        return build("ward", tasks, chain("intake", "care"), version=version)

    migrator = net.migration("v1", "v2", workflow="ward").task_migrators(
        {"ward/intake": lambda ctx: seen.append(ctx.execution_mode) or "continue"}
    )
    for spec in (root("v1"), root("v2"), migrator.build()):
        rt.register(spec)
    old = await rt.start_workflow("ward", version="v1")
    new = await rt.migrate(old, "v2")  # intake still open: it continues in v2
    assert seen == ["fast_forward"]  # its migrator, in the migration's start
    await run(rt, new, "intake")  # an ordinary call, later
    assert seen == ["fast_forward", "normal"]
    assert len(await rt.child_workflows(new, "care")) == 1


def branch(name: str, version: str) -> net.WorkflowBuilder:
    builder = net.workflow(name, version=version).start_condition("start").end_condition("end")
    steps = [f"{name}_1", *([f"{name}_2"] if version == "v2" else [])]
    for step in steps:
        builder.task(step, auto_task())
    builder.connect_condition("start", steps[0])
    for source, target in itertools.pairwise(steps):
        builder.connect_task(source, target)
    return builder.connect_task(steps[-1], "end")


def dynamic_root(version: str) -> net.NetSpec:
    def start_both(ctx: Any) -> None:
        if ctx.execution_mode != "fast_forward":
            ctx.workflow.initialize("a")
            ctx.workflow.initialize("b")

    processing = net.dynamic_composite_task([branch("a", version), branch("b", version)])
    return build(
        "dynamic",
        {
            "intake": auto_task(),
            "processing": processing.activities(on_enabled=start_both),
            "finish": auto_task(),
        },
        chain("intake", "processing", "finish"),
        version=version,
    )


async def test_dynamic_composite_tasks_migrate_each_child_type(rt: cf.Runtime) -> None:
    calls: list[str] = []

    def migrate_processing(ctx: Any) -> str:
        calls.append("processing")
        ctx.workflow.initialize("a")
        ctx.workflow.initialize("b")
        return "continue"

    migration = (
        net.migration(dynamic_root("v1"), dynamic_root("v2"))
        .task_migrators(
            {
                "dynamic/intake": answer(calls, "intake", "fast_forward"),
                "dynamic/processing": migrate_processing,
                "a/a_1": answer(calls, "a_1", "fast_forward"),
                "b/b_1": answer(calls, "b_1", "fast_forward"),
            }
        )
        .build()
    )
    for spec in (dynamic_root("v1"), dynamic_root("v2"), migration):
        rt.register(spec)
    old = await rt.start_workflow("dynamic", version="v1")
    await run(rt, old, "intake")
    children = {c.name: c.id for c in await rt.child_workflows(old, "processing")}
    await run(rt, children["a"], "a_1")
    await run(rt, children["b"], "b_1")

    new = await rt.migrate(old, "v2")

    assert calls == ["intake", "processing", "a_1", "b_1"]
    new_children = {c.name: c.id for c in await rt.child_workflows(new, "processing")}
    assert await states(rt, new_children["a"]) == {"a_1": "completed", "a_2": "enabled"}
    assert await states(rt, new_children["b"]) == {"b_1": "completed", "b_2": "enabled"}
    assert (await states(rt, new))["finish"] == "disabled"
    await run(rt, new_children["a"], "a_2")
    await run(rt, new_children["b"], "b_2")
    assert (await states(rt, new))["finish"] == "enabled"


def triage(version: str) -> net.NetSpec:
    options = ["admit", "discharge", *(["telemedicine"] if version == "v2" else [])]
    tasks: dict[str, net.TaskBuilder] = {
        "assessment": net.task().split("xor").route(lambda ctx: ctx.route.to_task("admit"))
    }
    tasks.update({name: auto_task() for name in options})
    flows = [("start", "assessment")]
    flows += [("assessment", name) for name in options] + [(name, "end") for name in options]
    return build("triage", tasks, flows, version=version)


async def test_a_routed_branch_is_kept_and_the_new_options_stay_disabled(rt: cf.Runtime) -> None:
    calls: list[str] = []
    migration = (
        net.migration(triage("v1"), triage("v2"))
        .task_migrators(
            {
                "triage/assessment": answer(calls, "assessment", "fast_forward"),
                "triage/admit": answer(calls, "admit", "fast_forward"),
                "triage/discharge": answer(calls, "discharge", "continue"),
                "triage/telemedicine": answer(calls, "telemedicine", "continue"),
            }
        )
        .build()
    )
    for spec in (triage("v1"), triage("v2"), migration):
        rt.register(spec)
    old = await rt.start_workflow("triage", version="v1")
    new = await rt.migrate(old, "v2")
    assert calls == ["assessment", "admit"]
    assert await states(rt, new) == {
        "assessment": "completed",
        "admit": "completed",
        "discharge": "disabled",
        "telemedicine": "disabled",
    }
    assert await rt.workflow_state(new) == "completed"


async def test_fast_forwarding_one_side_of_a_deferred_choice_disables_the_other(
    rt: cf.Runtime,
) -> None:
    def choice(version: str) -> net.NetSpec:
        flows = [("start", "X"), ("start", "Y"), ("X", "Z"), ("Y", "Z"), ("Z", "end")]
        tasks = {"X": net.task(), "Y": net.task(), "Z": net.task().join("xor")}
        return build("choice", tasks, flows, version=version)

    migration = (
        net.migration(choice("v1"), choice("v2"))
        .task_migrators({"choice/Y": lambda ctx: "fast_forward"})
        .build()
    )
    for spec in (choice("v1"), choice("v2"), migration):
        rt.register(spec)
    old = await rt.start_workflow("choice", version="v1")
    new = await rt.migrate(old, "v2")
    # X was enabled first (with its work item); Y, fast-forwarded, took the token
    assert await states(rt, new) == {"X": "disabled", "Y": "completed", "Z": "enabled"}
    assert [i.state for i in await rt.work_items(new, "X")] == ["canceled"]
    assert (await rt.marking(new))["start"] == 0


async def test_a_continuing_migrator_s_work_item_runs_its_auto_triggers(rt: cf.Runtime) -> None:
    item = net.work_item("auto").activities(
        on_initialized=lambda ctx: ctx.work_item.start(),
        on_started=lambda ctx: ctx.work_item.complete(),
    )
    v1 = build("auto", {"A": net.task()}, [("start", "A"), ("A", "end")])
    v2 = build("auto", {"A": net.task(item)}, [("start", "A"), ("A", "end")], version="v2")

    def migrate_a(ctx: Any) -> str:
        ctx.work_item.initialize()
        return "continue"

    migration = net.migration(v1, v2).task_migrators({"auto/A": migrate_a}).build()
    for spec in (v1, v2, migration):
        rt.register(spec)
    old = await rt.start_workflow("auto", version="v1")
    new = await rt.migrate(old, "v2")
    [started] = await rt.work_items(new, "A")
    assert started.state == "completed"
    assert await rt.workflow_state(new) == "completed"
    assert await rt.migrate(old, "v2") == new  # asked again: the same answer
    with pytest.raises(MigrationError, match="it was migrated to"):
        await rt.migrate(old, "v1")
    with pytest.raises(MigrationError, match="it has ended"):
        await rt.migrate(new, "v1")


async def test_a_migration_goes_through_the_versions_between(rt: cf.Runtime) -> None:
    finalized: list[tuple[str, str]] = []

    def stage(source: str, target: str, tasks: str, fast: str) -> net.MigrationSpec:
        modes = {t: "fast_forward" if t in fast else "continue" for t in tasks}
        migrators = {f"simple/{t}": lambda ctx, t=t: modes[t] for t in tasks}
        return (
            net.migration(source, target, workflow="simple")
            .finalizer(lambda ctx: finalized.append((f"{source}->{target}", ctx.workflow.state)))
            .task_migrators(migrators)
            .build()
        )

    for spec in (simple("v1", "A"), simple("v2", "A", "B"), simple("v3", "A", "B", "C")):
        rt.register(spec)
    rt.register(stage("v1", "v2", "AB", "A"))
    rt.register(stage("v2", "v3", "ABC", "AB"))
    old = await rt.start_workflow("simple", version="v1")

    new = await rt.migrate(old, "v3")

    middle = (await rt.migration_links(old)).migrated_to
    assert middle is not None
    assert middle != new
    # the old root's trace says its cancel was a migration's, and to which instance
    [canceled] = [s for s in await rt.spans(old) if s.operation == "Action.cancel"]
    assert canceled.attributes == {"principal": None, "reason": "migration", "migrated_to": middle}
    assert f"(reason=migration, migrated_to={middle}, internal)" in (await rt.trace(old)).render()
    # the new root's trace begins with where it came from
    [begun] = [s for s in await rt.spans(new) if s.operation == "Action.initialize"]
    assert begun.attributes["migrated_from"] == middle
    assert begun.attributes["from_version"] == "v2"
    first = (await rt.trace(new)).render().splitlines()[1]
    assert f"trigger=migration, migrated_from={middle}, from_version=v2" in first
    assert (await rt.workflow(middle)).version == "v2"
    assert await rt.workflow_state(middle) == "canceled"
    assert finalized == [("v1->v2", "canceled")]
    assert (await rt.migration_links(new)).migrated_from == middle
    assert await states(rt, new) == {"A": "completed", "B": "completed", "C": "enabled"}
    await run(rt, new, "C")
    assert finalized[-1] == ("v2->v3", "completed")


async def test_bad_migrations_are_refused_and_change_nothing(rt: cf.Runtime) -> None:
    v1, v2 = simple("v1", "A"), simple("v2", "A", "B")
    with pytest.raises(MigrationError, match="not registered"):
        rt.register(net.migration(v1, v2).build())
    rt.register(v1)
    rt.register(v2)
    with pytest.raises(MigrationError, match=r"'simple/Z' names no task"):
        net.migration(v1, v2).task_migrators({"simple/Z": lambda ctx: "continue"}).build()
    with pytest.raises(MigrationError, match=r"'simple/Z'.*no task of version 'v2'"):
        rt.register(
            net.migration("v1", "v2", workflow="simple")
            .task_migrators({"simple/Z": lambda ctx: "continue"})
            .build()
        )
    with pytest.raises(MigrationError, match="no workflow named"):
        net.migration("v1", "v2").build()
    rt.register(net.migration(v1, v2).build())
    with pytest.raises(MigrationError, match="another migration is registered for that pair"):
        rt.register(net.migration(v1, v2).build())
    old = await rt.start_workflow("simple", version="v1")
    with pytest.raises(MigrationError, match="'v9' is not registered"):
        await rt.migrate(old, "v9")
    rt.register(simple("v3", "A"))
    with pytest.raises(MigrationError, match="no route"):
        await rt.migrate(old, "v3")
    with pytest.raises(MigrationError, match="not a root instance"):
        await rt.migrate(f"{old}.w1", "v2")
    assert await rt.workflow_state(old) == "initialized"
    assert (await rt.migration_links(old)).migrated_to is None


async def test_a_migrator_s_wrong_answer_stops_the_migration_before_the_new_root(
    rt: cf.Runtime,
) -> None:
    v1, v2 = simple("v1", "A"), simple("v2", "A", "B")
    answers = iter(["later", "fast_forward"])
    migration = (
        net.migration(v1, v2).task_migrators({"simple/A": lambda ctx: next(answers)}).build()
    )
    for spec in (v1, v2, migration):
        rt.register(spec)
    old = await rt.start_workflow("simple", version="v1")
    with pytest.raises(MigrationError, match=r"returned 'later'"):
        await rt.migrate(old, "v2")
    # the old root is canceled for the migration; the plan stays, and asking again finishes it
    planned = (await rt.migration_links(old)).migrated_to
    assert planned is not None
    assert await rt.workflow_state(old) == "canceled"
    assert await rt.migrate(old, "v2") == planned
    assert await states(rt, planned) == {"A": "completed", "B": "enabled"}


async def test_a_fast_forwarded_task_cannot_keep_children(rt: cf.Runtime) -> None:
    v1, v2 = simple("v1", "A"), simple("v2", "A", "B")

    def both(ctx: Any) -> str:
        ctx.work_item.initialize()
        return "fast_forward"

    for spec in (v1, v2, net.migration(v1, v2).task_migrators({"simple/A": both}).build()):
        rt.register(spec)
    old = await rt.start_workflow("simple", version="v1")
    with pytest.raises(MigrationError, match="initialized children and answered 'fast_forward'"):
        await rt.migrate(old, "v2")


async def test_an_open_work_item_of_the_old_root_is_canceled_with_it(rt: cf.Runtime) -> None:
    v1, v2 = simple("v1", "A"), simple("v2", "A")
    for spec in (v1, v2, net.migration(v1, v2).build()):
        rt.register(spec)
    old = await rt.start_workflow("simple", version="v1")
    item = await open_item(rt, old, "A")
    await rt.start_work_item(item.id)
    new = await rt.migrate(old, "v2")
    assert (await rt.work_item(item.id)).state == "canceled"
    assert await states(rt, new) == {"A": "enabled"}
    # the person who had started it is told where the work went (newcomer h27 F6)
    with pytest.raises(cf.errors.InvalidStateTransitionError, match=f"migrated to '{new}'"):
        await rt.complete_work_item(item.id)


README = Path(__file__).resolve().parents[2] / "README.md"


async def test_the_migration_example_in_the_readme_runs(capsys: Any) -> None:
    readme = README.read_text()
    section = readme.split("### Migrating running instances\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    await namespace["main"]()
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "{'pack': 'completed', 'label': 'enabled', 'send': 'disabled'}"
    assert printed[1] == "True"  # what the README's comments say it prints


async def test_a_root_that_ends_as_its_migration_cancels_it_is_refused_as_one_ended_before(
    rt: cf.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same refusal (``MigrationError``, HTTP ``refused``) whether the old root ended before
    the migration read it or between that read and its cancel (the chaos tester's h28 L1: a
    state conflict of the cancel, a ``conflict`` over HTTP, by timing)."""
    v1, v2 = simple("v1", "A"), simple("v2", "A")
    for spec in (v1, v2, net.migration(v1, v2).build()):
        rt.register(spec)
    old = await rt.start_workflow("simple", version="v1")
    cancel = rt.migrations._cancel

    async def ended_meanwhile(*args: Any) -> None:
        await rt.cancel_workflow(old)  # it ends after the migration read it running
        await cancel(*args)

    monkeypatch.setattr(rt.migrations, "_cancel", ended_meanwhile)
    with pytest.raises(MigrationError, match=r"it ended \('?canceled'?\) before the migration"):
        await rt.migrate(old, "v2")
    assert (await rt.migration_links(old)).migrated_to is None
    monkeypatch.undo()
    with pytest.raises(MigrationError, match=r"it has ended \(canceled\)"):
        await rt.migrate(old, "v2")  # the plan was dropped: nothing is pending


async def test_a_migrator_in_a_loop_reads_which_round_each_task_was_in(rt: cf.Runtime) -> None:
    """In a loop, ``tasks`` says only how a task's last round ended: a migrator tells the
    rounds apart by ``ctx.migrating_from.generations`` (it had to reach into ``.root``: conform
    h38 F2)."""

    def loop(version: str) -> net.NetSpec:
        def again(ctx: Any) -> Any:
            output = ctx.output or {}
            return ctx.route.to_task("K") if output.get("again") else ctx.route.to_condition("end")

        tasks = {"K": net.task().join("xor"), "L": net.task().split("xor").route(again)}
        flows = [("start", "K"), ("K", "L"), ("L", "K"), ("L", "end")]
        return build("rounds", tasks, flows, version=version)

    seen: list[tuple[dict[str, int], str]] = []

    def migrator(ctx: Any) -> str:
        source = ctx.migrating_from
        seen.append((dict(source.generations), str(source.tasks["K"])))
        return "continue"

    v1, v2 = loop("v1"), loop("v2")
    for spec in (v1, v2, net.migration(v1, v2).task_migrators({"rounds/K": migrator}).build()):
        rt.register(spec)
    old = await rt.start_workflow("rounds", version="v1")
    await run(rt, old, "K")
    await run(rt, old, "L", {"again": True})  # K's second round is enabled
    await rt.migrate(old, "v2")
    assert seen == [({"K": 2, "L": 1}, "disabled")]
