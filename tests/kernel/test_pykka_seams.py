"""The private pykka seams the kernel is built on. An upgrade that moves one fails here, loudly."""

from __future__ import annotations

import importlib.metadata
import inspect

import pykka
import pykka._envelope
import pykka._future
import pykka.messages


def test_pykka_version_is_pinned_major_4() -> None:
    version = importlib.metadata.version("pykka")
    major, minor = (int(part) for part in version.split(".")[:2])
    assert major == 4
    assert minor >= 5


def test_actor_seams_exist_with_the_signatures_we_override() -> None:
    for name in (
        "_create_actor_inbox",
        "_create_future",
        "_start_actor_loop",
        "_actor_loop_setup",
        "_actor_loop_teardown",
        "_handle_receive",
        "_handle_failure",
        "_stop",
    ):
        assert hasattr(pykka.Actor, name), name
    assert list(inspect.signature(pykka.Actor._handle_failure).parameters) == [
        "self",
        "exception_type",
        "exception_value",
        "traceback",
    ]


def test_envelope_and_stop_message_shapes() -> None:
    envelope = pykka._envelope.Envelope("m", reply_to=None)
    assert envelope.message == "m"
    assert envelope.reply_to is None
    assert pykka.messages._ActorStop() == pykka.messages._ActorStop()
    assert hasattr(pykka._future, "_Unset")


def test_actor_ref_keeps_a_weakref_and_asks_the_actor_class_for_futures() -> None:
    source = inspect.getsource(pykka.ActorRef)
    assert "_actor_weakref" in source
    assert "actor_class._create_future()" in source
    assert "actor_inbox.put(Envelope(" in source
    assert "actor_stopped.is_set()" in source
