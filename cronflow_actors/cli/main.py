"""``cronflow-actors COMMAND``: a thin edge over the runtime layer.

Commands: ``serve``, the client commands ``run``, ``inspect``, ``runs``, ``paused``,
``events publish`` (they call a running server: ``commands.py``), ``resume`` (``resume.py``),
``cancel`` (``cancel.py``), ``migrate`` (a running instance to another version:
``migrate.py``), ``replay`` (a run again, with its recorded trigger: ``replay.py``),
``db migrate``, ``db prune`` and ``version`` (also ``--version``). Settings come from flags,
``CRONFLOW_*`` variables and a TOML ``--config`` file. Exit codes are in ``exits.py``: 0 ok,
1 run failed, 2 usage, 3 not found or conflict, 4 server unreachable, 5 a run started and
only waiting for it failed. Heavy modules are
imported inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from cronflow_actors.cli.bench import add_bench_command
from cronflow_actors.cli.cancel import add_cancel_command
from cronflow_actors.cli.commands import add_client_commands
from cronflow_actors.cli.exits import Exit
from cronflow_actors.cli.flows import (
    add_fire_command,
    add_flows_command,
    add_schedule_commands,
)
from cronflow_actors.cli.migrate import add_migrate_command
from cronflow_actors.cli.net import add_net_command
from cronflow_actors.cli.replay import add_replay_command
from cronflow_actors.cli.resume import add_resume_command
from cronflow_actors.errors import (
    ApiError,
    ConfigurationError,
    CronflowError,
    LeaseHeldError,
    StoreFailedError,
)

__all__ = ["main"]


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cronflow-actors")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0.0.0+unknown"


def _version(_args: argparse.Namespace) -> int:
    print(f"cronflow-actors {_installed_version()}")
    return 0


def _said_by_the_command(record: logging.LogRecord) -> bool:
    """False for the store's log line of its own failure (the command reports it)."""
    return not (
        isinstance(record.args, tuple)
        and record.args
        and isinstance(record.args[0], StoreFailedError)
    )


# The package's warnings reach stderr as logging's last resort would print them (no logging is
# set up for the db commands), but for the store's line of its own failure: the command says
# that in its own words, and it would be said twice.
_WARNINGS = logging.StreamHandler()
_WARNINGS.setLevel(logging.WARNING)
_WARNINGS.addFilter(_said_by_the_command)


def _database(args: argparse.Namespace, *names: str) -> Any:
    """The settings of a ``db`` command: its flags, then ``CRONFLOW_*`` variables, then its
    ``--config`` file, as ``serve`` reads them (``CRONFLOW_DB`` names the database both use)."""
    from cronflow_actors.runtime.config import load_config

    logging.getLogger("cronflow_actors").addHandler(_WARNINGS)  # once: a handler is added once
    overrides = {name: getattr(args, name) for name in ("db", *names)}
    return load_config(args.config, overrides=overrides)


def _named_by(args: argparse.Namespace) -> str:
    """Which of the settings' sources gave the database's name, as ``load_config`` reads them."""
    if args.db is not None:
        return "--db"
    if "CRONFLOW_DB" in os.environ:
        return "CRONFLOW_DB"
    if args.config is not None:
        return f"db in --config {args.config}"
    return "db, by default (name one with --db, CRONFLOW_DB or --config)"


def _db_migrate(args: argparse.Namespace) -> int:
    from cronflow_actors.runtime.database import file_path, migrate_database

    settings = _database(args, "synchronous")
    db = settings.db
    local = db != ":memory:" and "://" not in db
    if not args.create and local and not file_path(db, _named_by(args)).exists():
        # a typo would be a new empty database, said to be migrated (the real one untouched)
        raise ConfigurationError(
            _named_by(args),
            db,
            "the path of an existing database file; nothing was created (pass --create to "
            "make a new one: serve creates its database too)",
        )

    def say(held: LeaseHeldError) -> None:
        print(f"cronflow-actors: {held}; waiting", file=sys.stderr)

    said = migrate_database(
        settings.db, synchronous=settings.synchronous, say=say if args.wait_for_lease else None
    )
    print(asyncio.run(said))
    return 0


