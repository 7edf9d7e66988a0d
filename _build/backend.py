"""setuptools' build backend, and with ``CRONFLOW_ACTORS_COMPILE=1`` (``setup.py``) mypy and
everything the package imports in the build's environment too: mypyc type-checks the whole
package (the PostgreSQL store and the OpenTelemetry export included) before it compiles the
engine against those types."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F403 - the rest of the backend, as setuptools has it

MYPYC = "mypy>=2.4,<3"
EXTRAS = ("postgres", "otel")  # imported by modules mypy checks (store/postgres*, runtime/otel)
STUBS = "asyncpg-stubs>=0.29"  # asyncpg's types (as in the dev extra)


def _compiling() -> list[str]:
    if os.environ.get("CRONFLOW_ACTORS_COMPILE") != "1":
        return []
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    extras = [need for extra in EXTRAS for need in project["optional-dependencies"][extra]]
    return [MYPYC, *project["dependencies"], *extras, STUBS]


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    compiling = _compiling()
    if compiling:  # not setuptools' own: it runs setup.py, which needs mypyc, not there yet
        return compiling
    return build_meta.get_requires_for_build_wheel(config_settings)
