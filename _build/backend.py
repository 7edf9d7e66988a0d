"""setuptools' build backend, and with ``CRONFLOW_ACTORS_COMPILE=1`` (``setup.py``) mypy and the
runtime's dependencies in the build's environment too: mypyc compiles the engine against their
types."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F403 - the rest of the backend, as setuptools has it

MYPYC = "mypy>=2.4,<3"


def _compiling() -> list[str]:
    if os.environ.get("CRONFLOW_ACTORS_COMPILE") != "1":
        return []
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    return [MYPYC, *project["project"]["dependencies"]]


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    compiling = _compiling()
    if compiling:  # not setuptools' own: it runs setup.py, which needs mypyc, not there yet
        return compiling
    return build_meta.get_requires_for_build_wheel(config_settings)
