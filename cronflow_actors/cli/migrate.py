"""``cronflow-actors migrate RUN_ID --to VERSION``: migrate a running instance (a net
workflow's root, or a flow's run) of a running server to another version of its workflow
(``POST /workflows/{id}/migrate``). Prints the new root's id (``--json``: the server's answer,
``{workflow_id, migrated_from, version}``); asking again answers the same id. A refusal (an
ended run, an unknown version, no route of migrations) exits 3 with the server's reason."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cronflow_actors.cli.commands import _client, _client_options, _path
from cronflow_actors.cli.exits import Exit

__all__ = ["add_migrate_command"]


def _migrate(args: argparse.Namespace) -> int:
    body = {"to_version": args.to}
    path = f"/workflows/{_path(args.run_id)}/migrate"
    answer = _client(args).call("POST", path, body, expect=("version", "workflow_id"))
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        print(f"migrated {args.run_id} to {answer['version']}: now {answer['workflow_id']}")
    return Exit.OK


def add_migrate_command(commands: Any) -> None:
    """Add ``migrate`` to the ``cronflow-actors`` subcommands."""
    parser = commands.add_parser(
        "migrate", help="migrate a running instance to another version of its workflow"
    )
    parser.add_argument("run_id", metavar="RUN_ID", help="the run (root instance) to migrate")
    parser.add_argument("--to", required=True, metavar="VERSION", help="the target version")
    _client_options(parser, json_help="print the server's answer as JSON")
    parser.set_defaults(handler=_migrate)
