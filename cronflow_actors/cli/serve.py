"""``cronflow-actors serve [APP]``: the runtime behind HTTP, until SIGTERM or SIGINT.

APP is ``module:attribute`` (a ``Runtime``, a list of workflows: ``cf.define`` flows or net
specs, or one of them) or the path of a Python file with a ``workflows`` list; by default the
bundled examples. A module is imported with the current folder first on ``sys.path``, a file
with its own folder first (as ``python path/file.py`` runs it), so the modules beside it import.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import json
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

from cronflow_actors.cli.app_runtime import runtime_of
from cronflow_actors.errors import (
    LINE_BREAKS,
    AppLoadError,
    ConfigurationError,
    CronflowError,
    StartGivenUpError,
)
from cronflow_actors.http.requests import masked

__all__ = ["DEFAULT_APP", "load_app", "serve"]

DEFAULT_APP = "cronflow_actors.examples.order_processing:workflows"


def load_app(spec: str) -> Any:
    """The object APP names (see the module docstring)."""
    if spec.endswith(".py") or Path(spec).is_file():
        path = Path(spec)
        if not path.is_file():
            raise ConfigurationError("APP", spec, "an existing Python file or module:attribute")
        # a module of its own name, in sys.modules while it runs, as an import makes it: a
        # dataclass or a msgspec type under ``from __future__ import annotations`` looks its
        # annotations up there (newcomer h30 F1); a name another module has keeps that one
        name = path.stem if path.stem not in sys.modules else f"cronflow_app_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ConfigurationError("APP", spec, "a Python file that can be imported")
        module = importlib.util.module_from_spec(module_spec)
        # its folder first, as ``python path/file.py`` puts it, so ``from helpers import x``
        # finds the file beside it; kept there, as Python keeps it, for an import a step
        # makes later
        _first_on_path(path.resolve().parent)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as error:
            del sys.modules[name]
            raise _load_error(spec, error) from error
        attribute = "workflows"
    else:
        module_name, _, attribute = spec.partition(":")
        if not module_name or not attribute:
            raise ConfigurationError("APP", spec, "module:attribute or a path to a .py file")
        if module_name.endswith(".py") and Path(module_name).is_file():
            named = f"{Path(module_name).stem}:{attribute}"
            raise ConfigurationError(
                "APP",
                spec,
                f"module:attribute ({named}, run from the file's folder) or a path to a .py "
                "file, which serves its 'workflows' (a path takes no :attribute)",
            )
        _first_on_path(Path.cwd())
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is None or not _names_part_of(error.name, module_name):
                raise _load_error(spec, error) from error  # an import inside the module
            raise ConfigurationError("APP", spec, f"an importable module ({error})") from None
        except Exception as error:
            raise _load_error(spec, error) from error
    try:
        return getattr(module, attribute)
    except AttributeError:
        found = [f"{module.__name__}:{name}" for name in _workflow_names(module)]
        hint = f" (it defines {', '.join(found)}: serve one of those)" if found else ""
        raise ConfigurationError(
            "APP", spec, f"a module that defines {attribute!r}{hint}"
        ) from None


def _workflow_names(module: Any) -> list[str]:
    """The names in ``module`` that hold what serve takes (a runtime, a flow or net, or a list
    of them), for the error that says APP names none."""
    from cronflow_actors.runtime import WORKFLOWS, Runtime

    served = (*WORKFLOWS, Runtime)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (
            isinstance(value, served)
            or (isinstance(value, list) and value and all(isinstance(v, served) for v in value))
        )
    ]


def _load_error(app: str, error: BaseException) -> AppLoadError:
    return AppLoadError(app, _where(error), error)


def _where(error: BaseException) -> str:
    """``file, line N`` of what raised, in the app's own code: a syntax error's place, or the
    last frame in the folder of the app's module (the first frame after the import machinery)
    that is not cronflow-actors' own (a ``json.loads`` or a flow's ``build()`` that raised is
    reported where the app called it); empty if no frame is known."""
    if isinstance(error, SyntaxError) and error.filename:
        return f"{error.filename}, line {error.lineno}"
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith(("<frozen ", _IMPORTLIB)) and frame.filename != __file__
    ]
    if not frames:
        return ""
    home = Path(frames[0].filename).resolve().parent
    own = [
        frame
        for frame in frames
        if Path(frame.filename).resolve().is_relative_to(home)
        and not Path(frame.filename).resolve().is_relative_to(_PACKAGE)
    ] or frames[:1]
    return f"{own[-1].filename}, line {own[-1].lineno}"


_IMPORTLIB = str(Path(importlib.__file__).parent)  # (importlib.import_module's own frame)
_PACKAGE = Path(__file__).resolve().parents[1]
"""cronflow-actors' own code (its frames are never the app's line)."""


def _names_part_of(missing: str, module_name: str) -> bool:
    """Whether the module that was not found is ``module_name`` or a package above it (APP
    names no module there), not one that its code imports."""
    return module_name == missing or module_name.startswith(missing + ".")


def _first_on_path(folder: Path) -> None:
    """Put ``folder`` first on ``sys.path`` (once: loading an app again adds nothing)."""
    entry = str(folder)
    if sys.path[:1] != [entry]:
        sys.path.insert(0, entry)


_OWN_FILES = 256
"""Files the process keeps open besides its connections: the database's, the log, what steps
open (sockets to other services, files), the blocking pool's."""


