"""The client commands' connection to a running ``serve``: JSON over its HTTP API (``--url``),
with the bearer token of ``--token``. A refusal becomes an ``ApiError`` that says, in plain
words, what went wrong and what to do, and carries the exit code it means (``exits.py``)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPException
from typing import Any

from cronflow_actors.cli.exits import Exit
from cronflow_actors.cli.render import render_run  # its home before render.py; still importable
from cronflow_actors.errors import ApiError, ServerUnreachableError, one_line

__all__ = ["NOTHING_DONE", "ApiError", "Client", "render_run"]

NOTHING_DONE = "nothing was done that this command can tell"
"""What a refusal of a stranger's answer ends with (a command that started a run says more)."""


PROBLEM = "urn:cronflow:problem:"
"""How every problem (RFC 9457) of the server's is typed: a JSON error without it is another's."""


class Client:
    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.again = ""
        """What a command to run next adds to ask the same server (``--url`` is remembered in
        the environment or the config, not repeated)."""

    @property
    def where(self) -> str:
        """The server asked, as an empty answer names it."""
        return f"the server at {self.url}"

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        expect: tuple[str, ...] = (),
        values: dict[str, Any] | None = None,
        longer: float = 0,
    ) -> Any:
        """The server's JSON answer to ``method path``: an object with the fields ``expect``,
        and ``values`` where given (an answer of another kind is another server's, and refused
        as such: never taken for a success). ``longer``: seconds added to the timeout."""
        target = self.url + path
        if query:
            given = {k: v for k, v in query.items() if v is not None}
            if given:
                target += "?" + urllib.parse.urlencode(given)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(target, data=data, method=method)
        request.add_header("content-type", "application/json")
        request.add_header("accept", "application/json")
        if self.token:
            request.add_header("authorization", f"Bearer {self.token}")
        for name, value in (headers or {}).items():
            # as UTF-8 on the wire (http.client sends a header's characters as Latin-1 bytes,
            # and refused any other: newcomer h30 F2); the server reads it as UTF-8
            request.add_header(name, value.encode().decode("latin-1"))
        try:
            with urllib.request.urlopen(request, timeout=self.timeout + longer) as response:
                kind = response.headers.get_content_type()
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            try:
                raw = error.read()
            except HTTPException as cut:  # a refusal cut mid-body (retest2 h35 R6)
                raise ServerUnreachableError(self.url, cut, exit_code=Exit.UNREACHABLE) from None
            raise self._refused(error.code, raw, error.headers) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, HTTPException) as error:
            # (HTTPException: an answer cut off after its headers, review h35 F5)
            reason = getattr(error, "reason", error)
            raise ServerUnreachableError(self.url, reason, exit_code=Exit.UNREACHABLE) from None
        answer = self._answer(status, kind, raw, (*expect, *(values or {})))
        wrong = [field for field, value in (values or {}).items() if answer[field] != value]
        if wrong:
            said = ", ".join(f"{field} {answer[field]!r}" for field in wrong)
            raise self._stranger(f"HTTP {status}, {said}")
        return answer

    def _answer(self, status: int, kind: str, raw: bytes, expect: tuple[str, ...]) -> Any:
        """The decoded answer, if it is one of ours: JSON, an object, with what ``expect``s."""
        try:
            answer = json.loads(raw) if _is_json(kind) else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or not all(field in answer for field in expect):
            shown = f"{kind}" if answer is None else f"JSON without {', '.join(expect)}"
            raise self._stranger(f"HTTP {status}, {shown}")
        return answer

    def _stranger(self, what: str) -> ApiError:
        return ApiError(
            f"the server at {self.url} did not answer as cronflow-actors does ({what}): is "
            f"another server on that address? Check --url (or CRONFLOW_URL); {NOTHING_DONE}",
            exit_code=Exit.UNREACHABLE,
        )

    def _refused(self, status: int, raw: bytes, headers: Any) -> ApiError:
        kind = headers.get_content_type() if headers is not None else "text/plain"
        text = raw.decode(errors="replace")
        try:
            problem = json.loads(text) if _is_json(kind) else None
        except ValueError:
            problem = None
        kind_of = problem.get("type") if isinstance(problem, dict) else None
        if not (isinstance(kind_of, str) and kind_of.startswith(PROBLEM)):
            if status >= 500:  # a proxy's 502 or 504 page while serve restarts, say
                return ApiError(
                    f"the server at {self.url} cannot take this now (HTTP {status}, {kind}, "
                    "not an answer of cronflow-actors': a proxy in front of it?); retry later",
                    exit_code=Exit.UNREACHABLE,
                    status=status,
                )
            return self._stranger(f"HTTP {status}, {kind}")  # some other server's page
        assert isinstance(problem, dict)
        detail = one_line(problem.get("detail", text))  # (it may quote a sender's text)
        slug = kind_of.rpartition(":")[2]
        if status == 401:
            if slug == "unknown-token" and detail.startswith("this server takes no tokens"):
                message = f"{detail}: drop --token (or CRONFLOW_TOKEN, or --config's token)"
            elif slug == "unknown-token":
                message = "the server does not know this token; check --token (or CRONFLOW_TOKEN)"
            elif slug == "malformed-credentials":
                message = "the token was sent malformed; pass it alone: --token SECRET"
            else:
                message = "the server needs a token: pass --token SECRET (or set CRONFLOW_TOKEN)"
            code = Exit.USAGE
        elif status == 403:  # an internal-only action is no token's to take (hostile h33 L3)
            internal = " is internal-only" in detail
            said = "no caller may do that" if internal else "this token may not do that"
            message, code = f"{said}: {detail}", Exit.USAGE
        elif status in (404, 409):
            message, code = detail, Exit.NOT_FOUND_OR_CONFLICT
        elif slug == "damaged-snapshot":  # the server's data: a retry does not mend it
            message, code = f"the server cannot read this run: {detail}", Exit.NOT_FOUND_OR_CONFLICT
        elif status == 500:  # its own fault, or the app's: the same request fails again
            message = (
                f"the server failed on this request ({status}: {detail}); the server's log "
                "says why: sent again unchanged, it is likely to fail again"
            )
            code = Exit.SERVER_FAULT
        elif status >= 500:
            message = (
                f"the server cannot take this now ({status}: {detail}); it may be stopping or "
                "its database may have failed: retry later, or look at the server's log"
            )
            code = Exit.UNREACHABLE
        else:
            message, code = f"the server refused the request: {detail}", Exit.USAGE
        return ApiError(message, exit_code=code, status=status, slug=slug)

    # -- the reads of the client commands (``offline.DatabaseReads`` answers the same) ----------

    def run(self, run_id: str, wait: int = 0) -> dict[str, Any]:
        """``GET /runs/{id}``; with ``wait`` (seconds), answered once the run has ended or when
        they are up (a long poll: this call's own timeout is that much longer)."""
        query = {"wait": wait} if wait else None
        answer = self.run_call("GET", run_id, expect=("id", "status"), query=query, longer=wait)
        return answer  # type: ignore[no-any-return]

    def runs(self, query: dict[str, Any]) -> dict[str, Any]:
        return self.call("GET", "/runs", query=query, expect=("runs",))  # type: ignore[no-any-return]

    def trace(self, run_id: str) -> dict[str, Any]:
        answer = self.run_call("GET", run_id, "/trace", expect=("run_id", "spans", "roots"))
        return answer  # type: ignore[no-any-return]

    def paused(self, limit: int, cursor: str | None, run_id: str | None) -> dict[str, Any]:
        query = {"limit": limit, "cursor": cursor, "run_id": run_id}
        return self.call("GET", "/paused", query=query, expect=("paused",))  # type: ignore[no-any-return]

    def flows(self) -> list[str] | None:
        """The ids of the flows registered on the server."""
        return [flow["id"] for flow in self.call("GET", "/flows", expect=("flows",))["flows"]]

    def run_call(
        self,
        method: str,
        run_id: str,
        suffix: str = "",
        *,
        expect: tuple[str, ...] = (),
        values: dict[str, Any] | None = None,
        body: Any = None,
        query: dict[str, Any] | None = None,
        longer: float = 0,
    ) -> Any:
        """``method /runs/<run_id><suffix>`` (with ``body``, as JSON, if any); a 404 that says
        there is no such run says it in plain words (another 404, a route this server lacks,
        keeps the server's words). ``longer``: seconds the server may hold the answer back."""
        try:
            path = f"/runs/{urllib.parse.quote(run_id, safe='')}{suffix}"
            return self.call(
                method, path, body, query=query, expect=expect, values=values, longer=longer
            )
        except ApiError as refused:
            # a part's id (a child workflow's, "<run>.f7"): the server's words name its run
            if refused.status == 404 and refused.slug == "not-found" and "." not in run_id:
                raise ApiError(
                    f"no run {run_id!r} on this server; 'cronflow-actors runs' lists the runs",
                    exit_code=Exit.NOT_FOUND_OR_CONFLICT,
                    status=404,
                    slug="not-found",
                ) from None
            raise

    def paused_run(self, run_id: str) -> dict[str, Any] | None:
        """The pause a run waits in (with its resume token), or None: ``GET /runs/{id}/pause``,
        one read however many runs are paused."""
        try:
            pause = self.run_call("GET", run_id, "/pause", expect=("token", "step"))
        except ApiError as refused:
            if refused.status == 404 and refused.slug == "not-paused":
                return None
            raise
        return pause  # type: ignore[no-any-return]


def _is_json(kind: str) -> bool:
    """``application/json``, or a JSON kind such as ``application/problem+json``."""
    return kind == "application/json" or kind.endswith("+json")
