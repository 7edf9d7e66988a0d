"""Shared output for the benchmarks: a readable table, then one JSON line of the figures."""

from __future__ import annotations

import json
import os
import platform
import sys
from typing import Any


def machine() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores"


def table(title: str, rows: list[tuple[str, str]]) -> None:
    print(f"\n{title}  ({machine()})")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def figures(values: dict[str, Any]) -> None:
    """The last line of every benchmark: its figures as one JSON object."""
    sys.stdout.flush()
    print(json.dumps(values, sort_keys=False))