def _open_files(max_connections: int) -> int:
    """Raise the process's soft limit of open files to its hard one: a soft limit of 1024 (many
    systems' default) ran out under ``--max-connections`` half-sent requests before that limit
    did: ``/healthz`` went unanswered and steps that opened a socket failed with EMFILE, with
    nothing in the log (hostile h39 F1). A hard limit too low for the connections is said, and
    the connections taken at once are fewer: what it answers."""
    try:
        import resource
    except ImportError:  # (not on Windows)
        return max_connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(soft, 65536) if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    if soft == resource.RLIM_INFINITY or soft >= max_connections + _OWN_FILES:
        return max_connections
    taken = max(1, soft - _OWN_FILES)  # the files run out after the connections, not before
    logging.getLogger("cronflow_actors.serve").warning(
        "this process may open %d files (its hard limit, ulimit -Hn), under --max-connections "
        "%d and the %d more it keeps for the database, the log and what steps open: it takes "
        "%d connections at once (raise the limit: systemd LimitNOFILE=, docker --ulimit "
        "nofile=; or lower --max-connections)",
        soft,
        max_connections,
        _OWN_FILES,
        taken,
    )
    return taken  # (retest h39: with a hard limit of 1,024 /healthz still went unanswered)


def serve(settings: Any, *, process_ends: bool = False) -> int:
    """Run the server with ``settings`` (a ``Config``) until SIGTERM/SIGINT. Exit codes: 0 after
    a clean stop, 1 when the runtime failed while serving (its store broke, its lease was
    taken), 2 when it could not start (another runtime owns the database, say).
    ``process_ends``: the process exits with that code (the CLI), so the stop signals are
    ignored once the server has stopped rather than given back."""
    from cronflow_actors.http.app import create_app, metrics_app
    from cronflow_actors.http.hosts import allowed_hosts_for
    from cronflow_actors.http.instrumentation import RequestMetrics
    from cronflow_actors.http.server import ServerLimits, run_servers
    from cronflow_actors.runtime.collector import tune_collector
    from cronflow_actors.runtime.event_loop import loop_factory

    _configure_logging(settings.log_level, settings.log_format)
    tune_collector(settings.gc_threshold)
    connections = _open_files(settings.max_connections)
    _warn_of(settings)
    loop, make_loop = loop_factory(settings.loop)
    logging.getLogger("cronflow_actors.serve").info(
        "event loop: %s (the loop setting: %s)", loop, settings.loop
    )
    app_spec = settings.app or DEFAULT_APP
    target = load_app(app_spec)
    runtime = runtime_of(settings, target, app_spec)
    _say_database(runtime.store, "db= to the Runtime APP builds" if target is runtime else "--db")
    separate_metrics = settings.metrics_port is not None
    allowed_hosts = allowed_hosts_for(settings.host, settings.allowed_hosts)
    app = create_app(
        runtime,
        max_body=settings.max_body,
        max_json_depth=settings.max_json_depth,
        body_timeout=settings.body_timeout,
        tokens=settings.principals(),
        read_only_tokens=settings.read_only_tokens(),
        metrics_token=settings.metrics_token,
        serve_metrics=not separate_metrics,
        drain=settings.drain_timeout,
        allowed_hosts=allowed_hosts,
        long_polls=connections // 2,  # (of one: none waits, retest2 h33 F5)
    )
    explained = _ExplainedStartFailure(app)
    failed_start = explained.failed_start
    failed: list[BaseException] = []
    servers: list[Any] = []

    def stop_serving(error: BaseException) -> None:
        failed.append(error)
        for server in servers:
            server.stop()

    runtime.on_failure(stop_serving)
    limits = ServerLimits(
        header_timeout=settings.header_timeout,
        send_timeout=settings.send_timeout,
        keep_alive=settings.keep_alive,
        max_connections=connections,
        drain_timeout=settings.drain_timeout,
    )
    metrics = None
    if separate_metrics:
        metrics = (
            metrics_app(runtime, metrics_token=settings.metrics_token, allowed_hosts=allowed_hosts),
            settings.metrics_port,
        )
    try:
        uvicorn_log.addFilter(explained)
        run_servers(
            app,
            host=settings.host,
            port=settings.port,
            limits=limits,
            log_level=settings.log_level,
            on_abort=runtime.abort_drain,
            on_drain=runtime.begin_drain,
            metrics=metrics,
            started=servers.append,
            loop_factory=make_loop,
            count_too_busy=functools.partial(
                RequestMetrics, metrics=runtime.metrics, routes=app.routes
            ),
            process_ends=process_ends,
        )
    except ConfigurationError as refused:  # it could not listen: the runtime never started
        flag = "--" + refused.setting.replace("_", "-")
        port = settings.port if refused.setting == "host" else refused.value
        advice = ""
        if refused.setting != "host":
            advice = (
                f"; pass another {flag} (PORT=... with make run), or stop the process that "
                "listens there"
            )
        print(
            f"cronflow-actors: error: could not listen on {settings.host}:{port} "
            f"({flag}): expected {refused.expected}{advice}",
            file=sys.stderr,
        )
        return 2
    except SystemExit as stopped:  # uvicorn's way to say it could not start
        if not failed_start:
            print(
                f"cronflow-actors: error: the server stopped (exit {stopped.code})", file=sys.stderr
            )
            return 2
    finally:  # another serve() in this process (tests) must not keep this one's filter
        uvicorn_log.removeFilter(explained)
    return _ended(failed_start, failed)


