"""A definition's structural fingerprint: the same structure gives the same fingerprint (built
again, in another process, under another version, with other function bodies); any change a
running instance's state depends on gives another one."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.net.fingerprint import FINGERPRINT_LENGTH, fingerprint
from tests.runtime.pinning_worker import flow

ROOT = Path(__file__).resolve().parents[2]


def build(
    *,
    version: str = "v1",
    second: str = "b",
    join: str = "and",
    region: bool = False,
    child: str = "inner",
    item: str = "w",
    handler: Callable[..., Any] = lambda ctx: 1,
) -> net.NetSpec:
    inner = (
        net.workflow(child)
        .start_condition("s")
        .end_condition("e")
        .task("x", net.task(handler))
        .connect_condition("s", "x")
        .connect_task("x", "e")
    )
    builder = (
        net.workflow("outer", version=version)
        .start_condition("start")
        .end_condition("end")
        .task("a", net.task(handler).join(join))
        .task(second, net.task(net.work_item(item)))
        .composite_task("c", net.composite_task(inner))
        .connect_condition("start", "a")
        .connect_task("a", second, "c")
        .connect_task(second, "end")
        .connect_task("c", "end")
    )
    if region:
        builder = builder.cancellation_region(second, tasks=["c"])
    return builder.build()


def test_the_same_definition_has_the_same_fingerprint() -> None:
    first = fingerprint(build())
    assert len(first) == FINGERPRINT_LENGTH
    assert fingerprint(build()) == first  # built again
    assert fingerprint(build(version="v2")) == first  # the version is not structure
    assert fingerprint(build(handler=lambda ctx: 2)) == first  # nor is a function's body
    assert fingerprint(flow("old").compile().spec) == fingerprint(flow("crash").compile().spec)


@pytest.mark.parametrize(
    "change",
    [
        {"second": "renamed"},
        {"join": "xor"},
        {"region": True},
        {"child": "other"},
        {"item": "other"},
    ],
)
def test_a_structural_change_changes_the_fingerprint(change: dict[str, Any]) -> None:
    assert fingerprint(build(**change)) != fingerprint(build())


def ids(*steps: str) -> str:
    built = cf.define("f")
    for step in steps:
        built = built.step(step, lambda ctx: None)
    return fingerprint(built.compile().spec)


def test_a_flows_step_ids_and_order_are_in_its_fingerprint() -> None:
    assert ids("a", "b", "c") == ids("a", "b", "c")
    assert ids("a", "b", "c") != ids("a", "c", "b")  # reordered
    assert ids("a", "b", "c") != ids("a", "b")  # removed
    assert ids("a", "b", "c") != ids("a", "b", "d")  # renamed
    sleeping = fingerprint(cf.define("f").step("a", lambda ctx: None).sleep("b", 5).compile().spec)
    assert sleeping != ids("a", "b")  # another kind of step


def test_the_fingerprint_is_the_same_in_another_process() -> None:
    code = (
        "from cronflow_actors.net.fingerprint import fingerprint\n"
        "from tests.runtime.pinning_worker import flow\n"
        "print(fingerprint(flow('changed').compile().spec))\n"
    )
    found = set()
    for seed in ("1", "2"):  # str hashes (set and frozenset order) differ between the two
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        found.add(out.stdout.strip())
    assert found == {fingerprint(flow("changed").compile().spec)}
