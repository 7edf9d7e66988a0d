"""``cronflow-actors flows``: the flows a running ``serve`` has registered (``GET /flows``):
each one's id, version, name and triggers, and when its schedules fire next
(``GET /flows/{id}/next-fires``), then its nets (``GET /nets``): versions, migrations and what
callers may do; ``--json`` prints the API's answers. ``cronflow-actors fire FLOW [--schedule
EXPR]``: a run now, as a tick of the flow's schedule would start it (``POST /flows/{id}/fire``),
followed as ``run`` follows its run."""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import urllib.parse
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronflow_actors.cli.commands import (
    _client,
    _client_options,
    _path,
    add_instance_id_option,
    follow_options,
)
from cronflow_actors.cli.exits import Exit
from cronflow_actors.cli.follow import follow
from cronflow_actors.cli.render import print_json, when
from cronflow_actors.cli.starts import start_once
from cronflow_actors.errors import ApiError

__all__ = ["add_fire_command", "add_flows_command", "add_schedule_commands"]


def _trigger(trigger: dict[str, Any]) -> str:
    """One trigger in a few words: ``webhook POST /orders``, ``schedule 0 9 * * * (UTC)``."""
    match trigger.get("kind"):
        case "webhook":
            return f"webhook {trigger.get('method')} {trigger.get('path')}"
        case "schedule":
            return f"schedule {trigger.get('cron')} ({trigger.get('timezone') or 'UTC'})"
        case "interval" | "poll" as kind:
            return f"{kind} every {trigger.get('every'):g} s"
        case "event":
            return f"event {trigger.get('event')}"
    return str(trigger.get("kind"))


