"""The ``--payload`` of ``run``, ``replay``, ``resume`` and ``events publish``: JSON given on
the command line, or ``@FILE`` to read it from a file (``@-``: from stdin), as curl's ``-d``
does. No JSON text begins with ``@``, so the two cannot be mistaken for each other. A file that
cannot be read, or text that is not JSON, is a usage error (exit 2) that names where it came
from; nothing is sent."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cronflow_actors.errors import ConfigurationError

__all__ = ["add_payload_option", "read_payload"]


def add_payload_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--payload JSON|@FILE|@-`` on ``parser``; ``what`` says what the JSON is."""
    parser.add_argument(
        "--payload",
        default=None,
        metavar="JSON",
        help=f"{what}; @FILE reads it from FILE, @- from stdin",
    )


def read_payload(given: str | None) -> Any:
    """The payload ``--payload`` gives (None when it was not given), decoded."""
    if given is None:
        return None
    if not given.startswith("@"):
        return _decoded(given, given, "")
    name = given[1:]
    if not name:
        raise ConfigurationError(
            "--payload", given, "JSON, or @FILE (a file of JSON), or @- (JSON on stdin)"
        )
    try:
        text = sys.stdin.read() if name == "-" else _read(name)
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ConfigurationError(
            "--payload", given, f"a readable file of JSON; cannot read {name!r} ({reason})"
        ) from None
    return _decoded(text, given, " in stdin" if name == "-" else f" in the file {name!r}")


def _read(name: str) -> str:
    with open(name, encoding="utf-8") as file:
        return file.read()


def _once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are each given once, as the API takes it (devx h43 F16: the last
    of two was taken, where the API refuses them)."""
    decoded = dict(pairs)
    if len(decoded) < len(pairs):
        twice = next(key for key in decoded if sum(k == key for k, _ in pairs) > 1)
        raise ValueError(f"the key {twice!r} is given twice in one object: give each key once")
    return decoded


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (it has no NaN or Infinity)")


def _decoded(text: str, given: str, where: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_once, parse_constant=_no_constant)
    except ValueError as error:
        raise ConfigurationError(
            "--payload", given, f"JSON{where}, such as '{{\"n\": 1}}' ({error})"
        ) from None
