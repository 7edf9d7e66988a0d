"""Settings of the long-lived process: a TOML file, then ``CRONFLOW_*`` environment variables,
then command-line flags, each overriding the one before; decoded (and checked) with msgspec.

    # cronflow.toml
    db = "cronflow.db"
    port = 8000
    log_format = "json"
    [tokens.t-3f9a]                     # Authorization: Bearer t-3f9a
    id = "ada"
    scopes = ["review:write"]
    [queues]                            # named queues' concurrency (define(..., queue="emails"))
    emails = 5

``queues`` is read from the file and from ``--queue NAME=N`` flags (which add to or override
the file's), not from the environment.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import msgspec

from cronflow_actors.errors import ConfigurationError
from cronflow_actors.messages import Principal
from cronflow_actors.runtime.collector import DEFAULT_GC_THRESHOLD, MAX_GC_THRESHOLD
from cronflow_actors.runtime.event_loop import LoopName

__all__ = ["Config", "TokenConfig", "load_config"]

_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")


class TokenConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    scopes: list[str] = msgspec.field(default_factory=list)


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
    keep_alive: float = 5.0
    max_connections: int = 1000
    drain_timeout: float = 30.0
    retention: str = "30d"
    metrics_token: str | None = None
    metrics_port: int | None = None
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

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0-65535, got {self.port}")
        if self.max_body < 1:
            raise ValueError(f"max_body must be >= 1 byte, got {self.max_body}")
        if self.lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be > 0, got {self.lease_seconds}")
        if self.max_json_depth < 1 or self.max_connections < 1:
            raise ValueError("max_json_depth and max_connections must be >= 1")
        for name in ("header_timeout", "body_timeout", "keep_alive", "drain_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 seconds, got {getattr(self, name)}")
        if not 0 <= self.gc_threshold <= MAX_GC_THRESHOLD:
            raise ValueError(
                f"gc_threshold must be 0 (CPython's own) to {MAX_GC_THRESHOLD:,}, "
                f"got {self.gc_threshold}"
            )
        if self.max_active_runs is not None and self.max_active_runs < 1:
            raise ValueError(f"max_active_runs must be >= 1 run, got {self.max_active_runs}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port must be 0-65535, got {self.metrics_port}")
        from cronflow_actors.net.durations import parse_duration

        parse_duration(self.retention)  # "30d", "12h", "0" (keep forever)
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


_FIELDS = frozenset(Config.__struct_fields__) - {"tokens", "queues"}
_HINTS = {
    name: hint for name, hint in get_type_hints(Config).items() if get_origin(hint) is Literal
}


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """The settings from ``path`` (TOML), ``environ`` (``CRONFLOW_<FIELD>``) and ``overrides``
    (flags given, None meaning not given). A bad value raises ``ConfigurationError`` naming its
    key and where it came from."""
    data: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if path is not None:
        file = Path(path)
        try:
            loaded = tomllib.loads(file.read_text())
        except FileNotFoundError:
            raise ConfigurationError("config", str(path), "an existing TOML file") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigurationError("config", str(path), f"valid TOML ({error})") from None
        data.update(loaded)
        origin.update(dict.fromkeys(loaded, f"{path}"))
    for key, value in (environ if environ is not None else os.environ).items():
        if key.startswith("CRONFLOW_") and key[9:].lower() in _FIELDS:
            data[key[9:].lower()] = value
            origin[key[9:].lower()] = f"environment variable {key}"
    for key, value in (overrides or {}).items():
        if key == "queues" and value and isinstance(data.get("queues"), dict):
            data["queues"] = {**data["queues"], **value}  # flags add to the file's queues
            origin[key] = f"{origin.get(key, 'the settings')} and --queue"
        elif value is not None:
            data[key] = value
            origin[key] = f"--{key.replace('_', '-')}"
    try:
        return msgspec.convert(data, Config, strict=False)
    except msgspec.ValidationError as error:
        text = str(error)
        match = _AT.search(text)
        key = (match.group("path") if match else "").split(".")[0].split("[")[0]
        if not key and text.split(" ", 1)[0] in Config.__struct_fields__:
            key = text.split(" ", 1)[0]  # a check of __post_init__ names its field first
        where = origin.get(key, "the settings")
        reason = _AT.sub("", text)
        choices = get_args(_HINTS.get(key))  # a Literal's values, to say which are taken
        if choices:
            reason = f"one of {', '.join(map(str, choices))}"
        expected = f"a valid value ({reason}; it came from {where})"
        raise ConfigurationError(key or "config", data.get(key), expected) from None
