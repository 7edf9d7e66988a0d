"""``cronflow-actors migrate RUN_ID --to VERSION``: migrate a running instance (a net
workflow's root, or a flow's run) of a running server to another version of its workflow
(``POST /workflows/{id}/migrate``); prints the new root's id, the one it replaced and the
version, as JSON. Asking again answers the same id."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

__all__ = ["add_migrate_command"]


def add_migrate_command(
    commands: Any,
    client: Callable[[argparse.Namespace], Any],
    client_options: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the command to ``commands``; ``client(args)`` makes the server's client and
    ``client_options(parser)`` adds ``--url``, ``--token`` and ``--config``."""

    def migrate(args: argparse.Namespace) -> int:
        body = {"to_version": args.to}
        print(json.dumps(client(args).call("POST", f"/workflows/{args.run_id}/migrate", body)))
        return 0

    parser = commands.add_parser(
        "migrate", help="migrate a running instance to another version of its workflow"
    )
    parser.add_argument("run_id", help="the run (root instance) to migrate")
    parser.add_argument("--to", required=True, metavar="VERSION", help="the target version")
    client_options(parser)
    parser.set_defaults(handler=migrate)
