"""The root of the tree; errors of configuration, definitions, handlers and the actor kernel."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable


def clipped(value: object, limit: int = 120) -> str:
    """``repr(value)`` for a message, cut to about ``limit`` characters: a name or id a client
    sent may be of any length, and its error should not echo 100 KB back."""
    text = repr(value)
    if len(text) <= limit:
        return text
    # the value's own length: a string's, not its repr's with quotes and escapes (a
    # 500-character id read "502 characters": hostile h36 F4)
    size = len(value) if isinstance(value, str | bytes) else len(text)
    return f"{text[: limit - 30]}... ({size} characters)"


def did_you_mean(word: str, words: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``words`` to a ``word`` that is not among
    them, or "" (none close enough, or ``word`` is one of them)."""
    known = list(words)
    close = [] if word in known else difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


LINE_BREAKS = {
    code: repr(chr(code))[1:-1]
    for code in (
        *range(0x20),  # the C0 controls (a tab stays: it starts no line)
        *range(0x7F, 0xA0),  # DEL, the C1 controls (NEL, a one-byte CSI)
        0x2028,
        0x2029,
        *range(0x202A, 0x202F),  # the bidi controls that turn a line around as it is shown
        *range(0x2066, 0x206A),
        0x061C,  # and the bidi marks, as the console shows them (review h34 F9)
        0x200E,
        0x200F,
    )
    if code != 0x09
}
"""What ``one_line`` writes as escapes: what ends a line (every break ``str.splitlines``
knows), a control character a terminal acts on (ESC, BEL, backspace; a NUL makes a log a
binary file to ``grep``), and a bidi control."""


def one_line(text: object) -> str:
    """``text`` for a log line: its line breaks (every one ``str.splitlines`` knows) and the
    terminal's escape character written as escapes (``\\n``, ``\\u2028``), so an error's
    message (a payload's value in it, which a webhook's sender chose) cannot start a line that
    reads as the server's own (hostile h32 L6, review h32 F8)."""
    return str(text).translate(LINE_BREAKS)


def described(error: BaseException) -> str:
    """``Type: message`` of a failure, as its record keeps it, with the notes added to it
    (``add_note``: the pause callback that raised it, ``flow/waits.py``)."""
    notes = getattr(error, "__notes__", None)
    said = f"{type(error).__name__}: {error}"
    return f"{said} ({'; '.join(map(str, notes))})" if notes else said


def class_name(error: BaseException) -> str:
    """The qualified name of ``error``'s class (``module.Name``), as a failure records it."""
    return f"{type(error).__module__}.{type(error).__qualname__}"


_PATH_IN_ERROR = re.compile(r" - at `(?P<path>[^`]+)`$")


def validation_path(error: Exception) -> str:
    """The JSON path (``$.items[0].sku``) of the field a msgspec schema refused, as its error
    says it; ``$`` for the whole value."""
    said = str(error)
    match = _PATH_IN_ERROR.search(said)
    path = match.group("path") if match else "$"
    unknown = _UNKNOWN_FIELD.match(said)  # the field's own path, not its object's: "$" for a
    if unknown is not None:  # field at the top (newcomer h36 F10)
        name = unknown.group(1)  # ("a.b", "x y" or "café" in brackets: retest h36 R4)
        path = f"{path}.{name}" if _NAME.fullmatch(name) else f"{path}[{json.dumps(name)}]"
    return path