def _db_prune(args: argparse.Namespace) -> int:
    import time

    from cronflow_actors.cli.render import when
    from cronflow_actors.runtime import open_store
    from cronflow_actors.runtime.config import UNIT_EXAMPLES, deletion_age
    from cronflow_actors.runtime.database import file_path
    from cronflow_actors.runtime.pruning import prune_finished

    try:  # a bare "7" would mean 7 seconds: refused, as it deletes (runtime/config.py)
        older_than = deletion_age(args.older_than, "--older-than")
    except ValueError:
        raise ConfigurationError(
            "--older-than",
            args.older_than,
            f"a duration with its unit, such as {UNIT_EXAMPLES} (or 0: every finished run); "
            "a bare number is refused, since finished runs older than it are deleted; nothing "
            "was deleted",
        ) from None
    db = _database(args).db
    if db != ":memory:" and "://" not in db and not file_path(db, _named_by(args)).is_file():
        raise ConfigurationError(
            _named_by(args), db, "the path of an existing database file; nothing was deleted"
        )
    cutoff = time.time() - older_than
    if cutoff < 0:  # before 1970: its date cannot even be written (a traceback: ops h41 F4)
        raise ConfigurationError(
            "--older-than",
            args.older_than,
            "an age since 1970 at most: no run finished before then; nothing was deleted",
        )

    pages: list[int] = []  # (counted as each is committed: a lock met later leaves them)

    async def prune() -> None:
        store = await open_store(db)
        try:
            await prune_finished(
                store, finished_before=cutoff, now=time.time(), on_page=pages.append
            )
        finally:
            await store.close()

    try:
        asyncio.run(prune())
    except StoreFailedError as failed:
        if "database is locked" not in failed.reason:
            raise
        raise ApiError(  # no runtime of ours failed: someone else writes there now
            f"another process holds a write lock on {db} (a serve writing, or another tool), "
            f"so the prune stopped after {sum(pages)} run(s) (each batch is all or nothing); "
            "run it again once the lock is released",
            exit_code=Exit.UNREACHABLE,
        ) from None
    given = "".join(args.older_than.split())  # as given ("0d" read "0s"), a bare 0 as 0s
    age = "0s" if given.replace(".", "").isdigit() else given
    total = sum(pages)
    runs = "run" if total == 1 else "runs"
    print(f"pruned {total} finished {runs} older than {age} (finished before {when(cutoff)})")
    return 0


def _db_backup(args: argparse.Namespace) -> int:
    from cronflow_actors.cli.backup import backup

    print(backup(_database(args).db, args.file, _named_by(args)))
    return 0


def _settings(args: argparse.Namespace) -> Any:
    from cronflow_actors.runtime.config import load_config

    names = ["app", "db", "host", "port", "synchronous", "max_body", "drain_timeout"]
    names += ["lease_seconds", "wait_for_lease", "log_level", "log_format", "url", "token"]
    names += ["max_json_depth", "header_timeout", "body_timeout", "send_timeout", "keep_alive"]
    names += ["max_connections", "retention", "metrics_token", "metrics_port", "allowed_hosts"]
    names += ["otel_endpoint", "audit", "gc_threshold", "loop", "max_active_runs"]
    overrides = {name: getattr(args, name, None) for name in names}
    overrides["queues"] = _queues(getattr(args, "queue", None) or [])
    return load_config(getattr(args, "config", None), overrides=overrides)


def _queues(given: list[str]) -> dict[str, int] | None:
    """``--queue emails=5`` flags as a dict (None when there are none)."""
    queues: dict[str, int] = {}
    for entry in given:
        name, _, limit = entry.partition("=")
        if not name or not limit.strip().isdigit() or int(limit) < 1:
            raise ConfigurationError("--queue", entry, "NAME=N with N a whole number >= 1")
        queues[name.strip()] = int(limit)
    return queues or None


def _serve(args: argparse.Namespace) -> int:
    from cronflow_actors.cli.serve import serve

    settings = _settings(args)
    try:
        return serve(settings, process_ends=True)
    except ConfigurationError as refused:  # say where an app the file named came from (F12)
        named = args.app is None and "CRONFLOW_APP" not in os.environ and settings.app
        if type(refused) is not ConfigurationError or refused.setting != "APP" or not named:
            raise
        raise ConfigurationError(
            "app", refused.value, f"{refused.expected} (it came from {args.config})"
        ) from None


def _database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=None,
        help="SQLite file or postgresql:// URL (default: CRONFLOW_DB, the --config file's db, "
        "else cronflow.db: the database serve would use)",
    )
    parser.add_argument("--config", default=None, help="TOML settings file (db, synchronous)")


