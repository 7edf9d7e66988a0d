"""cronflow-actors: a durable workflow runtime for Python, built as an actor system on asyncio.

The foundation is in place: the actor kernel (``cronflow_actors.kernel``), messages
(``cronflow_actors.messages``) and the store (``cronflow_actors.store``). The workflow API of
DESIGN.md (``define``, ``Runtime``, ``net``) is built on top of them by the following issues.
"""

from importlib.metadata import PackageNotFoundError, version

from cronflow_actors import errors

try:
    __version__ = version("cronflow-actors")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "errors"]
