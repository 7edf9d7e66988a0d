"""``cronflow-actors resume TOKEN --approve | --reject | --payload JSON``: complete a human
step that waits (``POST /resume/{token}``).

The decision is always said: ``--approve`` sends ``{"approved": true}``, ``--reject``
``{"approved": false}``, and ``--payload`` sends the payload as given. Either flag may go with a
``--payload`` object that does not say ``approved`` itself (the flag adds it: ``--reject
--payload '{"reason": "too much"}'``); a payload that says ``approved`` too, or is not an
object, is refused with the flag, as two decisions would be. A bare ``resume TOKEN`` is a usage
error (exit 2): the API takes a resume without a payload as not approved, which no one who
typed it meant. What was recorded is printed: ``resumed: approved``, ``resumed: rejected`` or
``resumed with your payload``."""

from __future__ import annotations

import argparse
import re
from typing import Any

from cronflow_actors.cli.commands import _client, _client_options, _path
from cronflow_actors.cli.exits import Exit
from cronflow_actors.cli.payload import add_payload_option, read_payload
from cronflow_actors.cli.render import print_json
from cronflow_actors.errors import ApiError

__all__ = ["add_resume_command"]

_DECIDE = (
    "pass --approve or --reject (with --payload '{\"reason\": ...}' to add fields), or "
    '--payload JSON that says "approved" itself'
)


def _body(args: argparse.Namespace) -> tuple[Any, str]:
    """What to send, and what to print once it is recorded; a usage error (exit 2) for a
    resume that decides nothing or decides twice."""
    payload = read_payload(args.payload)
    if args.approved is None:
        if args.payload is None:
            args.refuse(f"the resume of {args.token_id!r} says no decision: {_DECIDE}")
        if isinstance(payload, dict) and "approved" in payload:
            return payload, "resumed with your payload"
        # (a net's pause takes any payload; a flow's human step records it as a rejection,
        # which "resumed with your payload" did not say: devx h43 F1)
        return payload, (
            'resumed with your payload, which says no "approved": a flow\'s human step records '
            "it as not approved (--approve with the payload adds it)"
        )
    flag = "--approve" if args.approved else "--reject"
    if args.payload is None:
        payload = {}
    elif not isinstance(payload, dict):
        args.refuse(f'{flag} adds "approved" to a --payload object, and this payload is not one')
    elif "approved" in payload:
        args.refuse(
            f'{flag} and a --payload that says "approved" too: pass one decision, the flag '
            'or the payload\'s "approved"'
        )
    return {**payload, "approved": args.approved}, (
        "resumed: approved" if args.approved else "resumed: rejected"
    )


def _resume(args: argparse.Namespace) -> int:
    body, said = _body(args)
    # Only the two refusals about the token itself are put in other words; any other (a run
    # that is blocked on a changed definition, say) is the server's own reason, which says
    # what to do about it.
    try:
        path = f"/resume/{_path(args.token_id)}"
        answer = _client(args).call("POST", path, body, values={"status": "resumed"})
    except ApiError as refused:
        if refused.status == 404 and refused.slug == "unknown-token":
            run_id = re.fullmatch(r"[0-9a-f]{32}", args.token_id) is not None  # not a token's
            hint = (
                f" (that is the shape of a run id: 'cronflow-actors inspect {args.token_id}' "
                "shows its resume command)"
                if run_id
                else ""
            )
            raise ApiError(
                f"no run is paused with the token {args.token_id!r}{hint}; "
                "'cronflow-actors paused' lists the tokens of the runs that wait",
                exit_code=Exit.NOT_FOUND_OR_CONFLICT,
                status=404,
                slug=refused.slug,
            ) from None
        if refused.status == 409 and refused.slug == "pause-ended":
            # the server's why (resumed by whom and when, timed out, its run ended or migrated)
            said = str(refused)
            ended = "the pause has already ended"
            why = said[said.index(ended) + len(ended) :] if ended in said else ""
            raise ApiError(
                f"the pause of token {args.token_id!r} is already over{why}; nothing was changed",
                exit_code=Exit.NOT_FOUND_OR_CONFLICT,
                status=409,
                slug=refused.slug,
            ) from None
        raise
    if args.json:
        print_json(answer)
    else:
        print(said)
    return Exit.OK


def add_resume_command(commands: Any) -> None:
    """Add ``resume`` to the ``cronflow-actors`` subcommands."""
    parser = commands.add_parser(
        "resume",
        help="resume a paused run with its token: --approve, --reject or --payload",
        description="Complete the human step that waits on RESUME_TOKEN with a decision: "
        "--approve, "
        "--reject, or --payload JSON (a flag may go with a --payload object that does not say "
        '"approved": it adds it). A bare resume is refused: it would record "not approved".',
    )
    parser.add_argument(  # (not --token's TOKEN, the API's bearer token: newcomer h44 F3)
        "token_id", metavar="RESUME_TOKEN", help="the pause's resume token ('paused' lists them)"
    )
    decision = parser.add_mutually_exclusive_group()
    decision.add_argument(
        "--approve",
        dest="approved",
        action="store_const",
        const=True,
        default=None,
        help='record the step as approved ({"approved": true})',
    )
    decision.add_argument(
        "--reject",
        dest="approved",
        action="store_const",
        const=False,
        help='record the step as not approved ({"approved": false})',
    )
    add_payload_option(
        parser,
        'JSON, e.g. \'{"approved": true, "approved_by": "ada", "reason": "ok"}\' (with '
        '--approve or --reject: an object without "approved")',
    )
    _client_options(parser, json_help="print the server's answer as JSON")
    parser.set_defaults(handler=_resume, refuse=parser.error)
