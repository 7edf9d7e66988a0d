from __future__ import annotations

import enum
from typing import Any, Literal

import msgspec
import pytest

from cronflow_actors.messages import (
    ChildFailed,
    JournalEntry,
    Message,
    Mutation,
    SnapshotRecord,
    TimerRecord,
    decoder_for,
    encode,
    json_decoder_for,
    json_encode,
)


class Ping(Message, frozen=True, kw_only=True):
    n: int


class Pong(Message, frozen=True, kw_only=True):
    n: int
    note: str = ""


def test_messages_are_frozen_and_keyword_only() -> None:
    ping = Ping(n=1)
    with pytest.raises(AttributeError):
        ping.n = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        Ping(1)  # type: ignore[misc]


def test_a_union_decodes_each_message_to_its_own_class_by_tag() -> None:
    decoder = decoder_for(Ping | Pong)
    assert decoder.decode(encode(Ping(n=1))) == Ping(n=1)
    assert decoder.decode(encode(Pong(n=2, note="x"))) == Pong(n=2, note="x")
    assert msgspec.json.decode(json_encode(Ping(n=3))) == {"type": "Ping", "n": 3}
    assert json_decoder_for(Ping | Pong).decode(b'{"type":"Pong","n":4}') == Pong(n=4)


def test_decoders_are_built_once() -> None:
    assert decoder_for(Ping | Pong) is decoder_for(Ping | Pong)
    assert json_decoder_for(Ping) is json_decoder_for(Ping)


def test_a_wrong_shape_is_rejected_at_the_decode_boundary() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"Expected `int`, got `str` - at `\$.n`"):
        json_decoder_for(Ping).decode(b'{"type":"Ping","n":"one"}')


def test_persisted_records_round_trip() -> None:
    records: list[Message] = [
        SnapshotRecord(
            instance_id="i", workflow="w", status="s", revision=3, updated_at=1.5, body=b"\x00"
        ),
        JournalEntry(instance_id="i", work_item_id="w1", outcome="completed", recorded_at=2.0),
        TimerRecord(timer_id="t", instance_id="i", due_at=9.0, kind="sleep"),
        Mutation(
            snapshot=None,
            journal=(JournalEntry(instance_id="i", work_item_id="w", outcome="x", recorded_at=0),),
        ),
    ]
    decoder = decoder_for(SnapshotRecord | JournalEntry | TimerRecord | Mutation)
    for record in records:
        assert decoder.decode(encode(record)) == record


def test_an_older_snapshot_without_new_fields_still_decodes() -> None:
    # Persisted shapes only grow: a record written before a field existed decodes with defaults.
    old = msgspec.msgpack.encode(
        {
            "type": "SnapshotRecord",
            "instance_id": "i",
            "workflow": "w",
            "status": "s",
            "revision": 1,
            "updated_at": 0.0,
        }
    )
    decoded = decoder_for(SnapshotRecord).decode(old)
    assert decoded.parent_id is None
    assert decoded.body == b""
    assert decoded.terminal is False


def test_child_failed_carries_the_exception_in_process() -> None:
    error = ValueError("x")
    notice = ChildFailed(
        child_urn="u", child_class="C", error_type="ValueError", error_message="x", error=error
    )
    assert notice.error is error


def test_an_events_publisher_survives_the_cluster_and_the_snapshot() -> None:
    """Who published an event travels with it: to the process that holds the run (a
    ``DeliverEvent`` posted through PostgreSQL) and in a held run's snapshot (a ``KeptEvent``),
    so a net's event filter sees the same principal wherever and whenever it runs (hostile h31
    M1); a message or record written before the field decodes with none (review h32 F17)."""
    from cronflow_actors.engine.commands import WorkflowCommand
    from cronflow_actors.messages.engine import DeliverEvent
    from cronflow_actors.messages.migrations import KeptEvent
    from cronflow_actors.messages.principal import Principal

    hr = Principal(id="hr", scopes=frozenset({"offers:answer"}))
    posted = DeliverEvent(
        work_item_id="r.w1", event="offer.answered", payload={"ok": 1}, principal=hr
    )
    assert decoder_for(WorkflowCommand).decode(encode(posted)) == posted
    kept = KeptEvent(work_item_id="r.w1", event="offer.answered", payload=1, principal=hr)
    assert msgspec.msgpack.decode(encode(kept), type=KeptEvent) == kept
    older = {k: v for k, v in msgspec.to_builtins(kept).items() if k != "principal"}
    assert msgspec.convert(older, KeptEvent).principal is None


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


class Coded(msgspec.Struct):  # values /openapi.json lists as an enum (retest3 h45 N1)
    code: Literal[1, 2]
    size: Size | None = None


def test_a_whole_number_written_with_a_fraction_is_taken_for_a_declared_int() -> None:
    """JSON Schema counts 3846.0 as an integer, and so does /openapi.json's ``integer``: a
    client that wrote one was refused (hostile h45 F1). A fraction still is."""
    from cronflow_actors.messages import to_schema

    class Order(msgspec.Struct):
        qty: int
        price: float
        counts: list[int] = []
        note: str | None = None

    given = {"qty": 3846.0, "price": 2.0, "counts": [1.0, 2], "note": None}
    assert to_schema(given, Order) == Order(qty=3846, price=2.0, counts=[1, 2])
    assert type(to_schema(given, Order).qty) is int
    assert given == {"qty": 3846.0, "price": 2.0, "counts": [1.0, 2], "note": None}  # as it was

    # only a value declared an int changes: an open field's whole float stays a float, however
    # another field was written (review h45 F1), and one past 64 bits is left as it is (F2)
    class Open(msgspec.Struct):
        qty: int
        meta: dict[str, Any] = {}
        either: int | float = 0
        maybe: int | None = None
        pairs: tuple[int, float] = (0, 0.0)

    sent = {"qty": 5.0, "meta": {"ratio": 1.0, "x": 1e300}, "either": 2.0, "maybe": 3.0}
    taken = to_schema({**sent, "pairs": [1.0, 2.0]}, Open)
    assert taken == Open(
        qty=5, meta={"ratio": 1.0, "x": 1e300}, either=2.0, maybe=3, pairs=(1, 2.0)
    )
    assert [type(v) for v in (taken.qty, taken.meta["ratio"], taken.either, taken.maybe)] == [
        int,
        float,
        float,
        int,
    ]
    with pytest.raises(msgspec.ValidationError, match=r"got `float` - at `\$.qty`"):
        to_schema({"qty": 1e300}, Open)  # a whole float past 64 bits is no int

    class Cat(msgspec.Struct, tag="cat"):
        lives: int

    class Dog(msgspec.Struct, tag="dog"):
        weight: float

    assert to_schema({"code": 2.0, "size": 1.0}, Coded) == Coded(code=2, size=Size.SMALL)
    pets = to_schema(
        [{"type": "dog", "weight": 3.0}, {"type": "cat", "lives": 9.0}], list[Cat | Dog]
    )
    assert pets == [Dog(weight=3.0), Cat(lives=9)]
    assert type(pets[0].weight) is float
    for wrong, said in (
        ({"qty": 3846.5, "price": 1}, r"Expected `int`, got `float` - at `\$.qty`"),
        ({"qty": 1.0, "price": "x"}, r"Expected `float`, got `str` - at `\$.price`"),
        ({"qty": "1", "price": 1}, r"Expected `int`, got `str` - at `\$.qty`"),
        ({"qty": float("inf"), "price": 1}, r"Expected `int`, got `float` - at `\$.qty`"),
    ):
        with pytest.raises(msgspec.ValidationError, match=said):
            to_schema(wrong, Order)
