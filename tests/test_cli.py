"""The command line, run as users run it: in a subprocess."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cronflow_actors.errors import ConfigurationError
from cronflow_actors.store import latest_version


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cronflow_actors", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_the_db_commands_read_a_tilde_as_serve_does(tmp_path: Path) -> None:
    """``~/app.db`` (quoted: a unit file's or an .env's) opened serve's database, and the db
    commands refused it as no file (review h45 F9)."""
    env = {**os.environ, "HOME": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "cronflow_actors", *args]
        return subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=60, check=False
        )

    assert run("db", "migrate", "--create", "--db", "~/home.db").returncode == 0
    assert (tmp_path / "home.db").is_file()
    for args in (["migrate"], ["prune", "--older-than", "7d"], ["backup", "~/b.db"]):
        done = run("db", *args, "--db", "~/home.db")
        assert done.returncode == 0, (args, done.stderr)
    assert (tmp_path / "b.db").is_file()
    nouser = run("db", "prune", "--older-than", "7d", "--db", "~no-such-user-here/x.db")
    assert nouser.returncode == 2
    assert "expected a path whose ~user is a user of this machine" in nouser.stderr


def test_version_prints_the_installed_version() -> None:
    result = cli("version")
    assert result.returncode == 0
    assert result.stdout.startswith("cronflow-actors ")


def test_help_lists_the_commands() -> None:
    result = cli("--help")
    assert result.returncode == 0
    assert "version" in result.stdout
    assert "db" in result.stdout


def test_db_migrate_creates_and_migrates_a_database_file(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    # a missing file (a typo) is refused: it was created empty and said to be migrated (the
    # third hostile client's L3)
    typo = cli("db", "migrate", "--db", str(db))
    assert typo.returncode == 2
    assert f"'--db' has the value '{db}'; expected the path of an existing database file" in (
        typo.stderr
    )
    assert "pass --create" in typo.stderr
    assert not db.exists()
    result = cli("db", "migrate", "--create", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"created database {db} at schema version {latest_version()}\n"
    with sqlite3.connect(db) as raw:
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
    assert {"instances", "journal", "timers", "kv", "schema_version"} <= tables
    again = cli("db", "migrate", "--db", str(db))  # idempotent, and says so (devx h43 F8)
    assert again.returncode == 0
    assert again.stdout == (
        f"database {db} is already at schema version {latest_version()}: nothing to upgrade\n"
    )


def test_db_migrate_waits_for_the_older_runtime_its_lease_names_when_asked(
    tmp_path: Path,
) -> None:
    """Its refusal said to pass --wait-for-lease, which db migrate did not take (review h41)."""
    import time

    from tests.store.test_sqlite import database_at

    db = tmp_path / "owned.db"
    with database_at(db, 8) as raw:  # a runtime of the version before holds it for 5 s more
        now = time.time()  # (2 s had passed by the second call on a loaded machine: a flake)
        raw.execute(
            "INSERT INTO leases VALUES ('runtime', 'old-one', 'elsewhere', 4242, ?, ?, ?)",
            (now, now, now + 5),
        )
    refused = cli("db", "migrate", "--db", str(db))
    assert refused.returncode == 2
    assert "upgraded only once no older runtime writes to it" in refused.stderr
    waited = cli("db", "migrate", "--db", str(db), "--wait-for-lease")
    assert waited.returncode == 0, waited.stderr
    assert "; waiting" in waited.stderr
    assert waited.stdout == (  # it said the same as a file already upgraded (devx h43 F8)
        f"upgraded database {db} from schema version 8 to {latest_version()}\n"
    )


def test_a_bad_setting_is_reported_and_exits_non_zero(tmp_path: Path) -> None:
    result = cli("db", "migrate", "--db", str(tmp_path / "x.db"), "--synchronous", "MAYBE")
    assert result.returncode == 2
    assert "'synchronous' has the value 'MAYBE'" in result.stderr
    assert not (tmp_path / "x.db").exists()
    missing = cli("db", "migrate", "--create", "--db", str(tmp_path / "no" / "such" / "x.db"))
    assert missing.returncode == 2
    assert "existing folder" in missing.stderr
    # a folder: refused before SQLite tries it (its failed open left a thread that could print
    # a traceback as the process ended)
    for attempt in range(3):
        folder = cli("db", "migrate", "--db", str(tmp_path))
        assert folder.returncode == 2
        assert folder.stderr == (
            f"cronflow-actors: error: setting 'db' has the value '{tmp_path}'; expected the "
            "path of a SQLite database file, not of a folder\n"
        ), attempt
    # a file that is not a database: said with its path and SQLite's reason, no traceback
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a database\n" * 100)
    for command in (["migrate"], ["prune", "--older-than", "7d"]):
        refused = cli("db", *command, "--db", str(text))
        assert refused.returncode == 2, refused.stderr
        assert f"'db' has the value '{text}'" in refused.stderr
        assert "SQLite said: file is not a database" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert text.read_text() == "hello, not a database\n" * 100  # untouched
    # a ~user no user of the machine has (a quoted one from a unit file or an .env): refused,
    # where it ended in a traceback (retest h45 N6)
    for command in (["db", "migrate", "--create"], ["serve", "--port", "0"]):
        nouser = cli(*command, "--db", "~no-such-user-here/x.db")
        assert nouser.returncode == 2, nouser.stderr
        assert "expected a path whose ~user is a user of this machine" in nouser.stderr
        assert "Traceback" not in nouser.stderr


def test_an_unknown_option_is_refused_by_its_command_with_the_one_it_meant() -> None:
    # argparse said it with the top level's usage and no hint; a TOML key already had one
    for given, command, meant in (
        (["serve", "--prot", "8612"], "serve", "--port"),
        (["runs", "--limt", "5"], "runs", "--limit"),
        (["db", "prune", "--older-than", "7d", "--dbb", "x.db"], "db prune", "--db"),
    ):
        result = cli(*given)
        assert result.returncode == 2
        assert f"usage: cronflow-actors {command} " in result.stderr
        error = result.stderr.splitlines()[-1]
        assert error.startswith(f"cronflow-actors {command}: error: unrecognized arguments: ")
        assert error.endswith(f"; did you mean {meant}?")


def test_no_command_prints_the_help_and_exits_2() -> None:
    result = cli()
    assert result.returncode == 2
    assert re.search(r"\n +events +publish an event to the runs that wait for it", result.stderr)
    assert re.search(r"\n +pause-schedules\s+pause a flow's cron schedules", result.stderr)
    assert "required" not in result.stderr  # the help, where argparse said what was missing


def test_an_unknown_command_is_a_usage_error() -> None:
    result = cli("fly")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_serve_apps_are_loaded_from_modules_and_files(tmp_path: Path) -> None:
    from cronflow_actors.cli.serve import load_app

    app_file = tmp_path / "app.py"
    app_file.write_text(
        "import cronflow_actors as cf\nworkflows = [cf.define('x').step('s', print)]\n"
    )
    assert [flow.id for flow in load_app(str(app_file))] == ["x"]
    assert load_app("cronflow_actors.examples.order_processing:orders").id == "order-processing"
    # postponed annotations: a dataclass and a msgspec schema look theirs up in sys.modules,
    # where a file serve loaded was not (newcomer h30 F1)
    typed = tmp_path / "shop.py"
    typed.write_text(
        "from __future__ import annotations\n"
        "import dataclasses\nimport msgspec\nimport cronflow_actors as cf\n"
        "class Line(msgspec.Struct):\n    sku: str\n"
        "class Order(msgspec.Struct):\n    lines: list[Line]\n"
        "@dataclasses.dataclass\nclass Note:\n    text: str\n"
        "workflows = [cf.define('shop').on_webhook('/hooks/shop', schema=Order)"
        ".step('s', lambda ctx: Note(str(ctx.payload)).text)]\n"
    )
    [shop] = load_app(str(typed))
    assert shop.id == "shop"
    for bad, message in (
        ("no_such_module:thing", "an importable module"),
        ("cronflow_actors.examples.order_processing:missing", "defines 'missing'"),
        ("not-a-spec", "module:attribute"),
        (str(tmp_path / "missing.py"), "an existing Python file"),
        # the newcomer's finding 16: what to type instead
        (f"{app_file}:workflows", r"module:attribute \(app:workflows, run from the file's"),
        (
            "cronflow_actors.examples.order_processing:missing",
            r"it defines cronflow_actors.examples.order_processing:orders, "
            r"cronflow_actors.examples.order_processing:workflows: serve one of those",
        ),
    ):
        with pytest.raises(ConfigurationError, match=message):
            load_app(bad)


@pytest.mark.parametrize(
    ("code", "line", "said"),
    [
        ("import cronflow_actors as cf\nworkflows = [cf.define('x'\n", 2, "SyntaxError: '(' was"),
        ("import requestz\nworkflows = []\n", 1, "No module named 'requestz'"),
        ("def f():\n    return 1 / 0\n\nworkflows = f()\n", 2, "ZeroDivisionError: division"),
        ("import json\n\nworkflows = json.loads('{')\n", 3, "JSONDecodeError: Expecting"),
        (
            "import cronflow_actors as cf\nworkflows = [cf.define('x').step('s', 5).validate()]\n",
            2,
            "InvalidWorkflowError: workflow 'x'",
        ),
    ],
    ids=["syntax", "import", "raises", "raises-in-a-library", "raises-in-cronflow-actors"],
)
def test_serve_an_app_whose_code_fails_to_import_says_where_and_exits_2(
    tmp_path: Path, code: str, line: int, said: str
) -> None:
    app = tmp_path / "broken_app.py"
    app.write_text(code)
    for spec in (str(app), "broken_app:workflows"):  # a file, and a module the cwd holds
        result = cli("serve", spec, "--db", "x.db", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        [error] = [text for text in result.stderr.splitlines() if "error:" in text]
        assert error.startswith(f"cronflow-actors: error: cannot load the app {spec!r}: ")
        assert f"{app}, line {line}: " in error
        assert said in error
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "x.db").exists()  # nothing was opened


def test_db_prune_refuses_a_bare_number_and_deletes_nothing(tmp_path: Path) -> None:
    import asyncio

    import cronflow_actors as cf

    db = tmp_path / "prune.db"

    async def finished_run() -> None:
        flow = cf.define("quick").step("s", lambda ctx: 1)
        async with cf.Runtime(db=db, workflows=[flow]) as rt:
            await rt.wait(await rt.trigger("quick"))

    asyncio.run(finished_run())
    refused = cli("db", "prune", "--db", str(db), "--older-than", "7")
    assert refused.returncode == 2
    assert "setting '--older-than' has the value '7'" in refused.stderr
    assert "such as '7d', '12h', '30m' or '90s'" in refused.stderr
    assert "nothing was deleted" in refused.stderr
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT count(*) FROM instances").fetchone()[0] == 1
    kept = cli("db", "prune", "--db", str(db), "--older-than", "7 d")
    assert kept.returncode == 0, kept.stderr
    assert re.match(
        r"pruned 0 finished runs older than 7d \(finished before \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\)",
        kept.stdout,
    )
    ages_ago = cli("db", "prune", "--db", str(db), "--older-than", "99999999999d")
    assert ages_ago.returncode == 2, ages_ago.stderr  # (a traceback: ops h41 F4)
    assert "expected an age since 1970 at most" in ages_ago.stderr
    assert "Traceback" not in ages_ago.stderr
    pruned = cli("db", "prune", "--db", str(db), "--older-than", "0")
    assert pruned.stdout.startswith("pruned 1 finished run older than 0s (finished before ")
    none_left = cli("db", "prune", "--db", str(db), "--older-than", "0d")
    assert none_left.stdout.startswith("pruned 0 finished runs older than 0d (finished before ")


def test_db_prune_waits_its_turn_saying_so_and_ctrl_c_ends_it_without_a_traceback(
    tmp_path: Path,
) -> None:
    """Ctrl-C, a waiting prune's natural answer, ended in a traceback (retest h45 N4)."""
    import fcntl
    import signal

    db = tmp_path / "turn.db"
    assert cli("db", "migrate", "--create", "--db", str(db)).returncode == 0
    held = os.open(f"{db}-prune.lock", os.O_RDONLY | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)  # another process's prune
    command = [sys.executable, "-m", "cronflow_actors", "db", "prune", "--db", str(db)]
    try:
        with subprocess.Popen(
            [*command, "--older-than", "1s"], stderr=subprocess.PIPE, text=True
        ) as waiting:
            assert waiting.stderr is not None
            said = waiting.stderr.readline()
            assert "another process prunes this database: this prune waits for its end" in said
            waiting.send_signal(signal.SIGINT)
            assert waiting.wait(30) == 130
            stopped = waiting.stderr.read()
        assert stopped == "\ncronflow-actors: stopped (Ctrl-C); what was done is kept\n"
    finally:
        os.close(held)


