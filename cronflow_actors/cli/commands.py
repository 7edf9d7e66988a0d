"""The client commands: ``run``, ``inspect``, ``trace``, ``runs``, ``paused`` and ``events
publish`` (``resume``: ``resume.py``; ``cancel``: ``cancel.py``). They call a running ``serve``
(``--url``, ``--token``); the reads (``runs``, ``inspect``, ``trace``, ``paused``) read the
database itself with ``--db`` (``offline.py``), a ``serve`` running or not. Each prints for
people by default and the API's JSON with ``--json``, and exits with a code of ``exits.py``."""

from __future__ import annotations

import argparse
import shlex
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

from cronflow_actors.cli.client import Client
from cronflow_actors.cli.exits import Exit
from cronflow_actors.cli.follow import follow
from cronflow_actors.cli.payload import add_payload_option, read_payload
from cronflow_actors.cli.render import (
    duration,
    flags,
    print_json,
    render_paused,
    render_run,
    resume_command,
    run_duration,
    server_flags,
    table,
    when,
)
from cronflow_actors.cli.starts import start_once
from cronflow_actors.errors import ConfigurationError, one_line

__all__ = ["STATUSES", "add_client_commands", "follow_options"]

STATUSES = ("running", "waiting", "completed", "failed", "canceled", "blocked")
"""What ``runs --status`` takes (a run's status)."""

RUNS_PAGE, PAUSED_PAGE = 50, 100
"""The pages of ``runs`` and ``paused`` without ``--limit`` (the server's defaults too)."""


class Reads(Protocol):
    """What the read commands ask: ``Client`` answers from a server, ``DatabaseReads``
    (``offline.py``) from the database itself, both in the API's JSON."""

    def run(self, run_id: str) -> dict[str, Any]: ...
    def runs(self, query: dict[str, Any]) -> dict[str, Any]: ...
    def trace(self, run_id: str) -> dict[str, Any]: ...
    def paused(self, limit: int, cursor: str | None, run_id: str | None) -> dict[str, Any]: ...
    def paused_run(self, run_id: str) -> dict[str, Any] | None: ...
    def flows(self) -> list[str] | None: ...

    again: str
    """What a command printed to run next adds to read the same place (``--db ...``)."""

    @property
    def where(self) -> str:
        """What was read, for an empty answer (a CRONFLOW_URL left naming another server read
        as a run lost: newcomer h42 F2)."""
        ...


def _client(args: argparse.Namespace) -> Client:
    from cronflow_actors.runtime.config import load_config

    overrides = {"url": args.url, "token": args.token}
    settings = load_config(args.config, overrides=overrides)
    return Client(settings.url, settings.token)


def _path(value: str) -> str:
    """A run id or token as a path segment."""
    from urllib.parse import quote

    return quote(value, safe="")


# -- run -------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    client = _client(args)
    body = {"workflow": args.workflow, "payload": read_payload(args.payload)}
    started = start_once(args, client, "/runs", body, {"workflow": args.workflow})
    return follow(args, client, started["run_id"])