def _ended(failed_start: list[BaseException], failed: list[BaseException]) -> int:
    """``serve``'s exit code once uvicorn has stopped, said on stderr unless it is 0."""
    if failed_start and isinstance(failed_start[0], StartGivenUpError):  # (chaos h35 F2)
        logging.getLogger("cronflow_actors.serve").info("%s; exiting", failed_start[0])
        return 0  # a standby stopped as it waited: a clean stop
    if failed_start:
        # The runtime did not start (another runtime owns the database, say): uvicorn has
        # logged it; say it plainly and exit as for bad settings.
        print(f"cronflow-actors: error: {failed_start[0]}", file=sys.stderr)
        return 2
    if failed:
        print(f"cronflow-actors: the runtime failed: {failed[0]}", file=sys.stderr)
        return 1
    return 0


def _warn_of(settings: Any) -> None:
    """Warn of settings that leave the server open: tokens short enough to guess, and none at
    all on an address others reach (devx h43 F7: not a word)."""
    from cronflow_actors.runtime.addresses import is_loopback

    log = logging.getLogger("cronflow_actors.serve")
    for warning in settings.short_tokens():
        log.warning("%s", warning)
    if not settings.tokens and not is_loopback(settings.host):
        log.warning(
            "listening on %s with no tokens: whoever reaches it may start, cancel and resume "
            "runs; give the --config file a [tokens] table (README: Serving over HTTP, Tokens)",
            settings.host,
        )