_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(.*?)`(?: - at `|$)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""A field name a JSON path writes after a dot (another goes in brackets, quoted)."""


class CronflowError(Exception):
    """Base of every error raised by cronflow-actors."""


class ConfigurationError(CronflowError, ValueError):
    """A store, runtime or actor system was given an option it cannot use."""

    def __init__(
        self,
        setting: str,
        value: object,
        expected: str,
        *,
        named: str = "setting",
        said: str | None = None,
    ) -> None:
        """``named``: what ``setting`` is to whoever gave it (a command's ``argument``);
        ``said``: the whole message, where "has the value ..." would not read (a choice left
        out, over HTTP or on the command line)."""
        self.setting, self.value, self.expected = setting, value, expected
        shown = f"{named} {setting!r} has the value {clipped(value)}; expected {expected}"
        super().__init__(said or shown)


class AppLoadError(ConfigurationError):
    """The app ``serve`` was given raised while it was imported (a syntax error, a missing
    import): ``where`` it raised (``file, line N``, or empty) and what."""

    def __init__(self, app: str, where: str, error: BaseException) -> None:
        detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        if isinstance(error, SyntaxError) and error.msg:
            detail = f"SyntaxError: {error.msg}"
        shown = f"{where}: " if where else ""
        CronflowError.__init__(
            self,
            f"cannot load the app {app!r}: {shown}{detail}; fix the code there (importing it "
            "in Python shows the same error with its traceback)",
        )
        self.setting, self.value, self.expected = "APP", app, "an app whose code imports"


class MissingSecretError(ConfigurationError, LookupError):
    """A flow's secret reads an unset environment variable (at ``register`` or in a step)."""

    def __init__(self, workflow: str, missing: list[tuple[str, str]]) -> None:
        self.workflow, self.missing = workflow, list(missing)  # (secret key, variable) pairs
        names = ", ".join(f"{key!r} (${variable})" for key, variable in self.missing)
        CronflowError.__init__(
            self,
            f"flow {workflow!r}: the secrets {names} read environment variables that are not "
            "set; set them in the runtime's environment and register the flow again",
        )
        self.setting, self.expected = "secrets", "environment variables that are set"
        self.value = [key for key, _ in self.missing]


class DuplicateWorkflowError(ConfigurationError):
    """Two different definitions were registered under one workflow name and version (a flow's
    id and version): most often a copied definition whose id was not changed."""

    def __init__(self, name: str, version: str) -> None:
        CronflowError.__init__(
            self,
            f"workflow {name!r} version {version!r} is registered already, with another "
            "definition: two definitions share that id and version. Rename one "
            "(cf.define(id), net.workflow(name)), or give the new one a version of its own "
            "(version=...) to run beside the old",
        )
        self.setting, self.value = "workflow", f"{name} {version}"
        self.expected = "a name and version not registered yet"


class ActorSystemError(CronflowError):
    """Something went wrong in the actor kernel."""


class ActorSystemNotRunningError(ActorSystemError, RuntimeError):
    """An actor was spawned or looked up on an actor system that is not running."""

    def __init__(self, system: str, state: str, operation: str) -> None:
        self.system, self.state, self.operation = system, state, operation
        start = "start it with 'async with ActorSystem()' or system.start() inside a running loop"
        super().__init__(f"cannot {operation}: actor system {system!r} is {state}; {start}")


class ActorNameTakenError(ActorSystemError, ValueError):
    """An actor was spawned with a name a live actor of the same system already has."""

    def __init__(self, system: str, name: str) -> None:
        self.system, self.name = system, name
        advice = "choose another name or stop that actor first"
        taken = f"actor system {system!r} already has a live actor named {name!r}"
        super().__init__(f"{taken}; {advice}")


class WouldBlockLoopError(ActorSystemError, RuntimeError):
    """A blocking wait on a future was attempted on a thread that runs an event loop."""

    def __init__(self, what: str) -> None:
        self.what = what
        advice = "await it instead of calling .get()"
        super().__init__(f"{what} would block the running event loop; {advice}")


class WorkflowDefinitionError(CronflowError, ValueError):
    """A workflow definition cannot be built."""


class InvalidWorkflowError(WorkflowDefinitionError):
    """A workflow definition has problems, every one listed; nothing was registered."""

    def __init__(self, workflow: str, problems: list[str]) -> None:
        self.workflow, self.problems = workflow, list(problems)
        listing = "\n".join(f"  - {problem}" for problem in self.problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"workflow {workflow!r} has {count} {noun}:\n{listing}")


class InvalidRouteError(CronflowError, ValueError):
    """A task's router returned a route that is not one of the task's own successors."""

    def __init__(self, workflow: str, task: str, route: object, reason: str) -> None:
        self.workflow, self.task, self.route = workflow, task, route
        router = f"router of task {task!r} in workflow {workflow!r}"
        super().__init__(f"{router} returned {route!r}: {reason}")


class RetryRequested(CronflowError):
    """A handler wrapper asks for another attempt ``delay`` seconds from now (a timer)."""

    def __init__(self, delay: float, error: str) -> None:
        self.delay, self.error = delay, error
        super().__init__(f"retry in {delay} s after: {error}")


class StepTimeoutError(CronflowError, TimeoutError):
    """A step's handler ran past its ``timeout`` and was cancelled (a failed attempt)."""

    def __init__(self, step: str, seconds: float) -> None:
        self.step, self.seconds = step, seconds
        super().__init__(f"step {step!r} timed out after {seconds:g} s")


class CircuitOpenError(CronflowError):
    """A step's circuit breaker is open: this attempt failed at once, without running."""

    def __init__(self, workflow: str, step: str, failures: int, retry_in: float) -> None:
        self.workflow, self.step, self.failures, self.retry_in = workflow, step, failures, retry_in
        breaker = f"the circuit breaker of step {step!r} of {workflow!r}"
        wait = f"the step is not run for another {retry_in:g} s"
        super().__init__(f"{breaker} is open after {failures} failures in a row; {wait}")
