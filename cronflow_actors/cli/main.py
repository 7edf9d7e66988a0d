"""``cronflow-actors COMMAND``: a thin edge over the runtime layer.

Commands so far: ``version``, ``db migrate`` and ``serve``. Heavy modules are imported inside
the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from cronflow_actors.errors import CronflowError

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


def _serve(args: argparse.Namespace) -> int:
    from cronflow_actors.cli.serve import DEFAULT_APP, serve

    if args.app is None:
        args.app = DEFAULT_APP
    return serve(args)


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
    migrate.add_argument("--db", default="cronflow.db", help="SQLite file (default cronflow.db)")
    migrate.add_argument(
        "--synchronous",
        default="FULL",
        help="SQLite synchronous level: OFF, NORMAL, FULL (default) or EXTRA",
    )
    migrate.set_defaults(handler=_db_migrate)

    serve = commands.add_parser("serve", help="run the runtime behind HTTP until SIGTERM/SIGINT")
    serve.add_argument("app", nargs="?", default=None, help="module:attribute or a .py file")
    serve.add_argument("--db", default="cronflow.db", help="SQLite file (default cronflow.db)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (0: any free)")
    serve.add_argument("--synchronous", default="FULL", help="SQLite synchronous level")
    serve.add_argument("--max-body", type=int, default=1_000_000, help="largest request body")
    serve.add_argument("--drain-timeout", type=float, default=30.0, help="seconds to drain")
    serve.add_argument("--log-level", default="info", help="uvicorn log level")
    serve.set_defaults(handler=_serve)
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
