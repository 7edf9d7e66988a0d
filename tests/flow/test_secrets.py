"""``define(secrets=...)``: steps, conditions and hooks read ``ctx.secrets``; a secret is never
written to the database nor logged; a missing environment variable is refused at registration."""

from __future__ import annotations

import logging
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors.errors import MissingSecretError
from cronflow_actors.kernel import ManualClock

SECRET = "sk-live-7f3a9c1e5b"
OTHER = "pw-for-the-subflow-42"


def files_in(folder: Path) -> list[Path]:
    """The database file and whatever SQLite keeps beside it (its WAL, its shared memory)."""
    return [path for path in folder.iterdir() if path.is_file()]


def billing(hooked: list[Any]) -> cf.Flow:
    child = cf.define("lookup", secrets={"db_password": OTHER}).step(
        "connect", lambda ctx: len(ctx.secrets["db_password"])
    )
    return (
        cf.define(
            "billing",
            secrets={"api_key": cf.env("BILLING_API_KEY"), "region": "eu-west"},
            hooks=cf.Hooks(on_success=lambda ctx: hooked.append(ctx.secrets["api_key"])),
        )
        .if_("has-key", lambda ctx: ctx.secrets["api_key"].startswith("sk-"))
        .step("charge", lambda ctx: {"key_length": len(ctx.secrets["api_key"])})
        .end_if()
        .subflow("lookup", child)
        .step(
            "report",
            lambda ctx: {
                "region": ctx.secrets["region"] == "eu-west",
                "names": sorted(ctx.secrets),
                "shown": repr(ctx.secrets),
                "charged": ctx.steps["charge"],
                "child": ctx.last,
            },
        )
    )


async def test_steps_conditions_and_hooks_read_secrets_that_are_never_stored_nor_logged(
    tmp_path: Path,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("BILLING_API_KEY", SECRET)
    hooked: list[Any] = []
    with caplog.at_level(logging.DEBUG):
        async with cf.Runtime(
            db=tmp_path / "secrets.db", clock=clock, workflows=[billing(hooked)]
        ) as rt:
            run_id = await rt.trigger("billing", {"order": 7})
            result = await rt.wait(run_id)
            await rt.wait_idle()
            info = await rt.inspect(run_id)
    assert result.output == {
        "region": True,
        "names": ["api_key", "region"],
        "shown": "Secrets(api_key=***, region=***)",
        "charged": {"key_length": len(SECRET)},
        "child": len(OTHER),  # a subflow's steps read its own flow's secrets
    }
    assert hooked == [SECRET]
    assert SECRET not in repr(info)
    written = b"".join(path.read_bytes() for path in files_in(tmp_path))
    for value in (SECRET, OTHER, "eu-west"):
        assert value.encode() not in written, value
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert SECRET not in logged
    assert OTHER not in logged


async def test_a_flow_whose_environment_variable_is_not_set_is_refused_at_registration(
    rt: cf.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BILLING_API_KEY", raising=False)
    with pytest.raises(MissingSecretError) as caught:
        rt.register(billing([]))
    message = str(caught.value)
    assert "'api_key' ($BILLING_API_KEY)" in message
    assert "set them in the runtime's environment" in message
    assert rt.get_workflows() == []
    assert rt.registry.names() == []


async def test_secrets_are_read_when_a_step_reads_them(
    rt: cf.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROTATING_KEY", "first")
    rt.register(
        cf.define("rotating", secrets={"key": cf.env("ROTATING_KEY")}).step(
            "read", lambda ctx: ctx.secrets["key"]
        )
    )
    assert (await rt.wait(await rt.trigger("rotating"))).output == "first"
    monkeypatch.setenv("ROTATING_KEY", "second")
    assert (await rt.wait(await rt.trigger("rotating"))).output == "second"
    monkeypatch.delenv("ROTATING_KEY")
    failed = await rt.wait(await rt.trigger("rotating"))
    assert failed.status == "failed"
    assert failed.error is not None
    assert "MissingSecretError" in failed.error
    assert "$ROTATING_KEY" in failed.error


async def test_a_flow_without_secrets_has_an_empty_mapping(rt: cf.Runtime) -> None:
    rt.register(cf.define("plain").step("read", lambda ctx: (dict(ctx.secrets), repr(ctx.secrets))))
    assert (await rt.wait(await rt.trigger("plain"))).output == [{}, "Secrets()"]


class GatewayError(Exception):
    def __init__(self, url: str) -> None:
        super().__init__(f"502 from {url}")
        self.url = url


async def test_an_error_that_quotes_a_secret_is_kept_and_logged_with_it_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A step's error that quoted its secret (a URL with the key) was stored in the snapshot
    and the journal, logged, and shown to every token holder (hostile h39 F3)."""
    monkeypatch.setenv("LEAKY_KEY", "sk-live-3f9a77c1")
    secrets = {"key": cf.env("LEAKY_KEY"), "region": "eu"}  # (under 4 characters: kept)

    def call(ctx: Any) -> None:
        raise GatewayError(f"https://pay.example/charge?api_key={ctx.secrets['key']}&r=eu")

    def answer(ctx: Any) -> str:
        return "answered"  # (what a step returns is its own: not masked)

    leaky = cf.define("leaky", secrets=secrets).step("call", call)
    answered = cf.define("answered", secrets=secrets).step("call", call).on_error(answer)
    db = tmp_path / "leaky.db"
    async with cf.Runtime(db=db, workflows=[leaky, answered]) as rt:
        failed = await rt.wait(await rt.trigger("leaky", {}))
        fell_back = await rt.wait(await rt.trigger("answered", {}))
        masked = "502 from https://pay.example/charge?api_key=***&r=eu"
        assert failed.error == f"step 'call': GatewayError: {masked}"
        [step] = (await rt.inspect(failed.id)).steps
        assert step.error == f"GatewayError: {masked}"
        [step] = (await rt.inspect(fell_back.id)).steps
        assert step.error == f"GatewayError: {masked}"
    assert "sk-live-3f9a77c1" not in caplog.text
    assert masked in caplog.text
    for path in files_in(tmp_path):  # the database, its log: none of it holds the key
        assert b"sk-live-3f9a77c1" not in path.read_bytes(), path


async def test_a_secret_quoted_in_a_url_or_by_a_detached_action_is_masked_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A key with '/', '+', '=' or '@' quoted in a URL, and a detached action's error, were
    kept as they were (retest h39 R3, R4)."""
    key = "sk/live+3f9a=@"
    quoted = urllib.parse.quote(key, safe="")

    def call(ctx: Any) -> None:
        raise RuntimeError(f"GET https://x/?k={urllib.parse.quote(ctx.secrets['key'], safe='')}")

    def notify(ctx: Any) -> None:
        raise RuntimeError(f"action quotes {ctx.secrets['key']}")

    flow = cf.define("quoting", secrets={"key": key}).action("notify", notify).step("s", call)
    db = tmp_path / "quoting.db"
    async with cf.Runtime(db=db, workflows=[flow]) as rt:
        result = await rt.wait(await rt.trigger("quoting", {}))
        await rt.wait_idle()
        assert result.error == "step 's': RuntimeError: GET https://x/?k=***"
        steps = {step.id: step for step in (await rt.inspect(result.id)).steps}
        assert steps["notify"].error == "RuntimeError: action quotes ***"
    for path in files_in(tmp_path):
        assert quoted.encode() not in path.read_bytes(), path
        assert key.encode() not in path.read_bytes(), path
    assert quoted not in caplog.text
    assert key not in caplog.text
