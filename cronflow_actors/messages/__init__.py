"""Messages and persisted records: frozen, tagged msgspec Structs on one base."""

from cronflow_actors.messages.base import (
    Message,
    decoder_for,
    encode,
    json_decoder_for,
    json_encode,
)
from cronflow_actors.messages.engine import Principal
from cronflow_actors.messages.kernel import ChildFailed, ChildStopped
from cronflow_actors.messages.records import JournalEntry, Mutation, SnapshotRecord, TimerRecord

__all__ = [
    "ChildFailed",
    "ChildStopped",
    "JournalEntry",
    "Message",
    "Mutation",
    "Principal",
    "SnapshotRecord",
    "TimerRecord",
    "decoder_for",
    "encode",
    "json_decoder_for",
    "json_encode",
]
