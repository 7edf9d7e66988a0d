"""The read commands with ``--db``: they read the database itself, beside a running ``serve``
and after it was killed, answer what the server answers, and refuse a path that is not a
database of this version without creating or changing anything."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path
from typing import Any

from tests.serving import Served, serving
from tests.test_cli_client import cli as cli_with_token

APP = "tests.console.console_app:workflows"


def cli(*args: str, served: Served | None = None) -> subprocess.CompletedProcess[str]:
    return cli_with_token(*args, served=served, token=None)  # this serve asks for no token


def _json(*args: str, served: Served | None = None) -> Any:
    result = cli(*args, "--json", served=served)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _stored(answer: Any) -> Any:
    """An answer without the flows' display names, which only their code has (a read of the
    database alone has none: null)."""
    if isinstance(answer, dict):
        return {k: _stored(v) for k, v in answer.items() if k != "workflow_name"}
    if isinstance(answer, list):
        return [_stored(v) for v in answer]
    return answer


def test_reads_of_the_database_beside_serve_and_after_it_was_killed(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    with serving(APP, Path(db)) as served:
        done = cli("run", "greet", "--payload", '{"name": "ada"}', "--json", served=served)
        greeted = json.loads(done.stdout)["run_id"]
        held = cli("run", "hold", "--no-wait", served=served).stdout.strip()
        # beside the running server: the same answers, read from the file
        offline, online = _json("runs", "--db", db), _json("runs", served=served)
        assert [run["workflow_name"] for run in offline["runs"]] == [None, None]
        assert _stored(offline) == _stored(online)
        offline = _json("inspect", greeted, "--db", db)
        assert _stored(offline) == _stored(_json("inspect", greeted, served=served))
        assert [step["id"] for step in offline["steps"]] == ["hello", "both", "done"]
        assert _json("paused", "--db", db) == _json("paused", served=served)
        assert _json("trace", greeted, "--db", db) == _json("trace", greeted, served=served)
        served.process.kill()  # a crash: what was in flight is what an operator wants to see
        served.process.wait()
        crashed = _digest(Path(db)), _digest(Path(f"{db}-wal"))
        table = cli("runs", "--db", db)
        assert table.returncode == 0, table.stderr
        assert re.search(rf"{held}\s+hold\s+waiting", table.stdout)
        assert re.search(rf"{greeted}\s+greet\s+completed", table.stdout)
        inspected = cli("inspect", held, "--db", db)
        assert inspected.returncode == 0, inspected.stderr
        [pause] = _json("paused", "--db", db)["paused"]
        assert pause["run_id"] == held
        assert _json("paused", "--run", held, "--db", db)["paused"] == [pause]
        assert _json("paused", "--run", greeted, "--db", db)["paused"] == []
        assert f"cronflow-actors resume {pause['token']}" in inspected.stdout
        traced = cli("trace", greeted, "--db", db)
        assert traced.returncode == 0
        assert traced.stdout.startswith(f"trace {greeted} (")
        missing = cli("inspect", "no-such-run", "--db", db)
        assert missing.returncode == 3
        assert f"no run 'no-such-run' in the database {db}" in missing.stderr
        page = cli("runs", "--db", db, "--limit", "1")
        assert f"--db {db}" in page.stderr  # the next page's command reads the same file
        # without --db the commands still ask a server, and say there is none
        assert cli("runs", served=served).returncode == 4
        # the reads wrote nothing: no checkpoint moved the crashed owner's log into the file
        assert (_digest(Path(db)), _digest(Path(f"{db}-wal"))) == crashed


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_path_that_is_no_database_of_this_version_is_refused_unchanged(
    tmp_path: Path,
) -> None:
    nowhere = tmp_path / "typo.db"
    refused = cli("runs", "--db", str(nowhere))
    assert refused.returncode == 2
    assert "the path of an existing database file" in refused.stderr
    assert not nowhere.exists()  # a mistaken path is not created
    for command in (["runs"], ["inspect", "r1"], ["paused"]):  # DB unset in --db "$DB"
        empty = cli(*command, "--db", "")  # (it asked the server at the default URL: h41 F8)
        assert empty.returncode == 2, (command, empty.stderr)
        assert "setting '--db' has the value ''" in empty.stderr
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n")
    refused = cli("inspect", "r1", "--db", str(notes))
    assert refused.returncode == 2
    assert "a cronflow-actors database" in refused.stderr
    assert notes.read_text() == "not a database\n"
    # a database an older version wrote: refused, named how to upgrade, and left as it was
    old = tmp_path / "old.db"
    assert cli("db", "migrate", "--create", "--db", str(old)).returncode == 0
    with closing(sqlite3.connect(old)) as connection, connection:
        latest = connection.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        connection.execute("DELETE FROM schema_version WHERE version = ?", (latest,))
    assert not Path(f"{old}-wal").exists()
    before = _digest(old)
    refused = cli("paused", "--db", str(old))
    assert refused.returncode == 2
    assert f"at {latest - 1}" in refused.stderr
    assert f"cronflow-actors db migrate --db {old}" in refused.stderr
    assert _digest(old) == before
    wal = Path(f"{old}-wal")  # SQLite may open an empty log beside a file it reads
    assert not wal.exists() or wal.stat().st_size == 0


def test_the_database_line_of_serve_names_no_password() -> None:
    from cronflow_actors.runtime.database import describe, store_for

    said = describe(store_for("postgresql://app:pa55word@db.internal:5432/cronflow"))
    assert said is not None
    assert "pa55word" not in said
    assert "db.internal:5432/cronflow" in said
    assert describe(store_for(":memory:")) is None


def test_a_backup_beside_serve_holds_what_the_log_held_and_restores(tmp_path: Path) -> None:
    """A copy of the file alone misses the commits still in its write-ahead log (the
    newcomer's h25 F1). ``db backup`` copies the database as of one commit while serve runs,
    without the live runtime's lease, so a serve on the restored copy starts at once and has
    every run the server had acknowledged."""
    db, copy = tmp_path / "live.db", tmp_path / "copy.db"
    with serving(APP, db) as served:
        held = [cli("run", "hold", "--no-wait", served=served).stdout.strip() for _ in range(3)]
        done = cli("db", "backup", "--db", str(db), str(copy))
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"backed up {db} to {copy}: 3 run(s),")
        again = cli("db", "backup", "--db", str(db), str(copy))
        assert again.returncode != 0
        assert "(a backup never writes over a file); nothing was written" in again.stderr
        assert f"argument 'FILE' has the value '{copy}'" in again.stderr  # (no "setting")
    with closing(sqlite3.connect(copy)) as restored:
        assert restored.execute("SELECT COUNT(*) FROM leases").fetchone() == (0,)
        assert restored.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    with serving(APP, copy) as served:  # no lease to wait for: it starts as a fresh owner
        listed = {run["id"]: run["status"] for run in _json("runs", served=served)["runs"]}
        assert listed == dict.fromkeys(held, "waiting")
    refused = cli("db", "backup", "--db", "postgresql://u@127.0.0.1/x", str(tmp_path / "p"))
    assert "back a PostgreSQL database up with pg_dump" in refused.stderr


def test_a_backup_is_no_more_readable_than_its_database(tmp_path: Path) -> None:
    """It holds every resume token and payload, and was 0644 whatever the source's mode."""
    source = tmp_path / "locked.db"
    assert cli("db", "migrate", "--create", "--db", str(source)).returncode == 0
    for mode in (0o600, 0o640, 0o400):  # (0o400: written before it is made read-only)
        source.chmod(mode)
        copy = tmp_path / f"copy-{mode:o}.db"
        assert cli("db", "backup", "--db", str(source), str(copy)).returncode == 0
        assert copy.stat().st_mode & 0o777 == mode


def test_two_backups_to_one_target_at_once_leave_one_whole_copy(tmp_path: Path) -> None:
    """They shared one partial file, each deleting the other's: a traceback, sometimes both
    and no backup (ops h41 F7). One wins; the other is refused, having written nothing."""
    import concurrent.futures

    source, target = tmp_path / "r.db", tmp_path / "race.db"
    assert cli("db", "migrate", "--create", "--db", str(source)).returncode == 0
    for _ in range(3):
        target.unlink(missing_ok=True)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            both = list(
                pool.map(lambda _: cli("db", "backup", "--db", str(source), str(target)), "ab")
            )
        assert sorted(r.returncode for r in both) == [0, 2], [r.stderr for r in both]
        assert "a backup never writes over a file" in "".join(r.stderr for r in both)
        with closing(sqlite3.connect(target)) as copy:
            assert copy.execute("PRAGMA quick_check").fetchone() == ("ok",)
        # no partial copy left (the source's own -wal and -shm may stay: two readers that
        # close at once each find the other there, and neither removes them)
        left = {p.name for p in tmp_path.iterdir()} - {"r.db-wal", "r.db-shm"}
        assert sorted(left) == ["r.db", "race.db"]


def test_a_backup_that_cannot_be_read_or_written_is_one_clear_line(tmp_path: Path) -> None:
    """A source that is no SQLite file, or a target the account cannot write (or a full disk),
    was a Python traceback and exit 1 (ops h41 F1); the partial copy is gone either way."""
    source, not_sqlite = tmp_path / "r.db", tmp_path / "notes.txt"
    assert cli("db", "migrate", "--create", "--db", str(source)).returncode == 0
    not_sqlite.write_text("hello")
    unread = cli("db", "backup", "--db", str(not_sqlite), str(tmp_path / "x.db"))
    assert unread.returncode == 2
    assert "expected a cronflow-actors database (SQLite says: file is not a database)" in (
        unread.stderr
    )
    unwritable = cli("db", "backup", "--db", str(source), "/proc/backup.db")
    assert unwritable.returncode == 2
    assert "argument 'FILE' has the value '/proc/backup.db'; expected a path this account" in (
        unwritable.stderr
    )
    assert "nothing was written" in unwritable.stderr
    assert "Traceback" not in unread.stderr + unwritable.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "r.db"]
