"""The command line: ``cronflow-actors`` (also ``python -m cronflow_actors``)."""

from cronflow_actors.cli.main import main

__all__ = ["main"]
