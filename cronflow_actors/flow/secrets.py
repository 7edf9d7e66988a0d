"""Secrets of a flow: ``define(..., secrets={"api_key": cf.env("API_KEY")})`` and ``ctx.secrets``.

A secret is read from the process environment (``cf.env``) or given as a plain value. It lives
only in memory: a run's payload, outputs and snapshot never hold it unless a step returns it,
and ``repr`` of ``ctx.secrets`` shows its keys only, so it does not end up in logs by way of a
context. Environment variables are checked when the flow is registered (``Runtime.register``
raises ``MissingSecretError`` naming every unset one) and read again each time a step reads
``ctx.secrets[key]``, so a rotated variable is picked up without a restart.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from cronflow_actors.errors import MissingSecretError

__all__ = ["NO_SECRETS", "EnvSecret", "Secrets", "env", "secrets_problems"]

_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class EnvSecret(msgspec.Struct, frozen=True):
    """A secret read from the environment variable ``variable`` (``cf.env("API_KEY")``)."""

    variable: str

    def __repr__(self) -> str:
        return f"cf.env({self.variable!r})"


def env(variable: str) -> EnvSecret:
    """A secret whose value is the environment variable ``variable``, read when a step reads
    it (and checked when the flow is registered)."""
    return EnvSecret(variable)


def secrets_problems(secrets: Any) -> list[str]:
    """What is wrong with ``define(secrets=...)``: it must map names to ``cf.env(...)`` or
    plain values."""
    if not isinstance(secrets, Mapping):
        return [f"secrets must be a dict of names to cf.env(...) or values, got {type(secrets)}"]
    found = []
    for key, source in secrets.items():
        if not isinstance(key, str) or not key:
            found.append(f"secrets: every name must be a non-empty string, got {key!r}")
        if isinstance(source, EnvSecret) and (
            not isinstance(source.variable, str) or not _VARIABLE.fullmatch(source.variable)
        ):
            found.append(
                f"secrets[{key!r}]: cf.env() needs an environment variable name (letters, "
                f"digits and '_'), got {source.variable!r}"
            )
        elif callable(source):
            found.append(f"secrets[{key!r}]: give cf.env('NAME') or a value, not a function")
    return found


class Secrets(Mapping[str, Any]):
    """``ctx.secrets``: a read-only mapping of a flow's secrets. Values from ``cf.env`` are
    read from the environment on each access (``MissingSecretError`` if the variable is gone).
    ``repr`` and ``str`` show the names only."""

    __slots__ = ("_sources", "_workflow")

    def __init__(self, workflow: str, sources: Mapping[str, Any]) -> None:
        self._workflow = workflow
        self._sources = dict(sources)

    def __getitem__(self, key: str) -> Any:
        source = self._sources[key]
        if isinstance(source, EnvSecret):
            value = os.environ.get(source.variable)
            if value is None:
                raise MissingSecretError(self._workflow, [(key, source.variable)])
            return value
        return source

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)

    def missing(self) -> list[tuple[str, str]]:
        """(name, environment variable) of the secrets whose variable is not set."""
        return [
            (key, source.variable)
            for key, source in self._sources.items()
            if isinstance(source, EnvSecret) and source.variable not in os.environ
        ]

    def __repr__(self) -> str:
        names = ", ".join(f"{key}=***" for key in self._sources)
        return f"Secrets({names})"

    __str__ = __repr__


NO_SECRETS = Secrets("", {})
"""``ctx.secrets`` of a flow without secrets."""
