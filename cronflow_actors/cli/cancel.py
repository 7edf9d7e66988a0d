"""``cronflow-actors cancel RUN_ID [--reason TEXT] [--terminate]``: end a run as canceled
(``POST /runs/{id}/cancel``); ``--reason`` is recorded as its error, which ``inspect`` shows;
``--terminate`` ends it without running its code.
A run that already ended is refused in those words (exit 3, the server's 409)."""

from __future__ import annotations

import argparse
from typing import Any

from cronflow_actors.cli.commands import _client, _client_options
from cronflow_actors.cli.exits import Exit
from cronflow_actors.cli.render import FINAL, print_json, when
from cronflow_actors.errors import ApiError

__all__ = ["add_cancel_command"]


def _cancel(args: argparse.Namespace) -> int:
    client = _client(args)
    body: dict[str, Any] | None = None if args.reason is None else {"reason": args.reason}
    if args.terminate:
        body = {**(body or {}), "terminate": True}
    try:
        canceled = {"run_id": args.run_id, "status": "canceled"}
        answer = client.run_call("POST", args.run_id, "/cancel", values=canceled, body=body)
    except ApiError as refused:
        if refused.slug == "flow-code-failed" and not args.terminate:  # its teardown raised:
            # the way out, in this command's words (console h43 F4, retest)
            raise ApiError(
                f"{refused}; or end the run without running any of its code: "
                f"cronflow-actors cancel {args.run_id} --terminate",
                exit_code=refused.exit_code,
                status=refused.status,
                slug=refused.slug,
            ) from None
        if refused.status != 409 or refused.slug == "refused":
            raise  # (refused for a reason the server names: another process gives it up)
        # "already ended" only when it has: a run that goes on was refused for another
        # reason (it is blocked, say), which the server's answer gives
        run = client.run(args.run_id)
        if run["status"] not in FINAL:
            raise
        # where its work is now, at the end of its resumes and migrations (chaos h32 F3;
        # newcomer h33 F4: one hop on named a run that had ended too)
        went = run.get("current_run_id") or run.get("migrated_to") or run.get("resumed_as")
        elsewhere = ""
        if went:
            now = client.run(went)["status"]
            elsewhere = f"; its work went on in run {went}" + (
                f", which has ended too ({now})" if now in FINAL else ": cancel that one"
            )
        raise ApiError(
            f"run {args.run_id} already ended ({run['status']}"
            f"{' ' + when(run.get('finished_at')) if run.get('finished_at') else ''}); "
            f"there is nothing to cancel{elsewhere}",
            exit_code=Exit.NOT_FOUND_OR_CONFLICT,
            status=409,
            slug=refused.slug,
        ) from None
    if args.json:
        print_json(answer)
    else:
        print(f"canceled run {args.run_id}")
    return Exit.OK


def add_cancel_command(commands: Any) -> None:
    """Add ``cancel`` to the ``cronflow-actors`` subcommands."""
    parser = commands.add_parser("cancel", help="cancel a run")
    parser.add_argument("run_id", metavar="RUN_ID")
    parser.add_argument(
        "--reason",
        default=None,
        help="why, recorded as the run's error (up to 500 characters on one line)",
    )
    parser.add_argument(
        "--terminate",
        action="store_true",
        help="end it without running any of its code (no activity, no cancel callback): for a "
        "run whose teardown code raises, which refuses a plain cancel",
    )
    _client_options(parser, json_help="print the server's answer as JSON")
    parser.set_defaults(handler=_cancel)
