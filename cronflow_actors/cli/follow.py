"""Following a run a command started (``run``, ``replay``, ``fire``): wait for its end, by long
polls of ``GET /runs/{id}?wait=`` (polls of a server from before them), telling of a pause it
waits in, and say how it ended."""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

from cronflow_actors.cli.client import Client
from cronflow_actors.cli.exits import Exit
from cronflow_actors.cli.render import (
    FINAL,
    duration,
    print_json,
    resume_command,
    run_duration,
    server_flags,
    short,
)
from cronflow_actors.errors import ApiError

__all__ = ["LONG_POLL", "follow"]

LONG_POLL = 20
"""The longest ``run`` waits for one answer once it told of the pause its run waits in (s)."""

OLD_SERVER = "has no query parameter wait"
"""What a server from before long polls answers a ``GET /runs/{id}?wait=``: ``run`` polls it."""


def follow(args: argparse.Namespace, client: Client, run_id: str, *, what: str = "run") -> int:
    """Print ``run_id`` (``--no-wait``), or wait for its end (``--timeout``) and say how it
    ended: exit 0 when it completed, 1 when not (``what``: "run", "replay", as it is told)."""
    if args.no_wait:
        if args.json:
            print_json({"run_id": run_id})
        else:
            print(run_id)
        return Exit.OK

    def say(text: str) -> None:  # progress for people, on stderr; --json prints only the result
        if not args.json:
            print(text, file=sys.stderr)

    say(f"started {what} {run_id}; waiting for it to end (Ctrl-C stops waiting, not the run)")
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    poll, told_pause, wait = 0.05, False, 0  # the first read at once: a pause to tell of
    long_polls = True
    try:
        while True:
            try:
                run = client.run(run_id, wait)
            except ApiError as refused:  # a server before long polls: "wait" is unknown there
                if not (wait and refused.slug == "invalid-argument" and OLD_SERVER in str(refused)):
                    raise
                run, wait, long_polls = client.run(run_id), 0, False
            if run["status"] in FINAL:
                break
            if run["status"] == "waiting" and not told_pause:
                pause = client.paused_run(run_id)
                if pause is not None:
                    told_pause = True
                    say(
                        f"run {run_id} is paused at step {pause['step']!r} for a person; "
                        "approve it from another shell (--reject: refuse it): "
                        f"{resume_command(pause['token'], server_flags(args))}; this command "
                        "waits on for its end meanwhile (Ctrl-C stops waiting, not the run; "
                        "--no-wait or --timeout SECONDS waits less)"  # (newcomer h33 F10)
                    )
            if deadline is not None and time.monotonic() >= deadline:
                print(
                    f"run {run_id} did not end within {args.timeout:g} s (it is "
                    f"{run['status']}); it goes on: follow it with 'cronflow-actors inspect "
                    f"{run_id}'",
                    file=sys.stderr,
                )
                if args.json:
                    print_json(_summary(run))
                return Exit.RUN_FAILED
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if long_polls:  # answered as the run ends; a pause it comes to told within 1 s
                longest = LONG_POLL if told_pause else 1
                wait = longest if left is None else max(1, min(longest, math.ceil(left)))
                continue
            time.sleep(poll if left is None else min(poll, left))
            poll = min(poll * 1.5, 1.0)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; run {run_id} goes on", file=sys.stderr)
        return 130
    if args.json:
        print_json(_summary(run))
    else:
        print(f"run {run_id}  {run['workflow']}  {run['status']} in {duration(run_duration(run))}")
        if run.get("error"):
            print(f"  error: {run['error']}")
        print(f"  output: {short(run.get('output'), 400)}")
    return Exit.OK if run["status"] == "completed" else Exit.RUN_FAILED


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    """A run that ended, for ``run --json``: its ``run_id`` (as ``--no-wait`` prints it, and
    ``id`` as the API names it), status, output and error."""
    return {"run_id": run.get("id")} | {k: run.get(k) for k in ("id", "status", "output", "error")}
