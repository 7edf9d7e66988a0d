"""An app for the crash test of a pause's notice (tests/test_serve_notice.py): its ``on_pause``
writes the token it was given to a file in ``$NOTICE_DIR``, and the first time it is called
kills its own process with SIGKILL before it ends, as a crash at the worst moment would."""

import os
import signal
from pathlib import Path

import cronflow_actors as cf


def on_pause(ctx: cf.FlowContext, token: str) -> None:
    folder = Path(os.environ["NOTICE_DIR"])
    calls = sorted(folder.glob("call-*"))
    (folder / f"call-{len(calls) + 1}").write_text(f"{ctx.run.id} {token}")
    if not calls:  # the first call: the notice is out, its end never recorded
        os.kill(os.getpid(), signal.SIGKILL)


workflows = [
    cf.define("approve-refund")
    .human_in_the_loop("approve", description="refund?", on_pause=on_pause)
    .step("done", lambda ctx: ctx.last["approved"])
]
