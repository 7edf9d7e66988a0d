"""An app for serve tests: one flow that pauses for a human."""

import cronflow_actors as cf

workflows = [
    cf.define("hold")
    .human_in_the_loop("approve", description="ok?")
    .step("done", lambda ctx: ctx.last["approved"])
]
