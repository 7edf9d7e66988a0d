"""Durations as users write them: ``"100ms"``, ``"5s"``, ``"30m"``, ``"2h"``, ``"1d"``, ``"1w"``, or
a number of seconds. A string needs its unit: ``"300"`` is refused, since Cronflow, whose API
flows follow, reads a bare number as milliseconds, and a number written as a string is most
likely a Cronflow duration carried over."""

from __future__ import annotations

import math
import re

__all__ = ["looks_like_duration", "parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def looks_like_duration(value: str) -> bool:
    """Whether ``value`` reads as a duration, with its unit or without (``"1h"``, ``"300"``)."""
    return _PATTERN.match(value) is not None


def parse_duration(value: object, what: str = "duration") -> float:
    """Seconds in ``value``. Raises ``ValueError`` naming ``what`` and the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be seconds or a string like '5s', got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{what} must not be negative, got {value!r}")
        if not math.isfinite(value):  # NaN stored as a NULL due time; inf: waits for good
            raise ValueError(f"{what} must be a finite number of seconds, got {value!r}")
        return float(value)
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match and match.group(2) is None:
            number = match.group(1)
            raise ValueError(
                f"{what} {value!r} has no unit: write {number + 's'!r} for seconds or "
                f"{number + 'ms'!r} for milliseconds (Cronflow read a bare number as "
                f"milliseconds), or the number {number} for seconds"
            )
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
    raise ValueError(
        f"{what} must be a number of seconds or a string like '100ms', '5s', '30m', '2h', "
        f"'1d', '1w'; got {value!r}"
    )
