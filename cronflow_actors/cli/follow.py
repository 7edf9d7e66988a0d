"""Following a run a command started (``run``, ``replay``, ``fire``): wait for its end, by long
polls of ``GET /runs/{id}?wait=`` (polls of a server from before them), telling of a pause it
waits in, and say how it ended."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import Any

from cronflow_actors.cli.client import NOTHING_DONE, Client
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
from cronflow_actors.errors import ApiError, ServerUnreachableError, one_line

__all__ = ["LONG_POLL", "follow"]

LONG_POLL = 20
"""The longest ``run`` waits for one answer once it told of the pause its run waits in (s)."""
GONE_FOR = 45.0
"""How long ``run`` asks again a server that stopped answering before it says so (s): a
restart, whose drain may take ``serve``'s 30 s (retest h34 F3: 10 s lost a rolling restart's)."""


def _unknown_wait(said: str) -> bool:
    """Whether a 400 says the server knows no ``wait`` query parameter (a server from before
    long polls: "GET /runs/{run_id} takes no query parameter (given: 'wait')"): ``run`` polls it."""
    return "query parameter" in said and "wait" in said


def follow(
    args: argparse.Namespace,
    client: Client,
    run_id: str,
    *,
    what: str = "run",
    verb: str = "started",
) -> int:
    """Print ``run_id`` (``--no-wait``), or wait for its end (``--timeout``) and say how it
    ended: exit 0 when it completed, 1 when not, 5 when it goes on past ``--timeout``
    (``what``: "run", "replay", as it is told;
    ``verb``: how the command came to it)."""
    if args.no_wait:
        if args.json:
            print_json({"run_id": run_id})
        else:
            print(run_id)
        return Exit.OK
    if not args.json:  # progress for people, on stderr; --json prints only the result
        print(
            f"{verb} {what} {run_id}; waiting for it to end (Ctrl-C stops waiting, not the run)",
            file=sys.stderr,
        )
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    followed = [run_id]  # the run, then each it went on in (a migration's, meanwhile)
    try:
        run, pending = _until_ended(args, client, run_id, deadline), time.monotonic()
        while run["status"] in FINAL:
            now = time.monotonic()
            waiting = now - pending < 10 and (deadline is None or now < deadline)
            if run.get("migration_pending") and waiting:
                time.sleep(0.5)  # canceled for a migration whose run starts in a moment
                run = client.run(run["id"])  # (retest h34 F1: the poll answered before it)
                continue
            went = run.get("current_run_id")  # (chaos h34 F3: "canceled", exit 1, migrated)
            if went in (None, run["id"]):
                break
            if not args.json:
                print(
                    f"run {run['id']} {run['status']}: its work goes on in run {went}; "
                    "waiting for that one",
                    file=sys.stderr,
                )
            followed.append(went)
            run, pending = _until_ended(args, client, went, deadline), time.monotonic()
    except KeyboardInterrupt:
        print(f"\nstopped waiting; run {followed[-1]} goes on", file=sys.stderr)
        return 130
    except ApiError as lost:  # the run started: only the wait failed (retest2 h33 F6)
        if args.json:  # the id, for a script not to start it again (chaos h34 F2)
            print_json({"run_id": followed[-1]})
        started = f"run {run_id} started"
        said = str(lost).replace(NOTHING_DONE, f"{started}, only waiting for it failed")
        if started not in said:  # (a refusal of the server's, or its 503 as it stops)
            said = f"{started}; only waiting for it failed: {said}"
        raise ApiError(said, exit_code=Exit.STARTED, status=lost.status, slug=lost.slug) from None
    return _tell_end(args, run, followed)


def _tell_end(args: argparse.Namespace, run: dict[str, Any], followed: list[str]) -> int:
    """Say how the run ``followed`` last ended (or stands at the deadline); the exit code."""
    run_id = followed[0]
    last = run["id"] if "id" in run else followed[-1]
    if run["status"] not in FINAL:  # the deadline came first
        print(
            f"run {last} did not end within {args.timeout:g} s (it is {run['status']}); it "
            f"goes on: follow it with 'cronflow-actors inspect {last}'",
            file=sys.stderr,
        )
    unstarted = bool(run["status"] in FINAL and run.get("migration_pending"))  # (retest2 F1)
    if run["status"] not in FINAL:  # under way: 1 read "failed" (newcomer h35 F8)
        if args.json:
            print_json(_summary(run))
        return Exit.STARTED
    if unstarted:
        print(
            f"run {last} was canceled for its migration to {run.get('migrated_to')}, which is "
            "pending (that run has not started): the work goes on there once the migration is "
            f"carried on; do not start it again. 'cronflow-actors inspect {last}' says what to do",
            file=sys.stderr,
        )
    if args.json:
        summary = _summary(run) | ({"started_run_id": run_id} if len(followed) > 1 else {})
        print_json(summary | ({"migration_pending": run.get("migrated_to")} if unstarted else {}))
    elif run["status"] in FINAL:
        print(f"run {last}  {run['workflow']}  {run['status']} in {duration(run_duration(run))}")
        if run.get("error"):
            print(f"  error: {one_line(run['error'])}")
        print(f"  output: {short(run.get('output'), 400)}")
    if unstarted:
        return Exit.STARTED  # its work goes on: not a failure to start again
    return Exit.OK if run["status"] == "completed" else Exit.RUN_FAILED


def _until_ended(
    args: argparse.Namespace, client: Client, run_id: str, deadline: float | None
) -> dict[str, Any]:
    """The run once it has ended, or as it stands at ``deadline`` (monotonic); a pause it
    waits in told once, with the command that approves it."""
    poll, told_pause, wait = 0.05, False, 0  # the first read at once: a pause to tell of
    told: set[str] = set()  # the events and queue it was said to wait for
    long_polls, gone = True, None  # (gone: since when no server has answered)
    while True:
        sent = time.monotonic()
        try:
            run: dict[str, Any] = client.run(run_id, wait)
        except ApiError as refused:
            gone_or_going = isinstance(refused, ServerUnreachableError) or refused.status == 503
            if gone_or_going:  # a restart? (retest h33 F6: it asked "is serve running there?")
                gone = sent if gone is None else gone
                if sent - gone >= GONE_FOR or (deadline is not None and sent >= deadline):
                    raise _gone(client, run_id, refused, sent - gone) from None
                wait = 0
                time.sleep(1.0)
                continue
            # a server before long polls: "wait" is unknown there
            if not (wait and refused.slug == "invalid-argument" and _unknown_wait(str(refused))):
                raise
            run, wait, long_polls = client.run(run_id), 0, False
        gone = None
        took = time.monotonic() - sent
        if run["status"] in FINAL:
            return run
        if run["status"] == "waiting" and not told_pause:
            told_pause = _tell_pause(args, client, run_id)
            if not told_pause and not args.json:
                _tell_wait(args, run, told)
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return run
        # answered as the run ends, a pause it comes to told within 1 s; never past the
        # deadline (its last second polled), nor in a spin where an answer comes at once (a
        # proxy that drops the query: review h33 F1, F5)
        if long_polls and (left is None or left >= 1) and not (wait and took < wait / 2):
            longest = LONG_POLL if told_pause else 1
            wait = longest if left is None else min(longest, int(left))
            continue
        wait = 0
        time.sleep(poll if left is None else min(poll, left))
        poll = min(poll * 1.5, 1.0)


def _gone(client: Client, run_id: str, lost: ApiError, for_s: float) -> ApiError:
    """The server stopped answering (or answered 503) while ``run`` waited for ``run_id``."""
    reason = lost.reason if isinstance(lost, ServerUnreachableError) else "HTTP 503: it is stopping"
    return ApiError(
        f"as this command waited for run {run_id} to end, the server at {client.url} "
        f"stopped answering ({reason}), {for_s:.0f} s on end: stopped, or "
        "restarting? The run is kept, and goes on when a server runs on its database again; "
        f"follow it with 'cronflow-actors inspect {run_id}'",
        exit_code=lost.exit_code,
    )


def _tell_pause(args: argparse.Namespace, client: Client, run_id: str) -> bool:
    """Say the pause ``run_id`` waits in, if it does, and how to approve it; whether it did."""
    pause = client.paused_run(run_id)
    if pause is None:
        return False
    if not args.json:
        print(
            f"run {run_id} is paused at step {pause['step']!r} for a person; approve it from "
            f"another shell (--reject: refuse it): "
            f"{resume_command(pause['token'], server_flags(args))}; this command waits on "
            "for its end meanwhile (Ctrl-C stops waiting, not the run; --no-wait or --timeout "
            "SECONDS waits less)",  # (newcomer h33 F10)
            file=sys.stderr,
        )
    return True


def _tell_wait(args: argparse.Namespace, run: dict[str, Any], told: set[str]) -> None:
    """Say once each event ``run`` waits for, with the command that publishes it, and that it
    waits in its flow's queue (no step yet): it said nothing (newcomer h36 F5)."""
    steps = run.get("steps") or []
    waits = [s["event"] for s in steps if s.get("event") and s.get("status") == "waiting"]
    said = [
        f"waits for the event {event!r} (cronflow-actors events publish "
        f"{shlex.quote(event)}{server_flags(args)})"
        for event in waits
        if event not in told
    ]
    told.update(waits)
    if not steps and "queue" not in told:
        told.add("queue")
        said.append("waits for a place in its flow's queue (its concurrency limit)")
    for what in said:
        print(f"run {run['id']} {what}; this command waits on for its end", file=sys.stderr)


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    """A run that ended, for ``run --json``: its ``run_id`` (as ``--no-wait`` prints it, and
    ``id`` as the API names it), status, output and error."""
    return {"run_id": run.get("id")} | {k: run.get(k) for k in ("id", "status", "output", "error")}
