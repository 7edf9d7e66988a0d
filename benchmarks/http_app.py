"""The workflow benchmarks/http.py serves: one trivial async step behind a webhook."""

from __future__ import annotations

from typing import Any

import cronflow_actors as cf


async def accept(ctx: Any) -> int:
    return int(ctx.payload["n"])


workflows = [cf.define("bench-hook").step("accept", accept).on_webhook("/hooks/bench")]
