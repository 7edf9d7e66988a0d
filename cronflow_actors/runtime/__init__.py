"""The runtime layer: wiring, recovery, triggers and configuration."""

from cronflow_actors.runtime.database import open_store, store_for
from cronflow_actors.runtime.runtime import Runtime

__all__ = ["Runtime", "open_store", "store_for"]
