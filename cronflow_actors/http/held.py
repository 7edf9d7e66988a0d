"""Where the event loop's thread is held, for the last line of a stop that did not finish
(``server._end_after``): the loop-lag warning says so only once the block ends, which a stop cut
short never sees, and each restart of such a serve ran into the same step with no line naming
it (devx h43 F14)."""

from __future__ import annotations

import asyncio
import selectors
import sys
import sysconfig
import time
from types import FrameType

__all__ = ["held_at"]

_LOOP = frozenset((asyncio.base_events.__file__, asyncio.runners.__file__))
"""The loop's own frames: its ``_run_once`` (a selector's wait under it is the loop waiting for
the next event) and the runner's call (uvloop's loop, in C, under it)."""

_PATHS = sysconfig.get_paths()
_STDLIB = _PATHS["stdlib"]
_LIBRARIES = tuple({_PATHS["purelib"], _PATHS["platlib"]})


def held_at(thread: int | None) -> str:
    """The code that holds the event loop's thread ``thread``, if one does, as a sentence to
    end a line with: a frame that stays on its stack across two samples 0.2 s apart, inside
    the loop's callback (the innermost outside the standard library), and, when that is a
    library's, the code of the app that called it. Nothing when the loop waits for the next
    event, or moved on between the samples."""
    frames = sys._current_frames()
    first = _callback(frames.get(thread)) if thread is not None else []
    time.sleep(0.2)
    current = sys._current_frames().get(thread) if thread is not None else None
    if current is None or _waits(current):
        return ""
    # the same frames, not the innermost one: a step that spins calls function after function
    # (review of h43 F14's fix, retest h44 N7), and a step that blocks keeps its own frame
    stack = _callback(current)
    held = [f for f in stack if any(f is g for g in first) and not _in(f, (_STDLIB,))]
    if not held:
        return ""
    said = f". The event loop was held at {_where(held[0])}"
    if _in(held[0], _LIBRARIES):  # a library's: the app's own code that called it
        caller = next((f for f in held if not _in(f, _LIBRARIES)), None)
        said += f", called from {_where(caller)}" if caller is not None else ""
    return (
        f"{said}: a blocking call in an async def step or handler (make it a plain def, which "
        "runs on the blocking pool)"
    )


def _callback(frame: FrameType | None) -> list[FrameType]:
    """The frames of the callback the loop runs, innermost first (the loop's own left out)."""
    stack = []
    while frame is not None and frame.f_code.co_filename not in _LOOP:
        stack.append(frame)
        frame = frame.f_back
    return stack


def _waits(frame: FrameType) -> bool:
    """Whether the loop waits for the next event: in a selector under its own frame (a step's
    ``subprocess.run`` waits in a selector too: review h44 F4), or in uvloop's C."""
    waiting: FrameType | None = frame
    while waiting is not None and waiting.f_code.co_filename == selectors.__file__:
        waiting = waiting.f_back
    return waiting is not None and waiting.f_code.co_filename in _LOOP


def _in(frame: FrameType, folders: tuple[str, ...]) -> bool:
    return frame.f_code.co_filename.startswith(folders)


def _where(frame: FrameType) -> str:
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
