"""Starting a run from the command line once (``run``, ``replay``, ``fire``).

A start whose answer was lost (a server that stalled, or died between the commit and its
answer) said "cannot reach the server", exit 4, which scripts retry, though the run had started
(chaos h35 F1). So a start names its run: the ``--instance-id`` given, or one the command makes
(a resume's id is its run's own). When the request may have reached the server (the answer timed
out, the connection was reset) the same start is sent again, each second, through a restart: a
409 ``instance-exists`` then says the first one started it, and only a start never sent (the
connection refused) is exit 4. A server that stays away is exit 5: the run may have started,
and asking again with its id starts it at most once. An id given (``--instance-id``) may name
a run from before: such a 409 is taken for the first send's only if its run is what this
start would make (its flow, or the run it replays) and was made after it was sent (hostile
h36 F2: another flow's run, exit 0, and the run asked for never started)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from http.client import HTTPException
from typing import Any

from cronflow_actors.cli.client import Client
from cronflow_actors.cli.exits import Exit
from cronflow_actors.cli.follow import GONE_FOR
from cronflow_actors.cli.render import print_json, server_flags
from cronflow_actors.errors import ApiError, ServerUnreachableError
from cronflow_actors.runtime.ids import new_run_id

__all__ = ["start_once"]

_TRY = 5.0
"""The longest one start sent again waits for its answer (s)."""

_MAYBE_SENT = (
    TimeoutError,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
    HTTPException,  # an answer cut off after its headers (review h35 F5)
)
"""How a call fails once its request may have reached the server (its answer lost)."""
_SKEW = 120.0
"""How far the server's clock may be behind this one's (s): a run made that long before the
first send is still taken for its (the other way, a start said taken that did start, a script
would start again)."""
_PROXY_LOST = frozenset({502, 503, 504})
"""What a proxy in front of ``serve`` answers when it lost the server's answer, and ``serve``
while it drains. Any 5xx page that is no problem of cronflow-actors' is a proxy's, which may
have passed the start on (review h35 F4: a 504, retest h36 R3: a 500, each said "retry later",
exit 4, and the run had started)."""
_NEVER_PASSED_ON = frozenset({501, 505, 511})
"""A proxy's 5xx pages given instead of passing a request on (``_maybe_passed_on``)."""


def start_once(
    args: argparse.Namespace,
    client: Client,
    path: str,
    body: dict[str, Any],
    makes: dict[str, str],
) -> dict[str, Any]:
    """POST ``body`` to ``path``, which starts a run, named by ``--instance-id`` or an id of
    its own; the answer (``run_id``; ``duplicate``: started before, a resume asked again). A
    run with the id given already: exit 3, saying so and how to see it. ``makes``: what the
    run it starts reads (``GET /runs/{id}``: its ``workflow``, or the run it is a
    ``replay_of``), to tell it from a run of that id from before."""
    if args.instance_id is not None:
        body["instance_id"] = args.instance_id
    elif not body.get("resume"):  # (a resume is named by its run: asked again, the same one)
        body["instance_id"] = new_run_id()
    sent = time.monotonic()  # (the time said counts the first try's: retest2 h35 R5)
    since = time.time()
    try:
        return _post(client, path, body)
    except ServerUnreachableError as lost:
        if not isinstance(lost.reason, _MAYBE_SENT):
            raise  # never sent (refused, no such host): nothing started
        return _ask_again(args, client, path, body, lost.reason, began=sent, mine=(makes, since))
    except ApiError as refused:
        if refused.status == 409 and refused.slug == "instance-exists":
            raise _taken(args, body["instance_id"]) from None
        if _maybe_passed_on(refused):  # a proxy's page, not the server's
            proxy = f"HTTP {refused.status} from a proxy"
            return _ask_again(args, client, path, body, proxy, began=sent, mine=(makes, since))
        raise