def add_instance_id_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--instance-id``: the id of the run ``what`` starts, to start it once."""
    parser.add_argument(
        "--instance-id",
        default=None,
        metavar="ID",
        help=f"the id of the run {what} starts (1 to 100 letters, digits, '-' or '_'), to "
        "start it once: a run with this id already is refused (exit 3) and nothing starts "
        "(default: a new random id)",
    )


# -- reads -----------------------------------------------------------------------------------


def _reads(args: argparse.Namespace) -> AbstractContextManager[Reads]:
    """Where a read command reads: the server at ``--url``, or with ``--db`` the database (an
    empty one refused: a script's ``--db "$DB"`` with ``DB`` unset read whatever server was
    at the default URL, as if it were the database: ops h41 F8)."""
    db = getattr(args, "db", None)
    if db == "":
        raise ConfigurationError(
            "--db", db, "the path of a database file (or a postgresql:// URL); it is empty"
        )
    if db:
        from cronflow_actors.cli.offline import DatabaseReads

        return DatabaseReads(args.db)
    return nullcontext(_client(args))


def _inspect(args: argparse.Namespace) -> int:
    with _reads(args) as reads:
        run = reads.run(args.run_id)
        pause = reads.paused_run(args.run_id) if run["status"] == "waiting" else None
        # a run paused at several (a for_each's flows): it named one (newcomer h36 F6)
        pauses = len(reads.paused(3, None, args.run_id)["paused"]) if pause else 0
    if args.json:
        print_json({**run, "pause": pause})
    else:
        shown = render_run(run, pause, url_flag=server_flags(args))
        if pauses > 1:
            more = "1 more pause" if pauses == 2 else "more pauses"
            shown += (
                f"\n  it waits at {more}: cronflow-actors paused --run "
                f"{shlex.quote(args.run_id)}{server_flags(args)} lists them all"
            )
        print(shown)
    return Exit.OK


def _trace(args: argparse.Namespace) -> int:
    import msgspec

    from cronflow_actors.runtime.audit import Trace

    with _reads(args) as reads:
        trace = reads.trace(args.run_id)
    if args.json:
        print_json(trace)
    else:
        print(msgspec.convert(trace, Trace).render())
    return Exit.OK


def _runs(args: argparse.Namespace) -> int:
    query = {
        "workflow": args.workflow,
        "status": "blocked" if args.blocked else args.status,
        "limit": args.limit,
        "cursor": args.cursor,
    }
    with _reads(args) as reads:
        page = reads.runs(query)
        flows = reads.flows() if args.workflow and not page["runs"] else None
        again, where = reads.again, reads.where
    if args.json:
        print_json(page)
        return Exit.OK
    rows = [
        [
            run["id"],
            run["workflow"],
            # its work goes on in another run (newcomer h34 F10: it read as plainly canceled;
            # newcomer h35 F5: a failure resumed, as one nobody dealt with)
            run["status"]
            + (" (migrated)" if run.get("migrated_to") else "")
            + (" (resumed)" if run.get("resumed_as") else ""),
            when(run["created_at"]),
            duration(run_duration(run)),
        ]
        for run in page["runs"]
    ]
    if rows:
        print(table(["RUN ID", "WORKFLOW", "STATUS", "STARTED", "DURATION"], rows))
    else:
        shaped = " match" if args.workflow or args.status or args.blocked else " yet"
        print(f"no runs{shaped} (asked {where})")
        if flows is not None and args.workflow not in flows:  # a misspelled id, most likely
            print(f"{args.workflow!r} is not one of the flows registered on this server: {flows}")
    if page.get("next_cursor"):
        # the next page of the same list: every filter of this one, and where it was read
        shaped = flags(args, "workflow", "status", "blocked", *_given_limit(args, RUNS_PAGE))
        cursor = shlex.quote(page["next_cursor"])
        print(
            f"more: cronflow-actors runs --cursor {cursor}{shaped}{server_flags(args)}{again}",
            file=sys.stderr,
        )
    return Exit.OK


def _paused(args: argparse.Namespace) -> int:
    with _reads(args) as reads:
        page = reads.paused(args.limit, args.cursor, args.run)
        again, where = reads.again, reads.where
    if args.json:
        print_json(page)
        return Exit.OK
    if page["paused"]:
        print(render_paused(page["paused"]))
    if any(not pause.get("blocked") for pause in page["paused"]):  # one a resume can answer
        print(
            f"approve one with: {resume_command('TOKEN', server_flags(args))} "
            "(--reject: refuse it)",
            file=sys.stderr,
        )
    if not page["paused"]:
        none = (
            f"run {args.run} waits for no person" if args.run else "no run is paused for a person"
        )
        print(f"{none} (asked {where})")
    if page.get("next_cursor"):
        shaped = flags(args, "run", *_given_limit(args, PAUSED_PAGE)) + server_flags(args)
        cursor = shlex.quote(page["next_cursor"])
        print(f"more: cronflow-actors paused --cursor {cursor}{shaped}{again}", file=sys.stderr)
    return Exit.OK


# -- changes ---------------------------------------------------------------------------------


def _publish(args: argparse.Namespace) -> int:
    key = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    path, expect = f"/events/{_path(args.name)}", ("started", "delivered")
    answer = _client(args).call(
        "POST", path, read_payload(args.payload), headers=key, expect=expect
    )
    if args.json:
        print_json(answer)
        return Exit.OK
    started, delivered = answer.get("started", []), answer.get("delivered", [])
    woke = f"woke a waiting step in {len(delivered)} run(s)"
    if started:
        print(f"published {args.name!r}: started {len(started)} run(s), {woke}")
        for run_id in started:
            print(f"  {run_id}")
    else:
        print(f"published {args.name!r}: no flow starts on it; {woke}")
    for run_id in delivered:
        print(f"  woke {run_id}")
    if answer.get("note"):
        print(f"  {answer['note']}", file=sys.stderr)
    for run_id in answer.get("held", []):
        print(
            f"  kept for {run_id}, which cannot run here now: its step hears it once the run "
            "runs again (no need to publish it again)"
        )
    for refusal in answer.get("refused", []):
        said = one_line(refusal.get("detail"))  # (a filter's error may quote the payload)
        print(f"  refused by {refusal.get('workflow')}: {said}", file=sys.stderr)
    for run_id in answer.get("not_kept", []):
        print(
            f"  run {run_id} cannot run here and keeps as many events as it may: not kept for "
            "it; publish it again once it runs",
            file=sys.stderr,
        )
    for raised in answer.get("filter_errors", []):
        print(
            f"  the filter of the step waiting in run {raised.get('run_id')} raised "
            f"{raised.get('detail')}: it did not take the event and waits on",
            file=sys.stderr,
        )
    return Exit.OK


# -- arguments -------------------------------------------------------------------------------


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def _status(text: str) -> str:
    """A run's status; ``paused`` (the metrics' word for waiting on a person) is pointed to
    the command that lists those."""
    if text in STATUSES:
        return text
    hint = (
        ": a run paused for a person is 'waiting' here; `cronflow-actors paused` lists those"
        if text == "paused"
        else ""
    )
    raise argparse.ArgumentTypeError(f"{text!r} is none of {', '.join(STATUSES)}{hint}")


def _given_limit(args: argparse.Namespace, default: int) -> tuple[str, ...]:
    """``("limit",)`` when ``--limit`` is not the command's default (then a printed command
    repeats it), else nothing."""
    return ("limit",) if args.limit != default else ()


def _limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 1000")
    return int(text)


def _client_options(
    parser: argparse.ArgumentParser, *, json_help: str, reads: bool = False
) -> None:
    parser.add_argument("--json", action="store_true", help=json_help)
    if reads:
        parser.add_argument(
            "--db",
            default=None,
            metavar="DB",
            help="read this database (a SQLite file, or a postgresql:// URL) instead of asking "
            "a server: works while serve is stopped, and beside a running one; writes nothing",
        )
    parser.add_argument(
        "--url", default=None, help="the server (default http://127.0.0.1:8000; CRONFLOW_URL)"
    )
    parser.add_argument("--token", default=None, help="bearer token for it (CRONFLOW_TOKEN)")
    parser.add_argument("--config", default=None, help="TOML settings file (url, token)")


def add_client_commands(commands: Any) -> None:
    """Add the client commands to the ``cronflow-actors`` subcommands."""
    run = commands.add_parser(
        "run",
        help="start a run of a flow and wait for it to end",
        description="Start a run of a flow and wait for it to end (exit 0 when it completed, "
        "1 when it failed or was canceled, 5 when it outlived --timeout).",
    )
    run.add_argument("workflow", metavar="FLOW", help="the flow's id")
    add_payload_option(run, "the payload, as JSON")
    add_instance_id_option(run, "it")
    follow_options(run)
    run.set_defaults(handler=_run)

    inspect = commands.add_parser(
        "inspect", help="a run as a tree of its steps (and how to resume it if it is paused)"
    )
    inspect.add_argument("run_id", metavar="RUN_ID")
    _client_options(inspect, json_help="print the run as JSON (with its pause, if any)", reads=True)
    inspect.set_defaults(handler=_inspect)

    trace = commands.add_parser(
        "trace", help="a run's audit trail: every engine operation, under the one that caused it"
    )
    trace.add_argument("run_id", metavar="RUN_ID")
    _client_options(trace, json_help="print the trace as JSON", reads=True)
    trace.set_defaults(handler=_trace)

    runs = commands.add_parser("runs", help="list runs, newest first")
    runs.add_argument("--workflow", default=None, metavar="FLOW", help="only this flow's runs")
    runs.add_argument(
        "--status",
        default=None,
        type=_status,
        metavar="{" + ",".join(STATUSES) + "}",
        help="only runs in this state",
    )
    runs.add_argument(
        "--blocked", action="store_true", help="only runs held on a changed definition"
    )
    runs.add_argument(
        "--limit",
        type=_limit,
        default=RUNS_PAGE,
        help=f"runs per page, 1 to 1000 (default {RUNS_PAGE})",
    )
    runs.add_argument("--cursor", default=None, help="the next page (printed under a full page)")
    _client_options(runs, json_help="print the page as JSON", reads=True)
    runs.set_defaults(handler=_runs)

    paused = commands.add_parser(
        "paused", help="list runs paused for a person, with their resume tokens"
    )
    paused.add_argument(
        "--limit",
        type=_limit,
        default=PAUSED_PAGE,
        help=f"pauses per page, 1 to 1000 (default {PAUSED_PAGE})",
    )
    paused.add_argument("--cursor", default=None, help="the next page (printed under a full page)")
    paused.add_argument(
        "--run",
        default=None,
        metavar="RUN_ID",
        help="this run's pauses only: each one its children, or its net's work items, wait in",
    )
    _client_options(paused, json_help="print the page as JSON", reads=True)
    paused.set_defaults(handler=_paused)

    events = commands.add_parser("events", help="publish an event to the runs that wait for it")
    event_commands = events.add_subparsers(
        dest="events_command", metavar="EVENTS_COMMAND", required=True
    )
    publish = event_commands.add_parser(
        "publish", help="publish an event: start the flows listening, wake the steps waiting"
    )
    publish.add_argument("name")
    add_payload_option(publish, "the payload, as JSON")
    publish.add_argument(
        "--idempotency-key",
        default=None,
        metavar="KEY",
        help="names this publish: sent again with the same key, no listening flow starts twice",
    )
    _client_options(publish, json_help="print the runs started (and refusals) as JSON")
    publish.set_defaults(handler=_publish)


def follow_options(parser: argparse.ArgumentParser) -> None:
    """A command's options to ``follow`` the run it starts (``run``, ``replay``), and the
    client's."""
    parser.add_argument("--no-wait", action="store_true", help="print the run's id and exit 0")
    parser.add_argument("--timeout", type=_positive_seconds, metavar="SECONDS", help=_UNTIL)
    _client_options(parser, json_help="print {id, status, output, error} as JSON")


_UNTIL = "stop waiting after this long (the run goes on) and exit 5"