def _add_db_commands(commands: Any) -> None:
    """``db migrate``, ``db prune`` and ``db backup``."""
    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", metavar="DB_COMMAND", required=True)
    migrate = db_commands.add_parser(
        "migrate", help="apply pending schema migrations to a database file (--create: a new one)"
    )
    _database_options(migrate)
    migrate.add_argument(
        "--create",
        action="store_true",
        help="create the database file when there is none (else a missing file is refused)",
    )
    migrate.add_argument(
        "--synchronous",
        default=None,
        help="SQLite synchronous level: OFF, NORMAL, FULL (default) or EXTRA",
    )
    migrate.add_argument(
        "--wait-for-lease",
        action="store_true",
        help="wait for a runtime of the version that wrote the database to stop, then upgrade "
        "it (else its lease refuses the upgrade)",
    )
    migrate.set_defaults(handler=_db_migrate)
    prune = db_commands.add_parser(
        "prune", help="delete finished runs (and their history) older than a duration"
    )
    _database_options(prune)
    prune.add_argument(
        "--older-than",
        required=True,
        help="a duration with its unit: 7d, 12h, 30m, 90s (a bare number is refused; 0 deletes "
        "every finished run, where --retention 0 keeps them all)",
    )
    prune.set_defaults(handler=_db_prune)
    backup = db_commands.add_parser(
        "backup", help="copy a SQLite database consistently, while serve runs on it too"
    )
    _database_options(backup)
    backup.add_argument("file", metavar="FILE", help="the copy to write (a path not taken)")
    backup.set_defaults(handler=_db_backup)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        if "arguments are required" in message:  # ``inspect -x``: "-x" read as an option
            message += "; a value that begins with '-' (an id, a token: '-x') goes after '--'"
        super().error(message)  # (said so since hostile h42 F7)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cronflow-actors",
        description="A durable workflow runtime for Python, built as an actor system on asyncio.",
        epilog="Exit codes: 0 ok; 1 the run failed or was canceled (run, fire, replay); 2 bad "
        "usage, settings or token; 3 not found or conflict; 4 server unreachable or "
        "unavailable; 5 a run started, only waiting for its end failed or --timeout came "
        "(never start it again); 6 the server failed on the request (its log says why). While "
        "'serve' runs, its web console is at /ui of its address (http://127.0.0.1:8000/ui).",
    )
    parser.add_argument(
        "--version", action="version", version=f"cronflow-actors {_installed_version()}"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    version = commands.add_parser("version", help="print the installed version")
    version.set_defaults(handler=_version)

    _add_db_commands(commands)

    serve = commands.add_parser("serve", help="run the runtime behind HTTP until SIGTERM/SIGINT")
    serve.add_argument("app", nargs="?", default=None, help="module:attribute or a .py file")
    serve.add_argument("--config", default=None, help="TOML settings file")
    serve.add_argument(
        "--db",
        default=None,
        help="SQLite file (default cronflow.db), or postgresql://user@host:port/dbname: a "
        "database several serve processes share",
    )
    serve.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000; 0: any)")
    serve.add_argument("--synchronous", default=None, help="SQLite synchronous level")
    serve.add_argument("--max-body", type=int, default=None, help="largest request body")
    serve.add_argument("--drain-timeout", type=float, default=None, help="seconds to drain")
    serve.add_argument(
        "--lease-seconds",
        type=float,
        default=None,
        help="how long this runtime's hold on the database outlives it after a crash (default 5)",
    )
    serve.add_argument(
        "--wait-for-lease",
        action="store_true",
        default=None,
        help="if another runtime owns the database, wait for its lease to expire",
    )
    serve.add_argument("--max-json-depth", type=int, default=None, help="deepest JSON (64)")
    serve.add_argument(
        "--header-timeout", type=float, default=None, help="seconds to send headers (10)"
    )
    serve.add_argument(
        "--body-timeout", type=float, default=None, help="seconds to send a body (30)"
    )
    serve.add_argument(
        "--send-timeout",
        type=float,
        default=None,
        help="seconds an answer may wait unread before its connection is dropped (30)",
    )
    serve.add_argument("--keep-alive", type=float, default=None, help="idle keep-alive seconds (5)")
    serve.add_argument(
        "--max-connections", type=int, default=None, help="connections at once (1000)"
    )
    serve.add_argument(
        "--retention",
        default=None,
        help="prune finished runs older than this, with its unit (30d, 12h; 0: never)",
    )
    serve.add_argument("--metrics-token", default=None, help="bearer token /metrics requires")
    serve.add_argument(
        "--allowed-host",
        dest="allowed_hosts",
        action="append",
        default=None,
        metavar="NAME",
        help="a host name the server answers to besides localhost (repeat; '*': any)",
    )
    serve.add_argument(
        "--metrics-port", type=int, default=None, help="serve /metrics on this port instead"
    )
    serve.add_argument(
        "--queue",
        action="append",
        default=None,
        metavar="NAME=N",
        help="a named queue's concurrency (repeat for more; adds to [queues] of --config)",
    )
    serve.add_argument(
        "--otel-endpoint",
        default=None,
        metavar="URL",
        help="export spans over OTLP/HTTP to this collector (in the cronflow-actors checkout: "
        "pip install -e '.[otel]')",
    )
    serve.add_argument(
        "--no-audit",
        dest="audit",
        action="store_false",
        default=None,
        help="record no audit trail (runs' traces and past states)",
    )
    serve.add_argument(
        "--gc-threshold",
        type=int,
        default=None,
        metavar="N",
        help="collect garbage after N more objects (default 20000; 0: Python's own, 700)",
    )
    serve.add_argument(
        "--max-active-runs",
        type=int,
        default=None,
        metavar="N",
        help="start a new run only while fewer than N runs are in memory; the others wait in "
        "line (default: no limit)",
    )
    serve.add_argument(
        "--loop",
        default=None,
        help="the event loop: auto (uvloop if installed, the default), asyncio or uvloop",
    )
    serve.add_argument("--log-level", default=None, help="critical, error, warning, info, debug")
    serve.add_argument("--log-format", default=None, help="text or json")
    serve.set_defaults(handler=_serve)
    for add_commands in (
        add_client_commands,
        add_resume_command,
        add_cancel_command,
        add_flows_command,
        add_fire_command,
        add_schedule_commands,
        add_replay_command,
        add_migrate_command,
        add_net_command,
        add_bench_command,
    ):
        add_commands(commands)
    return parser


