"""``serve``'s event loop: uvloop when installed, asyncio's own when asked for (whatever policy
the application installed), from the settings (file, environment, ``--loop``), and refused
when it cannot be had."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest

from cronflow_actors.cli import serve as serving
from cronflow_actors.cli.main import _settings, build_parser
from cronflow_actors.cli.serve import serve
from cronflow_actors.errors import ConfigurationError
from cronflow_actors.http import server
from cronflow_actors.http.server import ServerLimits, run_servers
from cronflow_actors.runtime import event_loop
from cronflow_actors.runtime.config import load_config
from cronflow_actors.runtime.event_loop import loop_factory


async def _running() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def _run_on(factory: Any) -> asyncio.AbstractEventLoop:
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_running())


@pytest.fixture
def uvloop_policy() -> Iterator[None]:
    """uvloop's policy installed, as an application may do; asyncio's put back after."""
    uvloop = pytest.importorskip("uvloop")
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    yield
    asyncio.set_event_loop_policy(None)


def test_auto_and_uvloop_run_on_uvloop_when_it_is_installed() -> None:
    uvloop = pytest.importorskip("uvloop")
    for name in ("auto", "uvloop"):
        loop, factory = loop_factory(name)
        assert loop == "uvloop"
        assert isinstance(_run_on(factory), uvloop.Loop)


@pytest.mark.usefixtures("uvloop_policy")
def test_asyncio_is_asyncios_own_loop_whatever_policy_is_installed() -> None:
    loop, factory = loop_factory("asyncio")
    assert loop == "asyncio"
    assert type(_run_on(factory)) is asyncio.SelectorEventLoop
    assert type(_run_on(None)) is not asyncio.SelectorEventLoop  # the policy's, for contrast


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.import_module

    def without_uvloop(name: str, package: str | None = None) -> ModuleType:
        if name == "uvloop":
            raise ImportError("No module named 'uvloop'")
        return real(name, package)

    monkeypatch.setattr(event_loop.importlib, "import_module", without_uvloop)
    loop, factory = loop_factory("auto")
    assert loop == "asyncio"
    assert type(_run_on(factory)) is asyncio.SelectorEventLoop
    with pytest.raises(ConfigurationError, match=r"pip install -e '\.\[uvloop\]'"):
        loop_factory("uvloop")


def test_the_setting_comes_from_file_environment_and_flag(tmp_path: Path) -> None:
    assert load_config(None, environ={}).loop == "auto"
    assert load_config(None, environ={"CRONFLOW_LOOP": "asyncio"}).loop == "asyncio"
    config = tmp_path / "cronflow.toml"
    config.write_text('loop = "uvloop"\n')
    assert load_config(config, environ={}).loop == "uvloop"
    assert _settings(build_parser().parse_args(["serve", "--loop", "asyncio"])).loop == "asyncio"
    with pytest.raises(ConfigurationError, match="one of auto, asyncio, uvloop") as bad:
        load_config(None, environ={"CRONFLOW_LOOP": "trio"})
    assert "CRONFLOW_LOOP" in str(bad.value)
    with pytest.raises(ConfigurationError, match="one of auto, asyncio, uvloop"):
        loop_factory("trio")


def test_serve_hands_the_settings_loop_to_its_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(
        server, "run_servers", lambda *_args, **kwargs: seen.append(kwargs["loop_factory"])
    )
    monkeypatch.setattr(serving, "_configure_logging", lambda *_args: None)  # pytest's handlers
    settings = load_config(None, environ={}, overrides={"db": str(tmp_path / "s.db")})
    assert serve(msgspec.structs.replace(settings, loop="asyncio")) == 0
    assert seen == [loop_factory("asyncio")[1]]


@pytest.mark.parametrize("name", ["asyncio", "uvloop"])
def test_the_servers_run_on_the_loop_they_are_given(name: str) -> None:
    """A real uvicorn server on loopback, on the loop ``run_servers`` was given: its app sees
    that loop running as it starts, then stops the server."""
    if name == "uvloop":
        pytest.importorskip("uvloop")
    _, factory = loop_factory(name)
    seen: list[type[asyncio.AbstractEventLoop]] = []
    servers: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        message = await receive()
        if message["type"] == "lifespan.startup":
            seen.append(type(asyncio.get_running_loop()))
            servers[0].should_exit = True
            await send({"type": "lifespan.startup.complete"})
            await receive()
        await send({"type": "lifespan.shutdown.complete"})

    run_servers(
        app,
        host="127.0.0.1",
        port=0,
        limits=ServerLimits(),
        log_level="warning",
        on_abort=lambda: None,
        started=servers.append,
        loop_factory=factory,
    )
    assert seen == [type(_run_on(factory))]
