"""What the client commands print for people: tables with a header row, times in the local
time zone (``2026-05-01 14:03:07``), durations in units (``42 ms``, ``3 min 5 s``), and a run
as a tree of its steps. ``--json`` prints the API's answers instead."""

from __future__ import annotations

import datetime as dt
import json
import shlex
import time
from collections.abc import Sequence
from typing import Any

from cronflow_actors.errors import one_line

__all__ = [
    "ago",
    "duration",
    "flags",
    "print_json",
    "render_paused",
    "render_run",
    "resume_command",
    "server_flags",
    "short",
    "table",
    "when",
]

FINAL = frozenset({"completed", "failed", "canceled"})


def when(epoch: float | None) -> str:
    """A moment in the local time zone, to the second; "-" for none."""
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def ago(epoch: float | None, now: float | None = None) -> str:
    """How long ago (or from now) a moment is: "5 s ago", "in 3 h"."""
    if epoch is None:
        return ""
    seconds = (time.time() if now is None else now) - epoch
    span = abs(seconds)
    if span < 60:
        text = f"{span:.0f} s"
    elif span < 3600:
        text = f"{span / 60:.0f} min"
    elif span < 86400:
        text = f"{span / 3600:.0f} h"
    else:
        text = f"{span / 86400:.0f} d"
    return f"in {text}" if seconds < 0 else f"{text} ago"


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {round(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {round(seconds % 3600 / 60)} min"


def short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, the header first; the last column unpadded. Each
    cell on one line, its controls escaped: a pause's description may quote a webhook's
    sender, whose ESC retitled the terminal and whose CR LF wrote a row (newcomer h34 F1)."""
    texts = [[one_line(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in texts) for i in range(len(header))]
    lines = []
    for row in texts:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        cells[-1] = row[-1]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def run_duration(run: dict[str, Any]) -> float | None:
    end = run.get("finished_at")
    if end is None and run.get("status") not in FINAL:
        end = time.time()
    return None if end is None else end - run["created_at"]


def _links(run: dict[str, Any]) -> list[str]:
    """The lines of a run's links to the runs it came from and went on in, and its block."""
    lines = []
    if run.get("replay_of"):  # a resume's id says it is one (newcomer h32 F9: "replay of")
        went_on = str(run.get("id", "")).startswith("resume:")
        lines.append(f"  {'resume' if went_on else 'replay'} of {run['replay_of']}")
    if run.get("blocked"):
        lines.append(f"  blocked: {run['blocked']}")
    if run.get("migrated_from"):
        lines.append(f"  migrated from {run['migrated_from']}")
    if run.get("migrated_to") and run.get("migration_pending"):
        # (a start that raised waits for a person; one a crash cut goes on by itself: cancel
        # gave up a migration that would have finished, chaos h33 F2)
        lines.append(
            f"  migration to {run['migrated_to']} pending: that run has not started. If its "
            "start raised, fix the cause and migrate again, or cancel this run to give the "
            "migration up; if a crash cut it, the next start of a runtime carries it on (on a "
            "shared database, a process still running does)"
        )
    elif run.get("migrated_to"):
        lines.append(f"  migrated to {run['migrated_to']} (this run was canceled for it)")
    if run.get("resumed_as"):  # (newcomer h31 F2; there: not past it, retest h33 F9)
        there = run.get("current_run_id") in (None, run["resumed_as"])
        goes_on = " (its work went on there)" if there else ""
        lines.append(f"  resumed as {run['resumed_as']}{goes_on}")
    current = run.get("current_run_id")
    if current and current not in (run.get("migrated_to"), run.get("resumed_as")):
        lines.append(f"  its work now in {current} (through resumes or migrations)")
    return lines


def render_run(
    run: dict[str, Any], pause: dict[str, Any] | None = None, *, url_flag: str = ""
) -> str:
    """A readable tree of a run: its status and times, then each step with its state,
    attempts, start, duration and output; a paused run says how to resume it."""
    name = run.get("workflow_name") or run["workflow"]
    shown = name if name == run["workflow"] else f"{name} ({run['workflow']})"
    version = f" {run['version']}" if run.get("version") else ""
    lines = [f"run {run['id']}  {shown}{version}  {run['status']}"]
    queued = run["status"] == "waiting" and not run.get("steps")
    started = f"  {'queued' if queued else 'started'} {when(run['created_at'])}"
    started += f" ({ago(run['created_at'])})"
    if run.get("started_by"):
        started += f" by {run['started_by']}"
    if run.get("finished_at"):
        started += f", finished {when(run['finished_at'])}"
    if run["status"] in FINAL:  # a run still going has not "taken" anything yet
        started += f", took {duration(run_duration(run))}"
    lines.append(started)
    trigger = run.get("trigger") or {}
    if trigger.get("webhook"):  # what its webhook kept of the request (newcomer h33 F9)
        kept = [
            f"{k}={v}"
            for part in ("params", "query", "headers")
            for k, v in trigger.get(part, {}).items()
        ]
        said = one_line(", ".join(kept))  # (a sender's bytes: no line break reaches the screen)
        said = said if len(said) <= 300 else said[:297] + "..."
        lines.append(f"  webhook {trigger['webhook']}" + (f": {said}" if kept else ""))
    lines += _links(run)
    if run.get("error"):
        # (it names the exception's class already; a sender's bytes in it escaped, as in the
        # server's log: its ESC, CR or line break reached the terminal, retest h33 F4)
        lines.append(f"  error: {one_line(run['error'])}")
        if run.get("error_type"):
            lines.append(f"  error type: {run['error_type']}")
    steps = run.get("steps", [])
    for index, step in enumerate(steps):
        last = index == len(steps) - 1
        branch = "└─" if last else "├─"
        took = ""
        if step.get("started_at") and step.get("finished_at"):
            took = f"  {duration(step['finished_at'] - step['started_at'])}"
        at = f"  at {when(step['started_at'])[11:]}" if step.get("started_at") else ""
        again = step.get("redispatches") or 0
        verb = "dispatched" if step.get("kind") == "action" else "run"
        note = f" ({verb} again after {again} restart{'s' * (again > 1)})" if again else ""
        if step.get("carried"):  # (chaos h34 F5: "attempts=0" read as never run)
            note += " (carried over: completed in the run this one went on from)"
        lines.append(
            f"  {branch} {step['id']} [{step['kind']}] {step['status']}"
            f" attempts={step['attempts']}{note}{at}{took}  -> {short(step.get('output'))}"
        )
        if step.get("error"):
            lines.append(f"  {'  ' if last else '│ '}   error: {one_line(step['error'])}")
        if step.get("event") and step["status"] == "waiting":
            lines.append(
                f"  {'  ' if last else '│ '}   waits for the event {step['event']!r} "
                f"(cronflow-actors events publish {shlex.quote(step['event'])}{url_flag})"
            )
    lines.append(f"  output: {short(run.get('output'), 200)}")
    if pause is not None and run.get("blocked"):
        lines.append(
            f"  paused at step {pause['step']!r} since {when(pause.get('paused_at'))}; "
            "a resume is refused while it cannot run here (blocked, above)"
        )
    elif pause is not None:
        lines.append(
            f"  paused at step {pause['step']!r}"
            + (f" ({one_line(pause['description'])})" if pause.get("description") else "")
            + f" since {when(pause.get('paused_at'))}; approve it with (--reject: refuse it):"
        )
        lines.append(f"    {resume_command(pause['token'], url_flag)}")
    return "\n".join(lines)


def resume_command(token: str, again: str = "") -> str:
    """The command that approves the pause ``token`` (``--reject`` in its place refuses it),
    to paste as it is; ``again``: the options that reach the same server."""
    return f"cronflow-actors resume {shlex.quote(token)} --approve{again}"


def render_paused(paused: list[dict[str, Any]]) -> str:
    rows = [
        [
            p["token"],
            p["run_id"],
            p["workflow"],
            p["step"] + (" (blocked: resume refused; inspect the run)" if p.get("blocked") else ""),
            when(p.get("paused_at")),
            when(p.get("expires_at")) if p.get("expires_at") else "never",
            p.get("description") or "",
        ]
        for p in paused
    ]
    header = ["TOKEN", "RUN ID", "WORKFLOW", "STEP", "PAUSED", "EXPIRES", "DESCRIPTION"]
    return table(header, rows)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def flags(args: Any, *names: str) -> str:
    """The options ``names`` as this command line gave them, for a command printed to run
    next: each shell-quoted, a switch as its flag alone, one not given left out. ``--token``
    is never repeated: a secret (``CRONFLOW_TOKEN`` or the ``--config`` file keeps it)."""
    given = ""
    for name in names:
        value = getattr(args, name, None)
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        given += f" {flag}" if value is True else f" {flag} {shlex.quote(str(value))}"
    return given


def server_flags(args: Any) -> str:
    """The options a printed command needs to reach the same server: ``--url`` and
    ``--config`` as given on this command line (a URL from ``CRONFLOW_URL`` or the default is
    found again as it was)."""
    return flags(args, "url", "config")
