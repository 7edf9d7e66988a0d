"""An app for the crash test of a run's hooks (tests/test_serve_hooks.py): its ``on_failure``
and ``on_complete`` write what they were given to files in ``$HOOKS_DIR``, and the first call
of ``on_failure`` kills its own process with SIGKILL before it ends, as a crash right after the
run's end was recorded would."""

import os
import signal
from pathlib import Path

import cronflow_actors as cf


def _record(name: str, ctx: cf.FlowContext) -> list[Path]:
    folder = Path(os.environ["HOOKS_DIR"])
    calls = sorted(folder.glob(f"{name}-*"))
    said = f"{ctx.run.id} {type(ctx.error).__name__}: {ctx.error}"
    (folder / f"{name}-{len(calls) + 1}").write_text(said)
    return calls


def on_failure(ctx: cf.FlowContext) -> None:
    if not _record("on_failure", ctx):  # the first call: the hooks are out, their end lost
        os.kill(os.getpid(), signal.SIGKILL)


def on_complete(ctx: cf.FlowContext) -> None:
    _record("on_complete", ctx)


def charge(ctx: cf.FlowContext) -> None:
    raise ValueError("card declined")


workflows = [
    cf.define("refund", hooks=cf.Hooks(on_failure=on_failure, on_complete=on_complete)).step(
        "charge", charge
    )
]
