"""A webhook's idempotency key in its canonical form: one JSON form per value, so that keys are
compared by value and type (0 and false two keys, 2 and 2.0 one)."""

from __future__ import annotations

import math
import reprlib
from typing import Any

__all__ = ["NotAKey", "canonical", "shown"]


class NotAKey(Exception):
    """A part of an idempotency key that has no canonical JSON form."""

    def __init__(self, part: Any) -> None:
        super().__init__(part)
        self.part = part


def canonical(value: Any) -> Any:
    """``value`` as plain JSON data, one form per value: a number by its value (2.0 is 2),
    tuples as lists; ``NotAKey`` for anything else (a NaN, bytes, an object, a key that is
    not a string). Objects' keys are sorted when it is encoded."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotAKey(value)
        return int(value) if value.is_integer() else value
    if isinstance(value, list | tuple):
        return [canonical(item) for item in value]
    if isinstance(value, dict):
        for name in value:
            if not isinstance(name, str):
                raise NotAKey(name)
        return {name: canonical(item) for name, item in value.items()}
    raise NotAKey(value)


def shown(value: Any) -> str:
    return f"{type(value).__name__} {reprlib.repr(value)}"
