"""The client commands: they talk to a running ``serve`` over its HTTP API (``--url``)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from cronflow_actors.errors import ApiError  # defined with every other error; importable here too

__all__ = ["ApiError", "Client", "render_run"]


class Client:
    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def call(
        self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None
    ) -> Any:
        target = self.url + path
        if query:
            target += "?" + urllib.parse.urlencode(
                {k: v for k, v in query.items() if v is not None}
            )
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(target, data=data, method=method)
        request.add_header("content-type", "application/json")
        if self.token:
            request.add_header("authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            try:
                message = json.loads(detail).get("detail", detail)  # an RFC 9457 problem
            except (ValueError, AttributeError):
                message = detail
            raise ApiError(f"{method} {path} -> {error.code}: {message}") from None
        except urllib.error.URLError as error:
            raise ApiError(
                f"cannot reach {self.url}: {error.reason}; is 'cronflow-actors serve' running?"
            ) from None

    def wait(self, run_id: str, poll: float = 0.1) -> Any:
        while True:
            run = self.call("GET", f"/runs/{run_id}")
            if run["status"] in ("completed", "failed", "canceled"):
                return run
            time.sleep(poll)


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "..."


def render_run(run: dict[str, Any]) -> str:
    """A readable tree of a run: its status, then each step with state, attempts, time, output."""
    lines = [f"run {run['id']}  {run['workflow']}  {run['status']}"]
    if run.get("error"):
        lines.append(f"  error: {run['error']}")
    steps = run.get("steps", [])
    for index, step in enumerate(steps):
        branch = "└─" if index == len(steps) - 1 else "├─"
        took = ""
        if step.get("started_at") and step.get("finished_at"):
            took = f" {1000 * (step['finished_at'] - step['started_at']):.1f} ms"
        again = step.get("redispatches") or 0
        note = f" (dispatched again after {again} restart{'s' * (again > 1)})" if again else ""
        lines.append(
            f"  {branch} {step['id']} [{step['kind']}] {step['status']}"
            f" attempts={step['attempts']}{note}{took}  -> {_short(step.get('output'))}"
        )
        if step.get("error"):
            lines.append(f"  {'  ' if branch == '└─' else '│ '}   error: {step['error']}")
    lines.append(f"  output: {_short(run.get('output'), 200)}")
    return "\n".join(lines)
