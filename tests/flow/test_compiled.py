"""``Flow.compile()``: one self-describing artifact per flow, the only thing the runtime reads."""

from __future__ import annotations

import re
from pathlib import Path

import cronflow_actors as cf
from cronflow_actors.flow.compile import is_user_step

PACKAGE = Path(cf.__file__).parent


def every_construct() -> cf.Flow:
    child = cf.define("child").step("inner", str)
    return (
        cf.define("all", concurrency=2, queue="q", hooks=cf.Hooks(on_success=print))
        .step("a", str, delay="1s")
        .action("b", str)
        .if_("big", lambda ctx: True)
        .step("c", str)
        .else_()
        .sleep("d", 1)
        .end_if()
        .while_("e", lambda ctx: False, str)
        .parallel("f", [str, str])
        .race("g", [str])
        .for_each("h", lambda ctx: [], lambda item, ctx: item)
        .batch("i", lambda ctx: [], 2, lambda item, flow: flow.step("j", str))
        .wait_for_event("k", "paid")
        .on_error(str)
        .human_in_the_loop("l")
        .pause("m")
        .subflow("n", child)
        .log("hi")
        .cancel()
        .on_webhook("/webhooks/all")
        .on_event("go")
    )


def test_the_artifact_says_which_tasks_are_steps() -> None:
    compiled = every_construct().compile()
    assert list(compiled.steps) == list("abcdefghiklmn")
    plumbing = {task for task in compiled.spec.tasks if task not in compiled.steps}
    assert plumbing
    assert all(not is_user_step(task) for task in plumbing)
    assert all(is_user_step(step) for step in compiled.steps)
    kinds = {name: meta.kind for name, meta in compiled.steps.items()}
    assert kinds == {
        "a": "step",
        "b": "action",
        "c": "step",
        "d": "sleep",
        "e": "while",
        "f": "parallel",
        "g": "race",
        "h": "for_each",
        "i": "batch",
        "k": "event",
        "l": "human",
        "m": "pause",
        "n": "subflow",
    }
    assert compiled.mockable == ["a", "b", "c", "e", "h", "i"]


def test_the_artifact_holds_what_lives_outside_the_net() -> None:
    flow = every_construct()
    compiled = flow.compile()
    assert compiled.spec is flow.build()
    assert (compiled.concurrency, compiled.queue) == (2, "q")
    assert compiled.hooks.on_success is print
    assert [hook.path for hook in compiled.triggers.webhooks] == ["/webhooks/all"]
    assert compiled.triggers.events == ("go",)
    assert list(compiled.waits) == ["k"]
    assert list(compiled.humans) == ["l", "m"]
    assert [sub.id for sub in compiled.with_subflows()] == ["all", "child"]
    assert compiled.description.triggers == flow.get_triggers()
    assert flow.compile() is compiled  # kept while the chain does not change
    flow.on_event("again")
    assert flow.compile().triggers.events == ("go", "again")


def test_nothing_outside_flow_reads_the_builder_or_decodes_its_names() -> None:
    builder_reads = re.compile(
        r"\._root\b|\bflows\[[^]]*\]\.|"
        r"\bflow\.(humans|waits|webhooks|schedules|intervals|events|event_schemas|polls|hooks)\b|"
        r"""["']:["'] in |["']#["'] in """
    )
    for folder in ("runtime", "http"):
        for path in (PACKAGE / folder).rglob("*.py"):
            found = [
                line.strip() for line in path.read_text().splitlines() if builder_reads.search(line)
            ]
            assert not found, f"{path.relative_to(PACKAGE)}: {found}"


def test_build_takes_a_resolve_that_hands_out_flows() -> None:
    registered = cf.define("registered").step("x", str)
    flow = cf.define("parent").subflow("sub", "registered")
    resolve = {"registered": registered}.get
    assert flow.build(resolve=resolve) is flow.compile().spec
    assert flow.compile().steps["sub"].kind == "subflow"


def test_a_loop_without_a_fallback_compiles_as_releases_before_made_it() -> None:
    """Its runs are pinned to their definition's fingerprint: a compiler that changed the net of
    every ``while_`` held every unfinished run of a loop ``blocked`` after an upgrade (the
    reviewer's h29 H1). The value is the one 7346541 computed; a loop with ``on_error`` changed
    on purpose (README)."""
    from cronflow_actors.net.fingerprint import fingerprint

    loop = cf.define("lp").step("a", lambda c: 0).while_("w", lambda c: c.last < 3, lambda c: 1)
    assert fingerprint(loop.step("z", str).compile().spec) == "38a4bd7e43e251f8"
