"""The edges' errors: the CLI's refused calls, a flow test's unmet expectations, HTTP problems."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cronflow_actors.errors._base import CronflowError


class ApiError(CronflowError):
    """A CLI command's call to a running ``serve`` was refused, or it could not be reached.
    The message says what to do; ``status`` is the HTTP status (0: no answer), ``slug`` the
    problem's type, and ``exit_code`` the code the command exits with (``cli/exits.py``)."""

    def __init__(
        self, message: str, *, status: int = 0, slug: str = "", exit_code: int = 2
    ) -> None:
        super().__init__(message)
        self.status, self.slug, self.exit_code = status, slug, exit_code


class ServerUnreachableError(ApiError):
    """No server answered a CLI command's call (refused, reset, timed out): ``reason`` says how
    (``run`` waits through a restart on it: cli/follow.py)."""

    def __init__(self, url: str, reason: object, *, exit_code: int = 4) -> None:
        super().__init__(
            f"cannot reach the server at {url} ({reason}). Is 'cronflow-actors serve' running "
            "there? Pass --url (or set CRONFLOW_URL) to use another one.",
            exit_code=exit_code,
        )
        self.reason = reason


class ExpectationError(AssertionError):
    """Steps of a ``flow.test()`` run did not end as expected (``unmet`` lists each)."""

    def __init__(self, unmet: list[str], result: Any) -> None:
        self.unmet, self.result = unmet, result
        listing = "\n".join(f"  - {line}" for line in unmet)
        ended = f"run {result.run_id} ended {result.status}"
        super().__init__(f"{ended}; unmet expectations:\n{listing}")


_Headers = Mapping[str, str] | None


class Problem(Exception):
    """Raised by an HTTP route to answer with a problem (``slug`` names its type)."""

    def __init__(
        self, status: int, slug: str, detail: str, *, headers: _Headers = None, **fields: Any
    ) -> None:
        super().__init__(detail)
        self.status, self.slug, self.detail = status, slug, detail
        self.headers = dict(headers or {})
        self.fields = fields
