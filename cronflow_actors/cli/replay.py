"""``cronflow-actors replay RUN_ID [--payload JSON] [--instance-id ID]``: start a new run of
a run's flow with the trigger it recorded (``POST /runs/{id}/replay``; ``--payload``: another
payload instead, JSON or ``@FILE``; ``--instance-id``: the new run's id, to replay once), and
wait for it to end as ``run`` does (``--no-wait``, ``--timeout``). The new run says which it
replays (``inspect``: "replay of"). ``--resume``: go on from where a failed or canceled run
stopped, the steps it completed kept with their outputs. A net workflow's instance is no
flow's run: refused (exit 3, the server's 409 ``not-replayable``)."""

from __future__ import annotations

import argparse
from typing import Any

from cronflow_actors.cli.commands import (
    _client,
    _path,
    add_instance_id_option,
    follow_options,
)
from cronflow_actors.cli.follow import follow
from cronflow_actors.cli.payload import add_payload_option, read_payload
from cronflow_actors.cli.starts import start_once

__all__ = ["add_replay_command"]


def _replay(args: argparse.Namespace) -> int:
    client = _client(args)
    body: dict[str, Any] = {} if args.payload is None else {"payload": read_payload(args.payload)}
    if args.resume:
        body["resume"] = True
    path = f"/runs/{_path(args.run_id)}/replay"
    what = "resume" if args.resume else "replay"  # (a resume is no replay: newcomer h32 F9)
    started = start_once(args, client, path, body, {"replay_of": args.run_id})
    # a run has one resume: asked again, the one started before (newcomer h34 F3: it said
    # "started resume", as if the run's steps ran again)
    if started.get("duplicate") and not started.get("asked_again"):  # (then its own)
        what = "resume started before (nothing new started):"
        return follow(args, client, started["run_id"], what=what, verb="found the")
    return follow(args, client, started["run_id"], what=what)


def add_replay_command(commands: Any) -> None:
    """Add ``replay`` to the ``cronflow-actors`` subcommands."""
    parser = commands.add_parser(
        "replay",
        help="run a run's flow again with the trigger it recorded, and wait for it to end",
        description="Start a new run of RUN_ID's flow with the payload (and headers) it was "
        "triggered with, or --payload instead, and wait for it to end (exit 0 when it "
        "completed, 1 when it failed or was canceled, 5 when it outlived --timeout).",
    )
    parser.add_argument("run_id", metavar="RUN_ID", help="the run to replay")
    add_payload_option(parser, "another payload, as JSON")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on from where a failed or canceled run stopped: the steps it completed keep "
        "their outputs and are not run again (its id is the run's own: no --instance-id)",
    )
    add_instance_id_option(parser, "the replay")
    follow_options(parser)
    parser.set_defaults(handler=_replay)
