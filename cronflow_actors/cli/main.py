"""``cronflow-actors COMMAND``: a thin edge over the runtime layer.

Commands: ``serve``, the client commands ``run``, ``inspect``, ``runs``, ``resume``, ``cancel``,
``events publish`` (they call a running server), ``db migrate`` and ``version``. Settings come
from flags, ``CRONFLOW_*`` variables and a TOML ``--config`` file. Heavy modules are imported
inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cronflow_actors.cli.bench import add_bench_command
from cronflow_actors.errors import ConfigurationError, CronflowError

__all__ = ["main"]


def _version(_args: argparse.Namespace) -> int:
    from importlib.metadata import version

    print(f"cronflow-actors {version('cronflow-actors')}")
    return 0


def _db_migrate(args: argparse.Namespace) -> int:
    from cronflow_actors.runtime import open_store

    async def migrate() -> str:
        store = await open_store(args.db, synchronous=args.synchronous)
        try:
            schema = getattr(store, "schema_version", None)
            version = await schema() if schema is not None else "n/a (in memory)"
            return f"database {args.db} is at schema version {version}"
        finally:
            await store.close()

    print(asyncio.run(migrate()))
    return 0


def _db_prune(args: argparse.Namespace) -> int:
    import time

    from cronflow_actors.runtime import open_store, parse_duration

    try:
        older_than = parse_duration(args.older_than, "--older-than")
    except ValueError as error:
        raise ConfigurationError("--older-than", args.older_than, str(error)) from None
    if args.db != ":memory:" and "://" not in args.db and not Path(args.db).is_file():
        raise ConfigurationError("--db", args.db, "the path of an existing database file")

    async def prune() -> int:
        store = await open_store(args.db)
        try:
            total = 0
            cutoff = time.time() - older_than
            while (pruned := await store.prune(finished_before=cutoff, limit=1000)) > 0:
                total += pruned
            await store.kv_purge_expired(time.time())
            return total
        finally:
            await store.close()

    print(f"pruned {asyncio.run(prune())} finished runs older than {args.older_than}")
    return 0


def _settings(args: argparse.Namespace) -> Any:
    from cronflow_actors.runtime.config import load_config

    names = ["app", "db", "host", "port", "synchronous", "max_body", "drain_timeout"]
    names += ["lease_seconds", "wait_for_lease", "log_level", "log_format", "url", "token"]
    names += ["max_json_depth", "header_timeout", "body_timeout", "keep_alive"]
    names += ["max_connections", "retention", "metrics_token", "metrics_port"]
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

    return serve(_settings(args))


def _client(args: argparse.Namespace) -> Any:
    from cronflow_actors.cli.client import Client

    settings = _settings(args)
    return Client(settings.url, settings.token)


def _payload(args: argparse.Namespace) -> Any:
    if args.payload is None:
        return None
    try:
        return json.loads(args.payload)
    except ValueError as error:
        raise ConfigurationError("--payload", args.payload, f"JSON ({error})") from None


def _run(args: argparse.Namespace) -> int:
    client = _client(args)
    started = client.call("POST", "/runs", {"workflow": args.workflow, "payload": _payload(args)})
    run = client.wait(started["run_id"])
    print(json.dumps({k: run[k] for k in ("id", "status", "output", "error")}, indent=2))
    return 0 if run["status"] == "completed" else 1


def _inspect(args: argparse.Namespace) -> int:
    from cronflow_actors.cli.client import render_run

    print(render_run(_client(args).call("GET", f"/runs/{args.run_id}")))
    return 0


def _runs(args: argparse.Namespace) -> int:
    query = {"workflow": args.workflow, "status": args.status, "limit": args.limit}
    for run in _client(args).call("GET", "/runs", query=query)["runs"]:
        print(f"{run['id']}  {run['workflow']:<20} {run['status']:<10} {run['created_at']:.0f}")
    return 0


def _resume(args: argparse.Namespace) -> int:
    print(json.dumps(_client(args).call("POST", f"/resume/{args.token_id}", _payload(args))))
    return 0


def _cancel(args: argparse.Namespace) -> int:
    print(json.dumps(_client(args).call("POST", f"/runs/{args.run_id}/cancel")))
    return 0


def _publish(args: argparse.Namespace) -> int:
    print(json.dumps(_client(args).call("POST", f"/events/{args.name}", _payload(args))))
    return 0


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="the server (default http://127.0.0.1:8000)")
    parser.add_argument("--token", default=None, help="bearer token for the server")
    parser.add_argument("--config", default=None, help="TOML settings file")


def _add_client_commands(commands: Any) -> None:
    run = commands.add_parser("run", help="trigger a workflow, wait, print the result")
    run.add_argument("workflow")
    run.add_argument("--payload", default=None, help="JSON payload")
    run.set_defaults(handler=_run)
    inspect = commands.add_parser("inspect", help="a readable tree of a run")
    inspect.add_argument("run_id")
    inspect.set_defaults(handler=_inspect)
    runs = commands.add_parser("runs", help="list recent runs")
    runs.add_argument("--workflow", default=None)
    runs.add_argument("--status", default=None)
    runs.add_argument("--limit", type=int, default=50)
    runs.set_defaults(handler=_runs)
    resume = commands.add_parser("resume", help="resume a paused run")
    resume.add_argument("token_id", metavar="TOKEN")
    resume.add_argument("--payload", default=None, help="JSON payload")
    resume.set_defaults(handler=_resume)
    cancel = commands.add_parser("cancel", help="cancel a run")
    cancel.add_argument("run_id")
    cancel.set_defaults(handler=_cancel)
    events = commands.add_parser("events", help="events")
    event_commands = events.add_subparsers(
        dest="events_command", metavar="EVENTS_COMMAND", required=True
    )
    publish = event_commands.add_parser("publish", help="publish an event")
    publish.add_argument("name")
    publish.add_argument("--payload", default=None, help="JSON payload")
    publish.set_defaults(handler=_publish)
    for parser in (run, inspect, runs, resume, cancel, publish):
        _client_options(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cronflow-actors",
        description="A durable workflow runtime for Python, built as an actor system on asyncio.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    version = commands.add_parser("version", help="print the installed version")
    version.set_defaults(handler=_version)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", metavar="DB_COMMAND", required=True)
    migrate = db_commands.add_parser(
        "migrate", help="create the database file if needed and apply pending schema migrations"
    )
    migrate.add_argument(
        "--db", default="cronflow.db", help="SQLite file (default cronflow.db) or postgresql:// URL"
    )
    migrate.add_argument(
        "--synchronous",
        default="FULL",
        help="SQLite synchronous level: OFF, NORMAL, FULL (default) or EXTRA",
    )
    migrate.set_defaults(handler=_db_migrate)
    prune = db_commands.add_parser(
        "prune", help="delete finished runs (and their history) older than a duration"
    )
    prune.add_argument(
        "--db", default="cronflow.db", help="SQLite file (default cronflow.db) or postgresql:// URL"
    )
    prune.add_argument("--older-than", required=True, help="e.g. 7d, 12h, 30m")
    prune.set_defaults(handler=_db_prune)

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
    serve.add_argument("--keep-alive", type=float, default=None, help="idle keep-alive seconds (5)")
    serve.add_argument(
        "--max-connections", type=int, default=None, help="connections at once (1000)"
    )
    serve.add_argument(
        "--retention", default=None, help="prune finished runs older than this (30d; 0: never)"
    )
    serve.add_argument("--metrics-token", default=None, help="bearer token /metrics requires")
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
    serve.add_argument("--log-level", default=None, help="critical, error, warning, info, debug")
    serve.add_argument("--log-format", default=None, help="text or json")
    serve.set_defaults(handler=_serve)
    _add_client_commands(commands)
    add_bench_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code (2 for bad usage or settings)."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except CronflowError as error:
        print(f"cronflow-actors: error: {error}", file=sys.stderr)
        return 2
    return code
