"""``serve``'s event loop: uvloop when installed, asyncio's own when asked for, from the settings
(file, environment, ``--loop``), and refused when it cannot be had."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest
import uvloop

from cronflow_actors.cli import serve as serving
from cronflow_actors.cli.main import _settings, build_parser
from cronflow_actors.cli.serve import serve
from cronflow_actors.errors import ConfigurationError
from cronflow_actors.http import server
from cronflow_actors.runtime import event_loop
from cronflow_actors.runtime.config import load_config
from cronflow_actors.runtime.event_loop import loop_factory, loop_name


async def _running() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def _run_on(factory: Any) -> asyncio.AbstractEventLoop:
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_running())


def test_auto_and_uvloop_run_on_uvloop_and_asyncio_on_asyncios_own() -> None:
    assert isinstance(_run_on(loop_factory("auto")), uvloop.Loop)
    assert isinstance(_run_on(loop_factory("uvloop")), uvloop.Loop)
    assert loop_factory("asyncio") is None
    assert type(_run_on(loop_factory("asyncio"))) is asyncio.SelectorEventLoop
    assert (loop_name(loop_factory("auto")), loop_name(None)) == ("uvloop", "asyncio")


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.import_module

    def without_uvloop(name: str, package: str | None = None) -> ModuleType:
        if name == "uvloop":
            raise ImportError("No module named 'uvloop'")
        return real(name, package)

    monkeypatch.setattr(event_loop.importlib, "import_module", without_uvloop)
    assert loop_factory("auto") is None
    with pytest.raises(ConfigurationError, match="pip install uvloop") as refused:
        loop_factory("uvloop")
    assert "loop" in str(refused.value)


def test_the_setting_comes_from_file_environment_and_flag(tmp_path: Path) -> None:
    assert load_config(None, environ={}).loop == "auto"
    assert load_config(None, environ={"CRONFLOW_LOOP": "asyncio"}).loop == "asyncio"
    config = tmp_path / "cronflow.toml"
    config.write_text('loop = "uvloop"\n')
    assert load_config(config, environ={}).loop == "uvloop"
    assert _settings(build_parser().parse_args(["serve", "--loop", "asyncio"])).loop == "asyncio"
    with pytest.raises(ConfigurationError, match="loop") as bad:
        load_config(None, environ={"CRONFLOW_LOOP": "trio"})
    assert "CRONFLOW_LOOP" in str(bad.value)
    with pytest.raises(ConfigurationError, match="one of auto, asyncio, uvloop"):
        loop_factory("trio")


def test_serve_runs_its_servers_on_the_loop_it_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(
        server, "run_servers", lambda *_args, **kwargs: seen.append(kwargs["loop_factory"])
    )
    monkeypatch.setattr(serving, "_configure_logging", lambda *_args: None)  # pytest's handlers
    settings = load_config(None, environ={}, overrides={"db": str(tmp_path / "s.db")})
    assert serve(settings) == 0
    assert serve(msgspec.structs.replace(settings, loop="asyncio")) == 0
    assert seen == [uvloop.new_event_loop, None]
