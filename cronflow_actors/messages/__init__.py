"""Messages and persisted records: frozen, tagged msgspec Structs on one base (``base``).

``states`` holds the state Enums and the work-item verbs; ``engine`` the commands, reports,
``*StateChanged`` messages and the instance's records; ``elements`` what the elements of one
instance say to each other; ``kernel`` the kernel's supervision messages; ``records`` what the
store writes.
"""

from cronflow_actors.messages.base import (
    Message,
    decoder_for,
    encode,
    json_decoder_for,
    json_encode,
    plain,
    plain_copy,
    storable_attributes,
    to_schema,
    without_secrets,
)
from cronflow_actors.messages.engine import Principal
from cronflow_actors.messages.kernel import ChildFailed, ChildStopped
from cronflow_actors.messages.records import (
    JournalEntry,
    LeaseRecord,
    Mutation,
    QueuedRun,
    SnapshotRecord,
    TimerRecord,
    WaitRecord,
)

__all__ = [
    "ChildFailed",
    "ChildStopped",
    "JournalEntry",
    "LeaseRecord",
    "Message",
    "Mutation",
    "Principal",
    "QueuedRun",
    "SnapshotRecord",
    "TimerRecord",
    "WaitRecord",
    "decoder_for",
    "encode",
    "json_decoder_for",
    "json_encode",
    "plain",
    "plain_copy",
    "storable_attributes",
    "to_schema",
    "without_secrets",
]