def _refuse_unknown(
    parser: argparse.ArgumentParser, args: argparse.Namespace, unknown: list[str]
) -> None:
    """Arguments the command does not take: said with the command's own usage, and the option
    it most likely meant (``serve --prot`` is ``--port``), where argparse shows the top level's."""
    command = parser
    for name in ("command", "db_command", "events_command"):
        chosen = getattr(args, name, None)
        sub = _subcommands(command).get(chosen) if chosen else None
        if sub is not None:
            command = sub
    options = [o for action in command._actions for o in action.option_strings]
    flag = next((u.split("=", 1)[0] for u in unknown if u.startswith("--")), None)
    close = difflib.get_close_matches(flag, options, n=1) if flag else []
    hint = f"; did you mean {close[0]}?" if close else ""
    command.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


_SERVER_OPTIONS = ("--url", "--token")


def _server_options_last(argv: list[str]) -> list[str]:
    """``--url URL`` and ``--token TOKEN`` given before the command (``cronflow-actors --url U
    inspect RUN``, as kubectl or temporal take them) moved after it, where every client command
    reads them: argparse took the URL for the command's name (newcomer h25 F8)."""
    front: list[str] = []
    while argv and argv[0].split("=", 1)[0] in _SERVER_OPTIONS:
        takes = 1 if "=" in argv[0] else 2
        front += argv[:takes]
        argv = argv[takes:]
    return argv + front


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code (``exits.py``)."""
    parser = build_parser()
    given = list(sys.argv[1:] if argv is None else argv)
    if not given:  # no command: what there is, not an error
        parser.print_help(sys.stderr)
        return int(Exit.USAGE)
    args, unknown = parser.parse_known_args(_server_options_last(given))
    if unknown:
        _refuse_unknown(parser, args, unknown)  # exits 2, as argparse does
    try:
        code: int = args.handler(args)
    except ApiError as refused:
        print(f"cronflow-actors: error: {refused}", file=sys.stderr)
        return int(refused.exit_code)
    except CronflowError as error:
        print(f"cronflow-actors: error: {error}", file=sys.stderr)
        return int(Exit.USAGE)
    except KeyboardInterrupt:  # Ctrl-C as db prune waits its turn: a traceback (retest h45 N4)
        print("\ncronflow-actors: stopped (Ctrl-C); what was done is kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # read by `head` or the like, which stopped reading: not an error
        # what is still buffered for stdout would fail again as Python exits
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(Exit.OK)
    return int(code)
