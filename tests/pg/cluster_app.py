"""An app for the tests of several serve processes on one PostgreSQL database. Every step
appends ``<run id> <step> <pid>`` to the file named by $CLUSTER_TEST_LOG when it runs, so a test
can count how often each step ran and in which process; $CLUSTER_STEP_SECONDS slows each step
of ``three`` and ``slow`` down."""

import asyncio
import os

import cronflow_actors as cf


def append(line: str) -> None:
    """One short line appended (O_APPEND: lines of several processes do not interleave)."""
    path = os.environ.get("CLUSTER_TEST_LOG")
    if path:
        with open(path, "a") as log:
            log.write(line + "\n")


def logged(name: str, seconds: float = 0.0):  # type: ignore[no-untyped-def]
    async def step(ctx):  # type: ignore[no-untyped-def]
        append(f"{ctx.run.id} {name} {os.getpid()}")
        await asyncio.sleep(seconds)
        return {"step": name, "pid": os.getpid()}

    return step


STEP_SECONDS = float(os.environ.get("CLUSTER_STEP_SECONDS", "0"))
SIGNED_SECRET = "cluster-secret"
"""The secret of the signed webhook (the test signs its requests with it)."""

workflows = [
    cf.define("three")
    .step("a", logged("a", STEP_SECONDS))
    .step("b", logged("b", STEP_SECONDS))
    .step("c", logged("c", STEP_SECONDS)),
    cf.define("slow").step("long", logged("long", 3.0)),
    cf.define("hold").human_in_the_loop("approve", description="ok?").step("done", logged("done")),
    cf.define("waiter")
    .wait_for_event("go", "go", filter=lambda payload, ctx: payload["key"] == ctx.payload["key"])
    .step("woken", logged("woken")),
    cf.define("ticker").on_schedule("* * * * * *", catch_up="none").step("tick", logged("tick")),
    cf.define("signed")
    .on_webhook("/hooks/signed", hmac_secret=SIGNED_SECRET, idempotency_key="Idempotency-Key")
    .step("take", logged("take")),
]