def _in_zone(epoch: float, zone: str) -> str:
    """``epoch`` in the time zone ``zone`` (a schedule's), named: the machine's own zone would
    read 01:00 for a 02:00 Europe/Paris schedule, said nowhere (h25 newcomer F6)."""
    try:
        moment = dt.datetime.fromtimestamp(epoch, ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return f"{when(epoch)} (local time)"
    return f"{moment:%Y-%m-%d %H:%M:%S} {zone}"


def _flows(args: argparse.Namespace) -> int:
    client = _client(args)
    flows = client.call("GET", "/flows", expect=("flows",))["flows"]
    fires = {}
    for flow in flows:
        if any(t.get("kind") in ("schedule", "interval") for t in flow.get("triggers", [])):
            path = f"/flows/{urllib.parse.quote(flow['id'], safe='')}/next-fires"
            fires[flow["id"]] = client.call("GET", path, query={"count": 1}, expect=("schedules",))
    nets = _nets(client)
    if args.json:
        print_json({"flows": flows, "next_fires": fires, "nets": nets})
        return Exit.OK
    if not flows:
        print("no flows are registered on this server")
    for flow in flows:
        named = f"  {flow['name']}" if flow.get("name") and flow["name"] != flow["id"] else ""
        print(f"{flow['id']} {flow.get('version', '')}{named}")
        others = [
            v["version"] + (" (deprecated)" if v.get("deprecated") else "")
            for v in flow.get("versions", [])
            if not v.get("current")
        ]
        if others:  # what a run may be migrated to or from
            print(f"  also registered: {', '.join(others)} (new runs take {flow['version']})")
        for trigger in flow.get("triggers", []) or [{"kind": "no trigger (started by a call)"}]:
            print(f"  {_trigger(trigger)}")
        paused = fires.get(flow["id"], {}).get("paused")
        if paused:  # (its ticks start no run: the next fires below are not runs)
            by = f" by {paused['by']}" if paused.get("by") else ""
            note = f": {paused['note']}" if paused.get("note") else ""
            print(f"  schedules paused since {when(paused['since'])}{by}{note}")
            print(f"  resume them: cronflow-actors resume-schedules {shlex.quote(flow['id'])}")
        for schedule in fires.get(flow["id"], {}).get("schedules", []):
            upcoming = schedule.get("next") or []
            zone = schedule["trigger"].get("timezone") or "UTC"  # its own zone's time, said
            shown = _in_zone(upcoming[0], zone) if upcoming else "never"
            print(f"  next {_trigger(schedule['trigger'])}: {shown}")
        fired = _fire_hint(flow)
        if fired:
            print(f"  run one now: {fired}")
        _print_awaits(flow)
    for described in nets:
        version = described.get("version") or "every version deprecated"
        print(f"{described['name']} {version}  (net)")
        others = [v for v in described.get("versions", []) if v != described.get("version")]
        if others:
            deprecated = set(described.get("deprecated", []))
            said = [v + (" (deprecated)" if v in deprecated else "") for v in others]
            print(f"  also registered: {', '.join(said)}")
        for source, target in described.get("migrations", []):
            print(f"  migration {source} -> {target}")
        actions = ", ".join(described.get("actions", [])) or "nothing (no action declared)"
        print(f"  callers may: {actions}")
        for task, verbs in described.get("item_actions", {}).items():
            print(f"  work items of {task}: {', '.join(verbs)}")
        _print_awaits(described)
    return Exit.OK


def _print_awaits(described: dict[str, Any]) -> None:
    """The events a flow's or a net's steps wait for, which a publish wakes (newcomer h34 F7:
    the API and the console listed them, ``flows`` did not)."""
    if described.get("awaits"):
        named = ", ".join(described["awaits"])
        print(f"  its steps wait for: {named} (cronflow-actors events publish NAME wakes them)")


def _fire_hint(flow: dict[str, Any]) -> str | None:
    """The ``fire`` command that starts a run of ``flow`` now, as its first schedule would
    (newcomer h30 F3: ``flows`` listed schedules without saying they can be fired)."""
    names = []
    for trigger in flow.get("triggers", []):
        if trigger.get("kind") == "schedule":
            names.append((trigger.get("cron"), trigger.get("timezone") or "UTC"))
        elif trigger.get("kind") == "interval":
            names.append((f"every {trigger.get('every'):g} s", None))
    if not names:
        return None
    command = f"cronflow-actors fire {shlex.quote(flow['id'])}"
    if len(names) == 1:
        return command
    text, zone = names[0]
    if zone is not None and [name for name, _ in names].count(text) > 1:
        text = f"{text} ({zone})"  # one expression in two zones: named with its zone
    return f"{command} --schedule {shlex.quote(str(text))} (or another of its schedules)"


def _nets(client: Any) -> list[dict[str, Any]]:
    """The nets the server registered (``GET /nets``; none from a server from before it)."""
    try:
        return list(client.call("GET", "/nets", expect=("nets",))["nets"])
    except ApiError as error:
        if error.status == 404:
            return []
        raise


def add_flows_command(commands: Any) -> None:
    """Add ``flows`` to the ``cronflow-actors`` subcommands."""
    parser = commands.add_parser(
        "flows", help="the flows the server runs: their triggers, and when schedules fire next"
    )
    _client_options(parser, json_help="print the server's answers as JSON")
    parser.set_defaults(handler=_flows)


def _fire(args: argparse.Namespace) -> int:
    client = _client(args)
    body = {} if args.schedule is None else {"schedule": args.schedule}
    path = f"/flows/{_path(args.flow)}/fire"
    started = start_once(args, client, path, body, {"workflow": args.flow})
    return follow(args, client, started["run_id"])


def add_fire_command(commands: Any) -> None:
    """Add ``fire`` to the ``cronflow-actors`` subcommands."""
    parser = commands.add_parser(
        "fire",
        help="start a run of a flow now as its schedule would, and wait for it to end",
        description="Start a run of FLOW now as a tick of its cron schedule or interval would "
        "(its payload a tick's: scheduled_at now, fired_now true; the schedule's own ticks go "
        "on as planned), and wait for it to end (exit 0 when it completed, 1 when it failed, "
        "was canceled, 5 when it outlived --timeout).",
    )
    parser.add_argument("flow", metavar="FLOW", help="the flow's id")
    parser.add_argument(
        "--schedule",
        default=None,
        metavar="EXPR",
        help="which schedule: its cron expression as declared (with its zone, '0 9 * * * "
        "(Europe/Paris)', where one expression has two), or an interval's length ('every 15m'; "
        "'cronflow-actors flows' lists them; default: the flow's only one)",
    )
    add_instance_id_option(parser, "it")
    follow_options(parser)
    parser.set_defaults(handler=_fire)


def _pause(args: argparse.Namespace) -> int:
    client = _client(args)
    path = f"/flows/{_path(args.flow)}/schedules/{args.which}"
    body = {"note": args.note} if args.which == "pause" and args.note else None
    answer = client.call("POST", path, body, expect=("flow",))
    if args.json:
        print_json(answer)
    elif args.which == "pause":
        paused = answer["paused"]
        print(f"the schedules of {args.flow} are paused (since {when(paused['since'])})")
    elif answer["resumed"]:
        print(f"the schedules of {args.flow} are resumed: their next tick starts a run")
    else:
        print(f"the schedules of {args.flow} were not paused")
    return Exit.OK


def add_schedule_commands(commands: Any) -> None:
    """Add ``pause-schedules`` and ``resume-schedules`` to the ``cronflow-actors``
    subcommands."""
    pause = commands.add_parser(
        "pause-schedules",
        help="pause a flow's cron schedules and intervals: their ticks start no run",
        description="Pause every cron schedule and interval of FLOW until resume-schedules: "
        "their ticks start no run, in every process on the database, and are not caught up "
        "once resumed ('fire' still starts one).",
    )
    pause.add_argument("flow", metavar="FLOW", help="the flow's id")
    pause.add_argument("--note", default="", help="why (shown by 'flows', and logged)")
    _client_options(pause, json_help="print the server's answer as JSON")
    pause.set_defaults(handler=_pause, which="pause")
    resume = commands.add_parser(
        "resume-schedules",
        help="resume a flow's paused schedules (the ticks they missed are skipped)",
    )
    resume.add_argument("flow", metavar="FLOW", help="the flow's id")
    _client_options(resume, json_help="print the server's answer as JSON")
    resume.set_defaults(handler=_pause, which="resume")