def _maybe_passed_on(refused: ApiError) -> bool:
    """Whether ``refused`` is a proxy's 5xx page (no problem of cronflow-actors') after which
    the start may have reached the server: any but those a proxy gives instead of passing a
    request on (501 a method it does not pass, 505 an HTTP version, 511 a login of its own:
    review h37 F8, they were sent again for 45 s and said "may have started")."""
    return refused.status >= 500 and refused.status not in _NEVER_PASSED_ON and not refused.slug


def _post(client: Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    return client.call("POST", path, body, expect=("run_id",))  # type: ignore[no-any-return]


def _ask_again(
    args: argparse.Namespace,
    client: Client,
    path: str,
    body: dict[str, Any],
    lost: object,
    *,
    began: float,
    mine: tuple[dict[str, str], float],
) -> dict[str, Any]:
    """The start sent again, each second, while the server does not answer (for ``GONE_FOR``,
    or ``--timeout``; each try for at most ``_TRY``): started by the first (409) or by this
    one; exit 5 if it stays away (``lost``: how the first one's answer was lost, ``began``:
    when it was sent; ``mine``: what its run reads, and the time it was sent by the clock)."""
    run_id = body.get("instance_id")
    if not args.json:
        print(
            f"the server at {client.url} did not answer the start ({lost}); asking again with "
            "the same run id, so that it starts once",
            file=sys.stderr,
        )
    timeout = getattr(args, "timeout", None)
    deadline = began + min(GONE_FOR, timeout if timeout is not None else GONE_FOR)
    client = Client(client.url, client.token, timeout=_TRY)  # (review h35 F6: 30 s a try)
    while time.monotonic() < deadline:
        time.sleep(1)
        try:
            started = _post(client, path, body)
        except ServerUnreachableError:
            continue
        except ApiError as refused:
            if refused.status in _PROXY_LOST or _maybe_passed_on(refused):
                continue  # draining, or restarting behind a proxy
            if refused.status == 409 and refused.slug == "instance-exists":
                if args.instance_id is None or _made_by_it(client, args.instance_id, *mine):
                    return {"run_id": run_id}  # the first start's
                raise _taken(args, args.instance_id) from None
            raise
        return started | {"asked_again": True}
    if args.json:
        print_json({"run_id": run_id})
    what = f"run {run_id}" if run_id else "the resume"
    again = f"'cronflow-actors inspect {shlex.quote(run_id)}{server_flags(args)}'" if run_id else ""
    raise ApiError(
        f"the start of {what} was sent to the server at {client.url}, which has not answered "
        f"since ({lost}), {time.monotonic() - began:.0f} s on: it may have started. "
        + (
            f"{again} says once the server answers; starting it again with --instance-id "
            f"{shlex.quote(run_id)} starts it at most once"
            if run_id
            else "asking for the resume again answers the one started, if it did"
        ),
        exit_code=Exit.STARTED,
    )


def _made_by_it(client: Client, run_id: str, makes: dict[str, str], since: float) -> bool:
    """Whether run ``run_id`` (an id given) is what a start sent at ``since`` (this clock)
    made: it reads ``makes`` and was made after (the server's clock ``_SKEW`` behind at
    most). Unread, it is taken for the start's: said taken, a start that did happen would be
    made again."""
    try:
        run = client.run(run_id)
    except ApiError:
        return True
    made = run.get("created_at")
    after = not isinstance(made, int | float) or made >= since - _SKEW
    return after and all(run.get(key) == value for key, value in makes.items())


def _taken(args: argparse.Namespace, run_id: str) -> ApiError:
    shown = shlex.quote(run_id)
    return ApiError(
        f"a run with the id {run_id!r} exists already (an id names one run, whatever its flow "
        f"or state), so nothing was started; 'cronflow-actors inspect {shown}"
        f"{server_flags(args)}' shows it",
        exit_code=Exit.NOT_FOUND_OR_CONFLICT,
        status=409,
        slug="instance-exists",
    )
