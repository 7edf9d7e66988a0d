"""``serve``'s garbage collector setting: the youngest generation's threshold, from the
settings (file, environment, ``--gc-threshold``), and refused when it makes no sense."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

import cronflow_actors as cf
from cronflow_actors.cli import serve as serving
from cronflow_actors.cli.main import _settings, build_parser
from cronflow_actors.cli.serve import serve
from cronflow_actors.engine.actors import WorkflowActor
from cronflow_actors.errors import ConfigurationError
from cronflow_actors.http import server
from cronflow_actors.runtime.collector import (
    DEFAULT_GC_THRESHOLD,
    MAX_GC_THRESHOLD,
    OBJECTS_PER_RUN,
    SCALED_CEILING,
    RunsInMemory,
    runs_in_memory,
    tune_collector,
)
from cronflow_actors.runtime.config import load_config


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    """The process's thresholds, put back after the test."""
    before = gc.get_threshold()
    yield before
    tune_collector(0)  # no scaling left on
    gc.set_threshold(*before)


def test_the_youngest_generation_is_collected_less_often(
    thresholds: tuple[int, int, int],
) -> None:
    assert tune_collector() == thresholds  # what it was, to put back
    assert gc.get_threshold() == (DEFAULT_GC_THRESHOLD, *thresholds[1:])
    assert tune_collector(0) == (DEFAULT_GC_THRESHOLD, *thresholds[1:])  # 0: left alone
    assert gc.get_threshold() == (DEFAULT_GC_THRESHOLD, *thresholds[1:])
    with pytest.raises(ValueError, match=r"gc threshold must be 0 \(CPython.s own\) to"):
        tune_collector(-1)
    assert gc.get_threshold() == (DEFAULT_GC_THRESHOLD, *thresholds[1:])


def test_serve_takes_the_threshold_from_its_settings() -> None:
    assert load_config(None, environ={}).gc_threshold == DEFAULT_GC_THRESHOLD
    assert load_config(None, environ={"CRONFLOW_GC_THRESHOLD": "0"}).gc_threshold == 0
    args = build_parser().parse_args(["serve", "--gc-threshold", "5000"])
    assert _settings(args).gc_threshold == 5000
    with pytest.raises(ConfigurationError, match="gc_threshold") as bad:
        load_config(None, environ={"CRONFLOW_GC_THRESHOLD": "-5"})
    assert "CRONFLOW_GC_THRESHOLD" in str(bad.value)


def test_a_threshold_from_the_file_and_one_out_of_range(tmp_path: Path) -> None:
    config = tmp_path / "cronflow.toml"
    config.write_text("gc_threshold = 1234\n")
    assert load_config(config, environ={}).gc_threshold == 1234
    config.write_text("gc_threshold = 3_000_000_000\n")  # beyond what CPython takes
    with pytest.raises(ConfigurationError, match="gc_threshold") as bad:
        load_config(config, environ={})
    assert str(config) in str(bad.value)
    with pytest.raises(ValueError, match="100,000,000"):
        tune_collector(MAX_GC_THRESHOLD + 1)


def test_serve_sets_the_threshold_before_it_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, thresholds: tuple[int, int, int]
) -> None:
    seen: list[tuple[int, int, int]] = []
    monkeypatch.setattr(
        server, "run_servers", lambda *_args, **_kwargs: seen.append(gc.get_threshold())
    )
    monkeypatch.setattr(serving, "_configure_logging", lambda *_args: None)  # pytest's handlers
    settings = load_config(None, environ={}, overrides={"db": str(tmp_path / "s.db")})
    assert serve(msgspec.structs.replace(settings, gc_threshold=4321)) == 0
    assert seen == [(4321, *thresholds[1:])]


def test_the_threshold_grows_with_the_instances_in_memory_and_falls_back(
    thresholds: tuple[int, int, int],
) -> None:
    counted = RunsInMemory()
    counted.scale_from(1000)
    for _ in range(2000):
        counted.added()
    assert gc.get_threshold() == (OBJECTS_PER_RUN * 2048, *thresholds[1:])
    assert OBJECTS_PER_RUN * 2048 >= 2 * 52 * 2000  # room for what they hold, twice
    for _ in range(1000):  # 1,000 left: not yet below a quarter of the step, no retune
        counted.removed()
    assert gc.get_threshold()[0] == OBJECTS_PER_RUN * 2048
    for _ in range(489):  # 511: below a quarter (512), the step above the count
        counted.removed()
    assert gc.get_threshold()[0] == OBJECTS_PER_RUN * 512
    for _ in range(3):  # to and fro across 512: one step up, none back down at 511
        counted.added()
        assert gc.get_threshold()[0] == OBJECTS_PER_RUN * 1024
        counted.removed()
        assert gc.get_threshold()[0] == OBJECTS_PER_RUN * 1024
    for _ in range(511):  # none left: the floor
        counted.removed()
    assert gc.get_threshold()[0] == max(1000, OBJECTS_PER_RUN * 2)
    for _ in range(100_000):  # far more than the ceiling makes room for
        counted.added()
    assert gc.get_threshold()[0] == SCALED_CEILING
    counted.scale_from(3_000_000)  # a setting above the ceiling is kept
    assert gc.get_threshold()[0] == 3_000_000
    counted.scale_from(0)  # off: the count no longer moves the threshold
    for _ in range(100_000):
        counted.removed()
    assert gc.get_threshold()[0] == 3_000_000
    assert counted.count == 0


async def test_a_runtimes_instances_in_memory_are_counted(
    tmp_path: Path, thresholds: tuple[int, int, int]
) -> None:
    gate = asyncio.Event()

    async def held(ctx: Any) -> int:
        await gate.wait()
        return 1

    flow = cf.define("held").step("wait", held)
    base = runs_in_memory.count  # instances other tests left in memory, if any
    tune_collector(100)
    async with cf.Runtime(db=tmp_path / "c.db", workflows=[flow]) as rt:
        runs = [await rt.trigger("held", n) for n in range(300)]
        assert runs_in_memory.count == base + 300
        step = 1 << (base + 300).bit_length()
        assert gc.get_threshold()[0] == OBJECTS_PER_RUN * step
        gate.set()
        for run in runs:
            assert (await rt.wait(run)).status == "completed"
        await rt.wait_idle()
        assert runs_in_memory.count == base
        assert len(rt.instances) == 0


async def test_an_instance_whose_actor_fails_is_no_longer_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def step(ctx: Any) -> int:
        return 1

    def broken(self: WorkflowActor) -> None:
        raise RuntimeError("the actor broke")

    flow = cf.define("breaks").step("one", step)
    base = runs_in_memory.count
    async with cf.Runtime(db=tmp_path / "f.db", workflows=[flow]) as rt:
        monkeypatch.setattr(WorkflowActor, "on_idle", broken)
        await rt.trigger("breaks", 1)
        await rt.wait_idle()
        # the actor failed after its first message: it left the directory and the count
        assert len(rt.instances) == 0
        assert runs_in_memory.count == base