def _say_database(store: Any, where_given: str) -> None:
    """Which database this process serves, and a warning when it keeps nothing: a 202 says a
    run is durable, which in memory it is not (``where_given``: where a file is named)."""
    from cronflow_actors.runtime.database import describe

    log = logging.getLogger("cronflow_actors.serve")
    where = describe(store)
    if where is None:
        log.warning(
            "database: in memory: nothing is kept when this process stops, so a 202 here does "
            "not outlive a restart; give %s a file for durable runs",
            where_given,
        )
    else:
        log.info("database: %s", where)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in ("run_id", "workflow", "step"):  # a flow's .log() lines say whose they are
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        request = _access(record)
        if request is not None:  # an access line's parts, as fields a log search can filter on
            entry.update(zip(("client", "method", "path", "status"), request, strict=True))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class _TextFormatter(logging.Formatter):
    """A record per line: its first line at the start, the lines after it (a traceback, a
    message of several lines) indented, and a control character, a line break other than
    ``\\n`` or a bidi control written as an escape. An exception's message ends its traceback
    as raised, so a sender's line breaks in it (a payload quoted) wrote a line that read as the
    server's own, and a NUL made the log a binary file to ``grep`` (hostile h33 L1)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).translate(_ODD_CHARACTERS)
        return text.replace("\n", "\n    ") if "\n" in text else text


_ODD_CHARACTERS = {c: escape for c, escape in LINE_BREAKS.items() if c != ord("\n")}
"""Written as escapes in the text log: what ``one_line`` escapes but a newline (review h33 F7:
a terminal's BEL, backspace and one-byte CSI were written as they were)."""


uvicorn_log = logging.getLogger("uvicorn.error")


class _ExplainedStartFailure(logging.Filter):
    """Where ``app``'s lifespan reports a runtime that did not start (``failed_start``), and,
    on uvicorn's log while ``serve`` runs, a filter: a start that failed for a reason the
    runtime explains (another runtime owns the database, a bad setting: a ``CronflowError``)
    is said once, plainly, by ``serve``; the traceback uvicorn logs for it says nothing more
    and buries the advice. Any other failure (a fault) keeps its traceback."""

    def __init__(self, app: Any) -> None:
        super().__init__()
        self.failed_start: list[BaseException] = []
        app.state.on_start_failure = self.failed_start.append

    def filter(self, record: logging.LogRecord) -> bool:
        explained = [e for e in self.failed_start if isinstance(e, CronflowError)]
        if not explained or record.levelno < logging.ERROR:
            return True
        if isinstance(explained[0], StartGivenUpError):  # a stop, no failure (retest h35 L3:
            return False  # "ERROR Application startup failed" fired the log alerts)
        message = record.getMessage()
        if message.startswith("Application startup failed"):  # (said first, before the
            return False  # reason serve then gives: newcomer h42 F5)
        if not message.startswith("Traceback (most recent call last)"):
            return True
        return not any(f"{type(e).__name__}: " in message for e in explained)


class _MaskTokens(logging.Filter):
    """Resume tokens are secrets: a log line (the access log's, any other's) shows
    ``/resume/***``, never the token."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, str) and "/resume/" in a for a in args):
            record.args = tuple(masked(a) if isinstance(a, str) else a for a in args)
        if isinstance(record.msg, str) and "/resume/" in record.msg:
            record.msg = masked(record.msg)
        return True


def _access(record: logging.LogRecord) -> tuple[str, str, str, int] | None:
    """An access line's client, method, path and status (uvicorn's arguments), or None."""
    args = record.args
    if record.name != "uvicorn.access" or not isinstance(args, tuple) or len(args) != 5:
        return None
    client, method, path, _version, status = args
    if not isinstance(status, int):
        return None
    return str(client), str(method), str(path), status


_PROBES = frozenset({"/metrics", "/healthz", "/readyz"})


class _QuietProbes(logging.Filter):
    """Scrapes and health checks that succeed are not access lines (one a second a scraper,
    86,400 a day, drowning the rest) unless the log level is debug; any that fails still is."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = _access(record)
        if request is None or logging.getLogger().level <= logging.DEBUG:
            return True
        _client, method, path, status = request
        probe = method in ("GET", "HEAD") and path.split("?")[0] in _PROBES
        return not (probe and status < 400)


def _configure_logging(level: str, style: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_MaskTokens())
    handler.addFilter(_QuietProbes())
    if style == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiosqlite logs every statement, with its parameters, at debug level
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, root.level))
