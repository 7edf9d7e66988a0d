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


def test_what_the_kernel_writes_out_is_still_what_pykka_does() -> None:
    """``LoopActorRef.ask(block=False)`` does pykka's ask itself, ``tell`` and ``ask`` read the
    stop flag pykka's ref shares with its actor, and a stop with an empty inbox skips pykka's
    teardown (which only drains the inbox): each is pykka's code written out, which a pykka that
    changes these lines must change too."""
    init = inspect.getsource(pykka.ActorRef.__init__)
    assert "self.actor_stopped = actor.actor_stopped" in init
    assert "return not self.actor_stopped.is_set()" in inspect.getsource(pykka.ActorRef.is_alive)
    ask = inspect.cleandoc(inspect.getsource(pykka.ActorRef.ask))
    body = ask[ask.index("future = self.actor_class._create_future()") :]
    pykka_ask = _PYKKA_ASK  # (the lines, compared word by word: the indentation aside)
    assert body.split() == pykka_ask.split()
    teardown = inspect.getsource(pykka.Actor._actor_loop_teardown)
    lines = [line.strip() for line in teardown.splitlines()[1:] if line.strip()]
    assert lines[0] == "while not self.actor_inbox.empty():"  # all it does: drain the inbox


_PYKKA_ASK = """
future = self.actor_class._create_future()  # noqa: SLF001
try:
    if not self.is_alive():
        msg = f"{self} not found"
        raise ActorDeadError(msg)  # noqa: TRY301
except ActorDeadError:
    future.set_exception()
else:
    self.actor_inbox.put(Envelope(message, reply_to=future))
if block:
    return future.get(timeout=timeout)
return future
"""
