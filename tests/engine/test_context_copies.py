"""What a handler's ctx copies: the payload as a type and the outputs, in one decoding."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from cronflow_actors.engine.context import Context


class Envelope(msgspec.Struct, kw_only=True):
    payload: Any
    kind: str


def test_the_payload_as_a_type_and_the_outputs_are_copies_of_both() -> None:
    ctx = Context(
        where="test", payload={"payload": [1], "kind": "manual"}, outputs={"a": {"x": [1]}}
    )
    envelope, outputs = ctx.payload_and_outputs_as(Envelope)
    assert envelope == Envelope(payload=[1], kind="manual")
    assert outputs == {"a": {"x": [1]}}
    envelope.payload.append(2)
    outputs["a"]["x"].append(2)
    assert ctx.payload == {"payload": [1], "kind": "manual"}  # nothing reaches the record
    assert ctx.outputs == {"a": {"x": [1]}}


def test_a_payload_that_is_no_such_type_is_a_validation_error() -> None:
    with pytest.raises(msgspec.ValidationError):
        Context(where="test", payload=3, outputs={}).payload_and_outputs_as(Envelope)
