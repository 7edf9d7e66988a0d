"""Settings of the long-lived process: a TOML file, then ``CRONFLOW_*`` environment variables,
then command-line flags, each overriding the one before; decoded (and checked) with msgspec.

    # cronflow.toml
    db = "cronflow.db"
    port = 8000
    log_format = "json"
    [tokens.t-3f9a]                     # Authorization: Bearer t-3f9a
    id = "ada"
    scopes = ["review:write"]
    [tokens.t-77c1]                     # GET and HEAD only (403 read-only-token otherwise)
    id = "grafana"
    read_only = true
    [queues]                            # named queues' concurrency (define(..., queue="emails"))
    emails = 5

``queues`` is read from the file and from ``--queue NAME=N`` flags (which add to or override
the file's), not from the environment.

A refusal names the setting, where its value came from (the file's path, the variable, the
flag), the value and what is taken instead; a name the file has that is no setting is refused
too (a typo would otherwise leave the default in force, unsaid). ``retention``, whose value
decides what is deleted, takes a duration with its unit only (``deletion_age``).
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import msgspec

from cronflow_actors.errors import ConfigurationError
from cronflow_actors.messages import Principal
from cronflow_actors.runtime.addresses import check_host, check_url
from cronflow_actors.runtime.collector import DEFAULT_GC_THRESHOLD, MAX_GC_THRESHOLD
from cronflow_actors.runtime.database import file_path
from cronflow_actors.runtime.event_loop import LoopName
from cronflow_actors.runtime.ownership import LEASE_RANGE, LEASE_SECONDS

__all__ = ["SECONDS", "Config", "TokenConfig", "check_queue_limits", "deletion_age", "load_config"]

_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")
UNIT_EXAMPLES = "'7d', '12h', '30m' or '90s'"


def deletion_age(value: object, setting: str) -> float:
    """Seconds in ``value``, an age past which finished runs are deleted (``retention``,
    ``db prune --older-than``): a number with its unit (``"7d"``, ``"12h"``, ``"30m"``,
    ``"90s"``; ``ms`` and ``w`` too), or 0. A bare number is refused, though a flow's durations
    read it as seconds: ``7`` meant as days would delete runs minutes old, and nothing undoes a
    deletion. Zero needs no unit. Raises ``ValueError`` naming ``setting``."""
    from cronflow_actors.net.durations import parse_duration

    if isinstance(value, int | float) and not isinstance(value, bool) and value == 0:
        return 0.0
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.match(value)):
        if isinstance(value, str) and float(value) == 0:
            return 0.0
        raise ValueError(
            f"{setting} {value!r} has no unit, and a bare number here would be read as seconds "
            f"(finished runs older than it are deleted): give one, such as {UNIT_EXAMPLES}"
        )
    try:
        return parse_duration(value, setting)
    except ValueError:
        raise ValueError(
            f"{setting} {value!r} is not a duration with its unit, such as {UNIT_EXAMPLES}"
        ) from None


class TokenConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    scopes: list[str] = msgspec.field(default_factory=list)
    read_only: bool = False  # GET and HEAD only: a dashboard's, a watcher's console

    def __post_init__(self) -> None:
        if not self.id.strip():  # (a principal "" started runs and items: hostile h39 F2)
            raise ValueError("its id must name someone (it is empty)")


_BEARER = re.compile(r"[\x21-\x7e]+")
"""What a client can send as ``Authorization: Bearer <token>``: visible ASCII, no space (RFC
6750's b64token is narrower, but tokens like ``p@ss:word#1`` worked before: review h39 F4)."""


def _sendable(token: str) -> str:
    """What a token must be, and what this one is not, not shown (hostile h45 F10)."""
    wrong = "this one holds a space, or a character that is not visible ASCII"
    if not token.strip():
        wrong = "this one is empty or blank: is a variable the settings read unset?"
    need = "a token a client can send as 'Authorization: Bearer <token>' (visible ASCII, no space)"
    return f"{need}: {wrong}"


SHORT_TOKEN = 16
"""Characters under which ``serve`` warns that a token may be guessed (``token_urlsafe(32)``,
the README's, has 43)."""


def sendable(secret: str) -> bool:
    """A token a client can send: a blank one ("${API_TOKEN}" with the variable unset) locked
    every route, a space in one locked /metrics, and nothing said why (hostile h39 F2)."""
    return _BEARER.fullmatch(secret) is not None


SECONDS = (
    "lease_seconds",
    "header_timeout",
    "body_timeout",
    "send_timeout",
    "keep_alive",
    "drain_timeout",
)
"""The settings counted in seconds: each a finite number > 0."""


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    app: str | None = None
    db: str = "cronflow.db"
    host: str = "127.0.0.1"
    port: int = 8000
    synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"
    max_body: int = 1_000_000
    max_json_depth: int = 64
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    send_timeout: float = 30.0
    """Seconds an answer may wait in the server's buffers with its client taking none of it;
    then the connection is dropped (``http/server.py``)."""
    keep_alive: float = 5.0
    max_connections: int = 1000
    drain_timeout: float = 30.0
    retention: str = "30d"
    metrics_token: str | None = None
    metrics_port: int | None = None
    allowed_hosts: list[str] = msgspec.field(default_factory=list)
    """Host names the server answers to besides its own (``http/hosts.py``: on a loopback
    address, localhost and 127.0.0.1; ``"*"``: any); ``--allowed-host``, or comma-separated in
    ``CRONFLOW_ALLOWED_HOSTS``."""
    lease_seconds: float = 5.0
    wait_for_lease: bool = False
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: Literal["text", "json"] = "text"
    url: str = "http://127.0.0.1:8000"
    token: str | None = None
    tokens: dict[str, TokenConfig] = msgspec.field(default_factory=dict)
    queues: dict[str, int] = msgspec.field(default_factory=dict)
    otel_endpoint: str | None = None
    audit: bool = True
    """Record every engine operation as a span (``Runtime(audit=...)``; ``--no-audit``)."""
    gc_threshold: int = DEFAULT_GC_THRESHOLD
    """The garbage collector's youngest-generation threshold in ``serve``'s process
    (``runtime/collector.py``; 0: CPython's own, 700)."""
    max_active_runs: int | None = None
    """New runs start only while fewer than that many are in memory; the others wait in line
    (``Runtime(max_active_runs=...)``, ``runtime/admission.py``; None: no limit)."""
    loop: LoopName = "auto"
    """``serve``'s event loop: uvloop when installed (``auto``), ``asyncio``'s own, or
    ``uvloop`` (``runtime/event_loop.py``)."""
    given: frozenset[str] = frozenset()
    """The settings a file, a variable or a flag gave, not their defaults (``load_config``
    sets it; no setting itself): ``--db cronflow.db`` given is not one left out (h42 N2)."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0-65535, got {self.port}")
        if self.max_body < 1:
            raise ValueError(f"max_body must be >= 1 byte, got {self.max_body}")
        for name in ("max_json_depth", "max_connections"):  # (each named: devx h43 F13)
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in SECONDS:  # nan passes "<= 0"; inf never ends (a lease of inf: never free)
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(
                    f"{name} must be a finite number of seconds > 0, got {getattr(self, name)}"
                )
        if not LEASE_SECONDS[0] <= self.lease_seconds <= LEASE_SECONDS[1]:
            raise ValueError(f"lease_seconds must be {LEASE_RANGE}, got {self.lease_seconds}")
        if not 0 <= self.gc_threshold <= MAX_GC_THRESHOLD:
            raise ValueError(
                f"gc_threshold must be 0 (CPython's own) to {MAX_GC_THRESHOLD:,}, "
                f"got {self.gc_threshold}"
            )
        if self.max_active_runs is not None and self.max_active_runs < 1:
            raise ValueError(f"max_active_runs must be >= 1 run, got {self.max_active_runs}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port must be 0-65535, got {self.metrics_port}")
        if self.metrics_port and self.metrics_port == self.port:  # both would bind it
            raise ValueError(
                f"metrics_port {self.metrics_port} is the API's port too: give /metrics a port "
                "of its own, or leave metrics_port unset to serve it on the API's port"
            )
        if self.metrics_token is not None and not sendable(self.metrics_token):  # ("" too)
            raise ValueError(f"metrics_token must be {_sendable(self.metrics_token)}")
        check_host(self.host)
        if not self.db.strip():  # said with no source (ops h41 F10)
            raise ValueError("db must name a database: ':memory:', a file's path or a URL")
        if self.app is not None and not self.app.strip():  # (served the bundled example on
            # the app's database: a template's unset CRONFLOW_APP, retest h44 N8)
            raise ValueError("app must name the app: a .py file or module:attribute")
        deletion_age(self.retention, "retention")  # "30d", "12h", "0" (keep forever)
        check_url(self.url)
        for name, limit in self.queues.items():
            if not name or limit < 1:
                raise ValueError(
                    f"queues: {name!r} = {limit} must name a queue and allow >= 1 run at once"
                )

    def principals(self) -> dict[str, Principal]:
        return {
            token: Principal(id=entry.id, scopes=frozenset(entry.scopes))
            for token, entry in self.tokens.items()
        }

    def short_tokens(self) -> list[str]:
        """A warning for each token under ``SHORT_TOKEN`` characters, for ``serve`` to log:
        taken (a rule that refused them would stop a server that ran), but one that short can
        be guessed (hostile h39 F2). The token itself is never said, its principal is."""
        short = [f"the token of {e.id!r}" for t, e in self.tokens.items() if len(t) < SHORT_TOKEN]
        if self.metrics_token is not None and len(self.metrics_token) < SHORT_TOKEN:
            short.append("metrics_token")
        return [
            f"{holder} has fewer than {SHORT_TOKEN} characters and could be guessed: use a long "
            "random one (python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            for holder in short
        ]

    def read_only_tokens(self) -> frozenset[str]:
        """The tokens that may only read (``read_only = true``)."""
        return frozenset(token for token, entry in self.tokens.items() if entry.read_only)


_SETTINGS = frozenset(Config.__struct_fields__) - {"given"}
_FIELDS = _SETTINGS - {"tokens", "queues"}
_HINTS = get_type_hints(Config)
_KINDS: dict[Any, str] = {
    int: "a whole number",
    float: "a number (of seconds)",
    str: "a string",
    bool: "true or false",
}
_TOKEN = "an id (a string), scopes (a list of strings) and read_only (true or false)"
_WORDS = {
    "tokens": f"a table of tokens, each with {_TOKEN}",
    "queues": "a table of queue names, each with a whole number of runs >= 1",
    "retention": f"a duration with its unit, as a string such as {UNIT_EXAMPLES}, or '0' "
    "to keep finished runs forever",
    # (said "a valid value": ops h41 F10)
    "allowed_hosts": 'a list of host names, as in allowed_hosts = ["api.example.com"] (the '
    "environment's CRONFLOW_ALLOWED_HOSTS takes them comma-separated)",
}


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """The settings from ``path`` (TOML), ``environ`` (``CRONFLOW_<FIELD>``) and ``overrides``
    (flags given, None meaning not given). A bad value, or a name in the file that is no
    setting, raises ``ConfigurationError`` naming its key, where it came from, and what is
    taken."""
    data: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if path is not None:
        loaded = _beside(_read(path), path)
        data.update(loaded)
        origin.update(dict.fromkeys(loaded, f"{path}"))
    for key, value in (environ if environ is not None else os.environ).items():
        if key.startswith("CRONFLOW_") and key[9:].lower() in _FIELDS:
            name = key[9:].lower()
            data[name] = _names(value) if name == "allowed_hosts" else value
            origin[name] = f"environment variable {key}"
        elif key.startswith("CRONFLOW_"):
            _check_variable(key, value)
    for key, value in (overrides or {}).items():
        if key == "queues" and value and isinstance(data.get("queues"), dict):
            data["queues"] = {**data["queues"], **value}  # flags add to the file's queues
            origin[key] = f"{origin.get(key, 'the settings')} and --queue"
        elif value is not None:
            data[key] = value
            origin[key] = f"--{key.replace('_', '-')}"
    _check_tables(data, origin)
    try:
        return msgspec.convert({**data, "given": list(origin)}, Config, strict=False)
    except msgspec.ValidationError as error:
        raise _refusal(str(error), data, origin) from None


_DATABASE_NAMES = frozenset(
    {"database", "database_url", "db_url", "db_path", "db_file", "dsn", "sqlite", "postgres_url"}
)


def _check_variable(key: str, value: str) -> None:
    """A ``CRONFLOW_*`` variable that is no setting: a table's (only the file takes those) or
    a setting's name misspelt is refused, where it would be ignored without a word; any other
    is another tool's (``CRONFLOW_ACTORS_COMPILE`` of the build), and left alone."""
    name = key[9:].lower()
    if name == "config":  # (ignored, serve ran the example on a new file: retest h44 N9)
        raise ConfigurationError(
            key,
            value,
            "unset: the settings file is given with --config FILE, not by the environment",
        )
    if name in ("tokens", "queues"):
        shown = "(not shown)" if name == "tokens" else value
        where = f"the --config file's [{name}] table"
        where += ", or --queue NAME=N flags" if name == "queues" else ""
        raise ConfigurationError(
            key, shown, f"unset: {name} are given in {where}, not by the environment"
        )
    names = [*_FIELDS, "tokens", "queues"]
    # a slip of the hand however short the name (PROT, DBB, ULR); longer ones by ratio; and
    # the database's names other tools use (DATABASE_URL): serve ran on a new empty file in
    # their place (devx h43 F4)
    close = [n for n in names if _one_edit(name, n)]
    close = close or difflib.get_close_matches(name, names, n=1, cutoff=0.85)
    close = close or (["db"] if name in _DATABASE_NAMES else [])
    if close:  # its value is not shown: a misspelt token's would be a secret
        setting = f"CRONFLOW_{close[0].upper()}"
        raise ConfigurationError(
            key, "(not shown)", f"a setting's name: did you mean {setting}? (no such setting)"
        )


def _one_edit(typed: str, name: str) -> bool:
    """Whether ``typed`` is ``name`` with two letters side by side swapped (PROT, ULR) or one
    letter doubled (DBB, PORTT): the slips of a hand, not another word (API, URI and DB1 are
    names of their own, left alone)."""
    if len(typed) == len(name) and typed != name:
        wrong = [i for i, (a, b) in enumerate(zip(typed, name, strict=True)) if a != b]
        first = wrong[0]
        return (
            wrong == [first, first + 1]
            and typed[first] == name[first + 1]
            and (typed[first + 1] == name[first])
        )
    if len(typed) == len(name) + 1:
        return any(
            typed[i] == typed[i - 1] and typed[:i] + typed[i + 1 :] == name
            for i in range(1, len(typed))
        )
    return False


def _names(value: str) -> list[str]:
    """A list setting from its environment variable: comma-separated, blanks dropped."""
    return [name.strip() for name in value.split(",") if name.strip()]


def _read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The settings of the TOML file ``path``; every name in it must be a setting."""
    try:
        loaded = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError("config", str(path), "an existing TOML file") from None
    except (OSError, UnicodeDecodeError) as error:  # a folder, no permission, not UTF-8
        reason = error.strerror if isinstance(error, OSError) else "it is not UTF-8 text"
        raise ConfigurationError(
            "config", str(path), f"a TOML file this user can read ({reason})"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError("config", str(path), f"valid TOML ({error})") from None
    unknown = sorted(set(loaded) - _SETTINGS)
    if unknown:
        first = unknown[0]
        close = difflib.get_close_matches(first, _SETTINGS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        names = ", ".join(map(repr, unknown))
        raise ConfigurationError(
            first,
            _shown(first, loaded[first], close),
            f"a known setting: {names} in {path} {'is' if len(unknown) == 1 else 'are'} "
            f"unknown{hint}; the settings are {', '.join(sorted(_SETTINGS))}",
        )
    return loaded


def _beside(loaded: dict[str, Any], path: str | os.PathLike[str]) -> dict[str, Any]:
    """The file's ``db`` and ``app`` paths, a relative one read from the file's folder, as a
    file beside it would be: they were read from the current folder, so a service started
    from ``/`` served another app or a new empty database (devx h43 F12). A URL, ``:memory:``
    and ``module:attribute`` are left as they are (a module is imported from the current
    folder)."""
    for key in ("db", "app"):
        value = loaded.get(key)
        if not isinstance(value, str) or not value or "://" in value or value == ":memory:":
            continue
        if key == "app" and not value.endswith(".py"):
            continue  # module:attribute
        given = file_path(value, key, source=str(path))  # (an app's "~/app.py": h44 N3)
        loaded[key] = os.fspath(given if given.is_absolute() else Path(path).parent / given)
    return loaded


def _check_tables(data: Mapping[str, Any], origin: Mapping[str, str]) -> None:
    """Refuse a bad entry of ``tokens`` or ``queues`` by its own name (the decoder names
    neither a table's key nor its value). A token's key is the secret itself: it is never
    shown, the entry is named by its place and its id."""
    for table in ("tokens", "queues"):
        entries = data.get(table)
        where = origin.get(table, "the settings")
        if entries is None:
            continue
        if not isinstance(entries, dict):
            shown = "(hidden)" if table == "tokens" else entries
            raise ConfigurationError(table, shown, f"{_WORDS[table]} (it came from {where})")
        for place, (key, entry) in enumerate(entries.items(), 1):
            if table == "queues":
                if isinstance(entry, bool) or not isinstance(entry, int) or entry < 1:
                    expected = f"a whole number of runs >= 1 (it came from {where})"
                    raise ConfigurationError(f"queues.{key}", entry, expected)
                continue
            name = f"tokens entry {place}"
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                name += f" (id {entry['id']!r})"
            try:
                msgspec.convert(entry, TokenConfig)
            except msgspec.ValidationError as error:
                reason, at = _AT.sub("", str(error)), _AT.search(str(error))
                field = f"{at.group('path')}: " if at else ""  # (read_only's was unsaid)
                expected = f"{_TOKEN}: {field}{reason} (it came from {where})"
                raise ConfigurationError(name, entry, expected) from None
            if not sendable(key):
                expected = f"as its key {_sendable(key)} (it came from {where})"
                raise ConfigurationError(name, "(hidden)", expected)


def _refusal(text: str, data: Mapping[str, Any], origin: Mapping[str, str]) -> Exception:
    """The ``ConfigurationError`` for the decoder's refusal ``text`` of ``data``."""
    match = _AT.search(text)
    key = (match.group("path") if match else "").split(".")[0].split("[")[0]
    checked = not key and text.split(" ", 1)[0] in Config.__struct_fields__
    if checked:
        key = text.split(" ", 1)[0]  # a check of __post_init__ names its field first
    where = origin.get(key, "the settings")
    if checked:
        expected = f"one that passes this check: {text} (it came from {where})"
    else:
        expected = f"{_kind(_HINTS.get(key), key)} (it came from {where})"
    return ConfigurationError(key or "config", _shown(key, data.get(key)), expected)


def _shown(key: str, value: Any, close: list[str] | None = None) -> Any:
    """A setting's value as a refusal shows it: a token's, a misspelt token's (``close``: the
    settings it may be) or one named like a secret is hidden, as refusals go to terminals and
    CI logs (devx h43 F5: ``tokn = "..."`` printed it; review h43 F4: ``api_key``)."""
    names = (key, *(close or ()))
    secret = any(word in name.lower() for name in names for word in _SECRET_WORDS)
    return "(hidden)" if secret else value


_SECRET_WORDS = ("tok", "secret", "pass", "key", "auth", "bearer", "cred")
"""In a setting's name, what makes its value a secret (token, tokens, metrics_token...)."""


def _kind(hint: Any, key: str) -> str:
    """What a setting of type ``hint`` takes, in words."""
    if key in _WORDS:
        return _WORDS[key]
    if get_origin(hint) is Literal:  # its values, to say which are taken
        return f"one of {', '.join(map(str, get_args(hint)))}"
    if get_origin(hint) in (Union, types.UnionType):
        given = [arg for arg in get_args(hint) if arg is not type(None)]
        if len(given) == 1:
            return _kind(given[0], key)
    return _KINDS.get(hint, "a valid value")


def check_queue_limits(queues: Any) -> dict[str, int]:
    """``Runtime(queues=...)``: queue names to concurrency limits (whole numbers >= 1)."""
    if queues is None:
        return {}
    if not isinstance(queues, Mapping):
        raise ConfigurationError("queues", queues, 'a dict of queue names to limits: {"emails": 5}')
    for name, limit in queues.items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError("queues", queues, "queue names that are non-empty strings")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ConfigurationError(
                f"queues[{name!r}]", limit, "a whole number >= 1 (runs of the queue at once)"
            )
    return dict(queues)
