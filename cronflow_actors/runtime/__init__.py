"""The runtime layer: wiring, recovery, triggers and configuration.

So far it opens the database a ``db`` setting names; the ``Runtime`` itself comes with the net
engine issue.
"""

from cronflow_actors.runtime.database import open_store, store_for

__all__ = ["open_store", "store_for"]
