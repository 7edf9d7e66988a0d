"""Human-in-the-loop pauses: resume a paused run by its token, list the runs that wait.

A pause is found through its durable wake-up row (``kind="pause"``), never by scanning
instances: the row is written with the snapshot that starts the pause, and holds a token drawn
at random (144 bits), so a token cannot be derived from a run id. The paused instance need not
be in memory; the resume activates it.
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec

from cronflow_actors.engine.services import decode_state
from cronflow_actors.engine.states import FINAL_STATES, WorkItemState
from cronflow_actors.errors import (
    ConfigurationError,
    InstanceBlockedError,
    InvalidPayloadError,
    InvalidStateTransitionError,
    NotFoundError,
    NotPausedError,
    ResumeError,
    clipped,
)
from cronflow_actors.flow.triggers import not_one_line
from cronflow_actors.messages import Message, SnapshotRecord, WaitRecord
from cronflow_actors.messages.engine import Principal, WorkItemAction
from cronflow_actors.messages.states import WorkItemVerb
from cronflow_actors.net.spec import pause_details
from cronflow_actors.runtime.pages import (
    PAGE_BYTES,
    Page,
    check_limit,
    decode_cursor,
    encode_cursor,
)
from cronflow_actors.runtime.run_info import as_listed
from cronflow_actors.store import Store

__all__ = ["PausedRun", "Pauses"]

logger = logging.getLogger(__name__)
_OVER = "the pause has already ended"
_UNKNOWN = (
    "no run is paused with this token (a token of a pause whose step was started again, a "
    "net's item reset, is no longer its: list_paused, GET /paused or `cronflow-actors paused` "
    "gives the current ones)"
)
"""A token no open pause holds: mistyped, or one a reset replaced (conform h33 F4: it read as a
typo where the pause had ended moments before)."""

_decode = msgspec.msgpack.Decoder().decode


def _when(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(moment))


class PausedRun(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    run_id: str
    workflow: str
    step: str
    description: str = ""
    metadata: Mapping[str, Any] = msgspec.field(default_factory=dict)
    paused_at: float | None = None
    expires_at: float | None = None
    last: Any = None
    approval_url: str | None = None
    """Where a person approves, when the step gives one (``approval_url``)."""
    blocked: str | None = None
    """Why its run is held (its definition changed under its version), if it is: a resume is
    refused until it is migrated, its old definition registered again, or it is canceled."""
    clipped: list[str] | None = None
    """In a listing: ``["last"]`` when ``last`` is left out for its size (over 64 KiB of
    JSON), which ``GET /runs/{id}/pause`` has (console h40 F1); None when it is not."""


class Pauses:
    def __init__(self, *, store: Store, send: Callable[[str, Message], Awaitable[Any]]) -> None:
        self._store = store
        self._send = send

    async def resume(
        self,
        token: str,
        payload: Any = None,
        *,
        principal: Principal | None = None,
        is_flow: Callable[[SnapshotRecord], bool] = lambda snapshot: False,
    ) -> None:
        """Complete the pause ``token`` with ``payload`` (``approved``, ``reason`` and
        ``approved_by`` are read from it when it is a dict; Cronflow's ``approvedBy`` too).
        ``principal``: who asks (an HTTP caller's token), its id recorded as ``resumed_by``
        and, when the payload names no approver, as ``approved_by``. The pause of a net's work
        item (its run not a flow's, as ``is_flow`` says of its root's snapshot) completes with
        ``payload`` as given, as ``/work-items/{id}/complete`` does, and, asked by
        ``principal``, as that caller's call of the item's ``complete`` action, which must be
        declared, its schema and policy seeing that payload: its token, listed to any reader,
        completed it past the policy, recorded as the process's own call (hostile h28 H1; the
        reviewer's h28 M1: the policy saw the resume's record, not the caller's payload)."""
        if not isinstance(token, str) or not token:
            raise ResumeError(str(token), "a resume token is a non-empty string")
        wait = await self._store.find_wait("pause", token)
        if wait is None:
            raise ResumeError(token, _UNKNOWN)
        if wait.ended:
            raise ResumeError(token, await self._why_ended(wait), ended=True)
        by = None
        if await self._is_flow(wait, is_flow):  # (the runtime's call: by whom, for the trail)
            completion, caller = _resumed(wait, payload, principal), None
            by = principal.id if principal is not None else None
        else:
            completion, caller = payload, principal
        command = WorkItemAction(
            action=WorkItemVerb.COMPLETE,
            work_item_id=wait.wait_id,
            payload=completion,
            principal=caller,
            token=token,
            by=by,
        )
        try:
            await self._send(wait.instance_id, command)
        except (InvalidStateTransitionError, ResumeError) as error:
            if isinstance(error, ResumeError) and not error.ended:
                raise
            # it ended since it was read (its run migrated, say): why, as the run's state says
            why = await self._why_ended(wait)
            if why != _OVER:
                raise ResumeError(token, why, ended=True) from None
            if isinstance(error, ResumeError):
                raise
            raise ResumeError(token, f"{_OVER} ({error})", ended=True) from None
        except InstanceBlockedError as blocked:  # said in the flow's words, not a work item's
            operation = f"resume run {wait.instance_id}'s pause at step {wait.step!r}"
            raise InstanceBlockedError(wait.instance_id, blocked.reason, operation) from None

    async def _is_flow(self, wait: WaitRecord, is_flow: Callable[[SnapshotRecord], bool]) -> bool:
        """Whether ``wait`` is a flow's run's pause: its root's, not the workflow's that holds
        the item (a net's child may bear a flow's name, the reviewer's h28 H2)."""
        snapshot = await self._store.load_snapshot(wait.instance_id)
        return snapshot is not None and is_flow(snapshot)

    async def get(self, token: str) -> PausedRun:
        """The run paused with ``token``; ``ResumeError`` if there is none (``ended`` when its
        pause is over)."""
        if not isinstance(token, str) or not token:
            raise ResumeError(str(token), "a resume token is a non-empty string")
        wait = await self._store.find_wait("pause", token)
        if wait is None:
            raise ResumeError(token, _UNKNOWN)
        if wait.ended:
            raise ResumeError(token, await self._why_ended(wait), ended=True)
        return _paused(wait)

    async def _why_ended(self, wait: WaitRecord) -> str:
        """Why the pause of ``wait`` is over, from its run's last durable state: resumed (by
        whom, when), timed out, its run ended, or its run migrated to another (whose pause has
        a token of its own)."""
        over = _OVER
        try:
            snapshot = await self._store.load_snapshot(wait.instance_id)
            if snapshot is None:  # pruned since
                return f"{over} (its run {wait.instance_id} is no longer stored)"
            state = decode_state(snapshot.body, wait.instance_id)
        except Exception:  # the store's trouble, a damaged snapshot: the refusal stands
            logger.debug("why the pause of %s ended", wait.instance_id, exc_info=True)
            return over
        if state.migrated_to:
            return (
                f"{over}: its run {wait.instance_id} was migrated to {state.migrated_to}, whose "
                f"pause has a token of its own ('cronflow-actors inspect {state.migrated_to}' "
                "shows it)"
            )
        item = state.work_items.get(wait.wait_id)
        root = state.workflows.get(state.id)
        if item is not None and item.state == WorkItemState.COMPLETED:
            record = item.output if isinstance(item.output, dict) else {}
            at = f" at {_when(item.finished_at)}" if item.finished_at else ""
            if record.get("timed_out"):
                return f"{over}: it timed out{at}"
            who = record.get("resumed_by") or record.get("approved_by")
            return f"{over}: it was resumed{at}" + (f" by {who}" if who else "")
        if root is not None and root.state in FINAL_STATES:
            at = f" at {_when(root.finished_at)}" if root.finished_at else ""
            return f"{over}: its run {wait.instance_id} was {root.state}{at}"
        return over

    async def of_run(self, run_id: str) -> PausedRun:
        """The pause ``run_id`` waits in (the oldest, if it waits in several: a flow's
        children each at a pause), read through the run's own wait rows, never by listing the
        others. ``NotPausedError`` if the run waits for no person, ``NotFoundError`` if there
        is no such run."""
        found = await self._store.open_waits("pause", instance_id=run_id, limit=1)
        if found:
            return _paused(found[0])
        await self._known(run_id)
        raise NotPausedError(run_id)

    async def _known(self, run_id: str) -> None:
        """``NotFoundError`` unless run ``run_id`` is stored (or queued to start: both are what
        ``instance_exists`` asks)."""
        if await self._store.instance_exists(run_id):
            return
        root = run_id.partition(".")[0]
        if root != run_id and await self._store.instance_exists(root):  # (retest h36 R5)
            raise NotFoundError("run", run_id, advice=_inside(run_id, root))
        raise NotFoundError("run", run_id)

    async def list_paused(
        self, *, limit: int = 100, cursor: str | None = None, run_id: str | None = None
    ) -> Page[PausedRun]:
        """The runs waiting for a human, oldest pause first, ``limit`` at a time, and fewer
        when they are big: a page ends once its pauses' stored data (description, metadata
        and ``last``) reaches ``PAGE_BYTES`` (8 MB), with a ``next_cursor`` for the rest: the
        pause that reaches it is the page's last (one bigger than that ends the page it is on,
        first or not), never an empty page with a cursor. ``run_id``: that run's pauses only
        (its children's and its net's work items' included; ``NotFoundError`` if there is no
        such run)."""
        check_limit(limit)
        if run_id == "":  # (review h35 F12: "no run ''", a 404)
            raise ConfigurationError("run_id", run_id, "a run's id, or none for every run's")
        if run_id is not None and "." in run_id:  # a child net's (the work list's workflow_id)
            root = run_id.partition(".")[0]  # was "no run", a 404 (hostile h36 F5)
            if not await self._store.instance_exists(root):  # (nor one it is in: retest h36 R5)
                raise NotFoundError("run", run_id, advice=f"nor is there a run {root!r}")
            raise ConfigurationError("run_id", run_id, _inside(run_id, root))
        after = decode_cursor(cursor) if cursor is not None else None
        rows = await self._store.open_waits(  # one past the page: the last page has no cursor
            "pause", instance_id=run_id, after=after, limit=limit + 1, max_bytes=PAGE_BYTES
        )
        if run_id is not None and not rows and after is None:
            await self._known(run_id)  # (a mistyped id is not a run that waits for no one)
        more = len(rows) > limit
        if not more and rows and sum(len(row.data) for row in rows) >= PAGE_BYTES:  # cut by
            end = (rows[-1].created_at, rows[-1].wait_id)  # size: is there a pause past it?
            more = bool(
                await self._store.open_waits("pause", instance_id=run_id, after=end, limit=1)
            )
        rows = rows[:limit]
        last = rows[-1] if more and rows else None
        next_cursor = encode_cursor(last.created_at, last.wait_id) if last else None
        listed = [as_listed(_paused(row), len(row.data), ("last",)) for row in rows]
        return Page(listed, next_cursor)


def _inside(ident: str, root: str) -> str:
    """What to ask for instead of ``ident``, the id of a workflow or work item inside run
    ``root``."""
    return (
        f"the id of a run, not of a workflow or work item inside one ({ident} is inside run "
        f"{root}): pauses are found by their run's id, and {root}'s include those of the "
        "workflows inside it"
    )


_FIELDS = {
    "approved": (("approved",), "the resume would be taken as not approved"),
    "approvedby": (("approved_by", "approvedBy"), "the record would say 'human' approved"),
    "reason": (("reason",), "the record would give no reason of yours"),
}
"""An approval's fields, by their letters in lower case without separators (how a field
written another way is known): the spellings taken, and what a resume without it says."""

_DECISIONS = frozenset({"yes", "no", "true", "false", "ok", "approve", "approved", "reject"})
_DECISIONS |= {"rejected", "deny", "denied"}
"""Words that read as a decision when sent bare, where only ``{"approved": ...}`` decides."""


def _resumed(wait: WaitRecord, payload: Any, principal: Principal | None) -> dict[str, Any]:
    """What a flow's pause completes with: the resume's record (approved, reason, by whom)."""
    caller = principal.id if principal is not None else None
    data = payload if isinstance(payload, dict) else {}
    _check_shape(wait, payload)
    record = {
        "approved": _approved(wait, data),
        "reason": _text(wait, data, ("reason",), "resumed"),
        "approved_by": _text(wait, data, ("approved_by", "approvedBy"), caller or "human"),
        "status": "resumed",
        "timed_out": False,
        "payload": payload,
    }
    if caller is not None:  # who asked, whatever the payload says approved
        record["resumed_by"] = caller
    return record


def _check_shape(wait: WaitRecord, payload: Any) -> None:
    """Refuse a resume whose payload looks like a decision it does not make, before the pause
    is touched: a field of the approval written another way (``Approved``, ``approved-by``),
    a misspelt ``approved`` (``aproved``, ``approve``: the resume would not approve, and say
    nothing), or a bare ``true`` or ``"yes"``. Any other key is the caller's own (``reasons``,
    ``season``), and so is one of those given beside the field itself."""
    where = f"step {wait.step!r} of run {wait.instance_id!r} (paused for a person)"
    if isinstance(payload, bool) or (
        isinstance(payload, str) and payload.strip().lower() in _DECISIONS
    ):
        shown = str(payload).lower() if isinstance(payload, bool) else clipped(payload)
        raise InvalidPayloadError(
            where,
            "resume",
            f'a bare {shown} decides nothing; send {{"approved": true}} (or false). The '
            "pause is still open",
        )
    if payload is None:  # left out: not approved
        return
    if not isinstance(payload, dict):  # 1, [], 5 closed it as not approved, for good
        raise InvalidPayloadError(
            where,
            "resume",
            f'a resume gives an object, such as {{"approved": true}} (or nothing, for not '
            f"approved), not {clipped(payload)}. The pause is still open",
        )
    for key in payload:
        letters = str(key).lower().replace("_", "").replace("-", "")
        field = letters if letters in _FIELDS else None
        if field is None and difflib.get_close_matches(letters, ["approved"], cutoff=0.85):
            field = "approved"  # the decision itself: a typo of it decides the wrong way
        if field is None:
            continue
        spellings, without = _FIELDS[field]
        if key in spellings or any(name in payload for name in spellings):
            continue  # the field itself, or given beside it: a field of the caller's own
        named = clipped(str(key))
        raise InvalidPayloadError(
            where,
            "resume",
            f"{named} is not a field of an approval; did you mean {spellings[0]!r}? (without "
            f"it {without}; to keep {named} as a field of your own, give {spellings[0]!r} as "
            "well). The pause is still open",
        )


def _approved(wait: WaitRecord, data: Mapping[str, Any]) -> bool:
    """The decision in a resume's payload for the open pause ``wait``: ``approved`` is true or
    false, or absent (not approved). Anything else is refused before the pause is touched: the
    string ``"false"`` or the number 0 read as a truth value would decide the wrong way
    (Cronflow reads it so). The error names the run and its step, never the token (a secret)."""
    approved = data.get("approved", False)
    if not isinstance(approved, bool):  # null too: not left out, and it decides for good
        raise InvalidPayloadError(
            f"step {wait.step!r} of run {wait.instance_id!r} (paused for a person)",
            "resume",
            f"'approved' is {'null' if approved is None else repr(approved)}; give true or "
            "false (a JSON boolean), or leave it out "
            "for not approved. The pause is still open",
        )
    return approved


def _text(wait: WaitRecord, data: Mapping[str, Any], names: tuple[str, ...], default: str) -> str:
    """The text a resume's payload gives under ``names`` (one field, or its Cronflow spelling),
    else ``default``; anything but one string is refused before the pause is touched (the
    approval record says who approved and why: a number or an object there says neither)."""
    given = {name: data[name] for name in names if name in data}
    if all(isinstance(value, str) and not value.strip() for value in given.values()):
        return default  # none, empty or blank: it names nobody
    where = f"step {wait.step!r} of run {wait.instance_id!r} (paused for a person)"
    if len(given) > 1:
        raise InvalidPayloadError(
            where, "resume", f"give one of {', '.join(map(repr, names))}: the pause is still open"
        )
    [(name, value)] = given.items()
    if not isinstance(value, str):
        raise InvalidPayloadError(
            where,
            "resume",
            f"{name!r} is {clipped(value)}; give a string, or leave it out. The pause is still "
            "open",
        )
    if not_one_line(value):  # the record is shown: a name must not read as another's
        raise InvalidPayloadError(
            where,
            "resume",
            f"{name!r} is {clipped(value)}: give one line, with no control characters, line "
            "breaks or bidi controls. The pause is still open",
        )
    return value


def _paused(row: WaitRecord) -> PausedRun:
    data = _decode(row.data) if row.data else {}
    details = pause_details(data.get("details"), lenient=True)
    return PausedRun(
        token=row.key,
        run_id=row.instance_id,
        workflow=row.workflow,
        step=row.step,
        description=details.get("description", ""),
        metadata=details.get("metadata", {}),
        paused_at=row.created_at,
        expires_at=row.expires_at,
        last=data.get("last"),
        approval_url=details.get("approval_url"),
    )
