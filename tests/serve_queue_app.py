"""An app for serve tests: two flows sharing the named queue "emails"; each run holds its place
(paused for a human) until resumed."""

import cronflow_actors as cf

workflows = [
    cf.define(name, queue="emails")
    .human_in_the_loop("hold", description="hold the place")
    .step("done", lambda ctx: ctx.payload)
    for name in ("welcome", "digest")
]

runtime = cf.Runtime(workflows=workflows, queues={"emails": 1})
"""The same flows in a Runtime the app builds itself (its queues are its own)."""
