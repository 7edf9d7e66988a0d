"""``serve APP`` where APP builds its own ``Runtime``: a setting that would have built it is
refused unless it is that runtime's own, and ``--wait-for-lease`` is taken (newcomer h42 F1:
``--db real.db`` served in memory, saying to give ``--db`` a file; ``--wait-for-lease`` was
dropped, and a supervisor's restart exited 2 asking for it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors.cli.app_runtime import runtime_of
from cronflow_actors.errors import ConfigurationError
from cronflow_actors.runtime.config import load_config
from tests.test_cli import cli

ROOT = Path(__file__).resolve().parents[1]


def flows() -> list[cf.Flow]:
    return [cf.define("greet").step("hello", lambda ctx: ctx.payload)]


def settings(**given: Any) -> Any:
    return load_config(None, environ={}, overrides=given)


def test_a_db_the_runtime_does_not_open_is_refused_naming_its_own(tmp_path: Path) -> None:
    built = cf.Runtime(workflows=flows())  # in memory
    with pytest.raises(ConfigurationError) as refused:
        runtime_of(settings(db=str(tmp_path / "real.db")), built, "app:runtime")
    said = str(refused.value)
    assert "Runtime(db=...)" in said
    assert "its database is in memory" in said
    on_file = cf.Runtime(db=tmp_path / "own.db", workflows=flows())
    with pytest.raises(ConfigurationError, match=r"its database is SQLite file .*own\.db"):
        runtime_of(settings(db=str(tmp_path / "other.db")), on_file, "app:runtime")
    # the default's name, given, is given (retest h42 N2: taken for none, served in memory)
    with pytest.raises(ConfigurationError, match="its database is in memory"):
        runtime_of(settings(db="cronflow.db"), built, "app:runtime")
    with pytest.raises(ConfigurationError, match=r"Runtime\(retention=\.\.\.\)"):
        runtime_of(settings(retention="30d"), cf.Runtime(retention=None), "app:runtime")
    # its own file, however written, is no conflict
    same = settings(db=str(tmp_path / "." / "own.db"))
    assert runtime_of(same, on_file, "app:runtime") is on_file


@pytest.mark.parametrize(
    ("name", "value"),
    [("synchronous", "NORMAL"), ("lease_seconds", 30.0), ("retention", "7d")],
)
def test_a_setting_the_runtime_has_otherwise_is_refused(name: str, value: Any) -> None:
    built = cf.Runtime(workflows=flows())
    with pytest.raises(ConfigurationError, match=rf"Runtime\({name}=\.\.\.\)"):
        runtime_of(settings(**{name: value}), built, "app:runtime")


def test_the_runtime_s_own_values_and_the_defaults_are_taken() -> None:
    built = cf.Runtime(workflows=flows(), lease_seconds=30, retention=7 * 86400)
    given = settings(lease_seconds=30.0, retention="7d")
    assert runtime_of(given, built, "app:runtime") is built
    assert runtime_of(settings(), built, "app:runtime") is built


def test_wait_for_lease_is_taken_by_the_runtime_the_app_builds() -> None:
    built = cf.Runtime(workflows=flows())
    assert built.lease.waits is False
    runtime_of(settings(wait_for_lease=True), built, "app:runtime")
    assert built.lease.waits is True


def test_serve_refuses_db_for_a_runtime_app_and_writes_no_file(tmp_path: Path) -> None:
    db = tmp_path / "real.db"
    refused = cli("serve", "tests.serve_queue_app:runtime", "--db", str(db), cwd=ROOT)
    assert refused.returncode == 2, refused.stderr
    assert "Runtime(db=...)" in refused.stderr
    assert "its database is in memory" in refused.stderr
    assert not db.exists()