def test_serve_refuses_a_retention_without_a_unit(tmp_path: Path) -> None:
    for given in (["--retention", "5"], ["--config", str(tmp_path / "c.toml")]):
        (tmp_path / "c.toml").write_text('retention = "5"\n')
        result = cli("serve", "--db", str(tmp_path / "s.db"), *given)
        assert result.returncode == 2
        assert "retention '5' has no unit" in result.stderr
        assert not (tmp_path / "s.db").exists()  # refused before anything started


def test_a_served_file_imports_the_modules_beside_it(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "helpers_beside.py").write_text("def greet(ctx):\n    return 'hello'\n")
    (app / "sib.py").write_text(
        "import cronflow_actors as cf\nfrom helpers_beside import greet\n"
        "workflows = [cf.define('sib').step('greet', greet)]\n"
    )
    script = (
        "import sys\nfrom cronflow_actors.cli.serve import load_app\n"
        f"[flow] = load_app({str(app / 'sib.py')!r})\n"
        f"assert sys.path[0] == {str(app)!r}, sys.path[:3]\n"
        "print(flow.id)\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()  # not the file's folder: the file's own folder is what counts
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "sib\n"


def test_db_commands_use_the_database_serve_would_use(tmp_path: Path) -> None:
    """``CRONFLOW_DB`` (or ``--config``'s db) names the database for ``db migrate`` and ``db
    prune`` as for ``serve``, where they used ./cronflow.db and said it was done."""
    real = tmp_path / "real.db"
    env = {**os.environ, "CRONFLOW_DB": str(real)}
    migrated = subprocess.run(
        [sys.executable, "-m", "cronflow_actors", "db", "migrate", "--create"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert migrated.returncode == 0, migrated.stderr
    assert f"created database {real} at schema version" in migrated.stdout
    assert real.is_file()
    assert not (tmp_path / "cronflow.db").exists()
    config = tmp_path / "settings.toml"
    config.write_text(f"db = {str(tmp_path / 'gone.db')!r}\n")
    pruned = cli("db", "prune", "--older-than", "7d", "--config", str(config), cwd=tmp_path)
    assert pruned.returncode == 2
    # which of the sources gave the name (review L2: it listed all four)
    said = f"setting 'db in --config {config}' has the value '{tmp_path / 'gone.db'}'"
    assert said in pruned.stderr
    env["CRONFLOW_DB"] = str(tmp_path / "typo.db")
    pruned = subprocess.run(
        [sys.executable, "-m", "cronflow_actors", "db", "prune", "--older-than", "7d"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert pruned.returncode == 2
    assert f"setting 'CRONFLOW_DB' has the value '{tmp_path / 'typo.db'}'" in pruned.stderr
    assert not (tmp_path / "typo.db").exists()


def test_db_prune_on_a_database_another_process_holds_locked_says_so(tmp_path: Path) -> None:
    db = tmp_path / "locked.db"
    assert cli("db", "migrate", "--create", "--db", str(db)).returncode == 0
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # another tool writing, past the store's busy wait
        pruned = cli("db", "prune", "--db", str(db), "--older-than", "7d")
    finally:
        holder.close()
    assert pruned.returncode == 4, pruned.stderr
    assert f"another process holds a write lock on {db}" in pruned.stderr
    assert "restart the runtime" not in pruned.stderr  # there is none to restart
    assert pruned.stderr.count("\n") == 1  # said once, not also by the store's log line


def test_the_server_options_may_come_before_the_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``cronflow-actors --url URL inspect RUN`` (as kubectl or temporal take it) was refused:
    the URL taken for the command's name (newcomer h25 F8)."""
    from cronflow_actors.cli.main import main

    for argv in (["--url", "http://127.0.0.1:9", "runs"], ["--url=http://127.0.0.1:9", "runs"]):
        assert main(argv) == 4  # it asked that server: nobody listens there
        assert "cannot reach the server at http://127.0.0.1:9" in capsys.readouterr().err


def test_a_run_id_that_begins_with_a_dash_is_told_to_go_after_two_dashes(tmp_path: Path) -> None:
    """``POST /runs`` takes the id ``-x``; ``inspect -x`` read it as an option and said only
    that RUN_ID is required (hostile h42 F7)."""
    dashed = cli("inspect", "-x")
    assert dashed.returncode == 2
    assert "goes after '--'" in dashed.stderr
    db = tmp_path / "none.db"
    after = cli("inspect", "--db", str(db), "--", "-x")
    assert "goes after" not in after.stderr  # read as the run's id: the database is named
    assert str(db) in after.stderr


def test_an_app_the_config_file_names_is_read_from_its_folder_and_refused_naming_it(
    tmp_path: Path,
) -> None:
    """A wrong ``app`` in the file was refused as "setting 'APP'", naming neither the file nor
    where it was looked for (devx h43 F12)."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "serve.toml").write_text('app = "refunds.py"\ndb = "data.db"\nport = 18791\n')
    (tmp_path / "elsewhere").mkdir()
    refused = cli("serve", "--config", "../etc/serve.toml", cwd=tmp_path / "elsewhere")
    assert refused.returncode == 2
    assert (
        "setting 'app' has the value '../etc/refunds.py'; expected an existing Python file or "
        "module:attribute (it came from ../etc/serve.toml)"
    ) in refused.stderr
    assert not (tmp_path / "elsewhere" / "data.db").exists()
