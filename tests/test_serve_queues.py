"""Named queues' limits from the settings of a real ``serve``: the TOML file's ``[queues]`` and
``--queue NAME=N`` flags (which add to the file's)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from cronflow_actors.errors import ConfigurationError
from cronflow_actors.runtime.config import load_config
from tests.serving import ROOT, serving

APP = str(ROOT / "tests" / "serve_queue_app.py")


def test_queues_come_from_the_file_and_the_flags() -> None:
    assert load_config(None, environ={}).queues == {}
    assert load_config(None, environ={}, overrides={"queues": {"emails": 2}}).queues == {
        "emails": 2
    }


def test_bad_queue_settings_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[queues]\nemails = 0\n")
    with pytest.raises(ConfigurationError, match="queues"):
        load_config(config, environ={})
    config.write_text("[queues]\nemails = 'five'\n")
    with pytest.raises(ConfigurationError, match="queues"):
        load_config(config, environ={})


def test_serve_limits_a_named_queue_as_its_settings_say(tmp_path: Path) -> None:
    config = tmp_path / "cronflow.toml"
    config.write_text("[queues]\nemails = 5\nreports = 1\n")
    flags = ["--config", str(config), "--queue", "emails=2"]  # overrides the file's 5
    with serving(APP, tmp_path / "queues.db", *flags) as served:
        for flow in ("welcome", "digest", "welcome"):
            answer = httpx.post(f"{served.url}/runs", json={"workflow": flow, "payload": flow})
            assert answer.status_code == 202, answer.text
        paused = httpx.get(f"{served.url}/paused").json()["paused"]
        assert sorted(p["workflow"] for p in paused) == ["digest", "welcome"]  # 2 at once
        waiting = httpx.get(f"{served.url}/runs", params={"status": "waiting"}).json()["runs"]
        queued = {r["id"] for r in waiting} - {p["run_id"] for p in paused}
        assert len(queued) == 1  # the third waits in the queue (listed, not started)
        assert httpx.get(f"{served.url}/runs/{queued.pop()}").json()["steps"] == []
        httpx.post(f"{served.url}/resume/{paused[0]['token']}", json={"approved": True})
        deadline = time.monotonic() + 10  # another process: its queue moves on its own
        while len(httpx.get(f"{served.url}/paused").json()["paused"]) < 2:
            assert time.monotonic() < deadline, "the queued run did not start"
            time.sleep(0.02)
        tokens = {p["token"] for p in httpx.get(f"{served.url}/paused").json()["paused"]}
        assert paused[0]["token"] not in tokens  # the third run took the place it freed
    assert "does not configure" not in served.output()


def test_bad_queue_flags_are_usage_errors(tmp_path: Path) -> None:
    from tests.test_cli import cli

    db = str(tmp_path / "x.db")
    bad = cli("serve", APP, "--db", db, "--queue", "emails", cwd=ROOT)
    assert (bad.returncode, "NAME=N" in bad.stderr) == (2, True)
    # an app that builds its own Runtime sets its queues there: flags cannot reach them
    own = cli("serve", "tests.serve_queue_app:runtime", "--db", db, "--queue", "e=3", cwd=ROOT)
    assert (own.returncode, "Runtime(queues=...)" in own.stderr) == (2, True), own.stderr
    assert not (tmp_path / "x.db").exists()
