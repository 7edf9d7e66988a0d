"""The exit codes of ``cronflow-actors``, one meaning each, so scripts can tell what happened.

===  =====================================================================================
0    done: the command did what it says (``run``: the run completed)
1    the run failed or was canceled
2    usage: a bad argument or setting, a payload that is not JSON, a request the server
     refused as malformed, a missing or unknown token, or an action the token may not take
3    not found or conflict: no such run, workflow or pause token; or its state does not
     allow it (a run that already ended, a pause already resumed, an id already taken); or
     the run's stored snapshot is damaged (a 500 that no retry mends)
4    the server could not be reached (nothing listens at ``--url``, a timeout) or cannot
     take work now (it is stopping, or its store failed: 503)
5    ``run``, ``replay``, ``fire``: the run may be under way: it started, and only waiting for
     its end failed (the server went away, or refused a read, or ``--timeout`` came first),
     or its migration is pending; or
     its start was sent and the answer lost, the server away since. Never start it again
     without ``--instance-id`` and its id (printed, and ``{"run_id"}`` with ``--json``): with
     it, a start asked again starts it at most once
6    the server failed on the request (a 500 of its own: a fault of the server's or of the
     app's code, in its log); the same request would fail again until that is mended
===  =====================================================================================

``serve`` has its own: 0 after a clean stop, 1 when the runtime failed while serving, 2 when it
could not start.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["Exit"]


class Exit(IntEnum):
    OK = 0
    RUN_FAILED = 1
    USAGE = 2
    NOT_FOUND_OR_CONFLICT = 3
    UNREACHABLE = 4
    STARTED = 5
    """The run started; only waiting for it failed (review h34 F4: exit 4 read "retry")."""
    SERVER_FAULT = 6
    """A 500 of the server's own: exit 4 and "retry later" read as a busy server (newcomer
    h36 F4)."""
