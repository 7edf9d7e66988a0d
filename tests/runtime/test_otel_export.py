"""A run's spans exported over OTLP/HTTP reach a collector: here an in-process receiver on
loopback that decodes the protobuf requests. Trace id from the run id, span ids from the audit
span ids, parents linked, handlers' spans with user code's spans nested under them, all flushed
by the runtime's stop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from opentelemetry import trace
from opentelemetry.util._once import Once

import cronflow_actors as cf
from cronflow_actors.messages.audit import AuditSpan
from cronflow_actors.runtime.otel import handler_span_id, span_id_of, trace_id_of
from tests.runtime.otlp_receiver import ReceivedSpan, otlp_receiver


def tracer() -> trace.Tracer:
    """User code's tracer. (Got at each use, not once at import as an application would: a
    module-level proxy keeps the first global provider it finds, and each test here starts a
    runtime that sets a new one.)"""
    return trace.get_tracer("shop")


async def charge(ctx: Any) -> dict[str, Any]:
    with tracer().start_as_current_span("charge card") as span:
        span.set_attribute("amount", ctx.payload["amount"])
    return {"charged": ctx.payload["amount"]}


def ship(ctx: Any) -> dict[str, Any]:  # a plain def: runs on a pool thread
    with tracer().start_as_current_span("book parcel"):
        pass
    return {"shipped": True}


orders = cf.define("otel-orders").step("charge", charge).step("ship", ship)


@pytest.fixture(autouse=True)
def no_global_tracer_provider() -> Iterator[None]:
    """Each test starts with no global tracer provider set (the runtime sets one), and leaves
    none behind."""

    def reset() -> None:
        trace._TRACER_PROVIDER = None
        trace._TRACER_PROVIDER_SET_ONCE = Once()

    reset()
    yield
    reset()


class Heard:
    """The spans the runtime's audit trail hands over after each commit (what the exporter is
    given too)."""

    def __init__(self, runtime: cf.Runtime) -> None:
        self.handed: list[AuditSpan] = []
        runtime.on_spans(self.handed.extend)


def _one(spans: list[ReceivedSpan]) -> ReceivedSpan:
    assert len(spans) == 1, spans
    return spans[0]


async def test_a_runs_spans_reach_an_otlp_receiver_with_user_spans_under_their_steps(
    tmp_path: Path,
) -> None:
    with otlp_receiver() as receiver:
        runtime = cf.Runtime(
            db=tmp_path / "otel.db", workflows=[orders], otel_endpoint=receiver.url
        )
        audit = Heard(runtime)
        async with runtime:
            run_id = await runtime.trigger("otel-orders", {"amount": 30})
            result = await runtime.wait(run_id)
            assert result.status == "completed"
        # stop() flushed the batch: everything is in, no waiting

    assert set(receiver.paths) == {"/v1/traces"}
    spans = receiver.spans
    by_id = {span.span_id: span for span in spans}
    assert len(by_id) == len(spans)  # no span id twice

    # one trace, whose id is the run id (32 hex digits by default)
    assert {span.trace_id for span in spans} == {int(run_id, 16)} == {trace_id_of(run_id)}
    # every parent is a span of the trace
    assert all(span.parent_id in by_id for span in spans if span.parent_id is not None)

    # every span the runtime handed over, exported with its derived ids and its parent
    assert audit.handed
    for handed in audit.handed:
        exported = by_id[span_id_of(run_id, handed.span_id)]
        assert exported.name == handed.operation
        assert exported.attributes["cronflow.span_id"] == handed.span_id
        assert exported.attributes["cronflow.revision"] == handed.revision
        assert exported.attributes["cronflow.element"] == handed.element
        if handed.parent_id is not None:
            assert exported.parent_id == span_id_of(run_id, handed.parent_id)
        assert exported.resource["service.name"] == "cronflow-actors"
    names = {span.name for span in spans}
    assert {"Workflow.initialize", "Task.enable", "WorkItem.start", "WorkItem.complete"} <= names
    assert {"Workflow.complete", "WorkItem.run", "charge card", "book parcel"} <= names

    # each step's handler ran in its WorkItem.run span: start -> run -> user span; run -> complete
    for step, user_span in (("charge", "charge card"), ("ship", "book parcel")):
        run = _one(
            [
                s
                for s in receiver.named("WorkItem.run")
                if s.attributes["cronflow.work_item"] == step
            ]
        )
        item_id = run.attributes["cronflow.element"]
        assert run.span_id == handler_span_id(run_id, item_id, run.attributes["cronflow.attempt"])
        user = _one(receiver.named(user_span))
        assert user.parent_id == run.span_id
        assert run.start_ns <= user.start_ns <= user.end_ns <= run.end_ns
        assert user.scope == "shop"
        started = by_id[run.parent_id]
        assert (started.name, started.attributes["cronflow.element"]) == ("WorkItem.start", item_id)
        completed = _one(
            [
                s
                for s in receiver.named("WorkItem.complete")
                if s.attributes["cronflow.element"] == item_id
            ]
        )
        assert completed.parent_id == run.span_id  # the turn that recorded what it returned
    assert _one(receiver.named("charge card")).attributes["amount"] == 30


async def test_a_failed_attempt_is_an_error_span_and_the_retry_runs_in_a_span_of_its_own(
    tmp_path: Path,
) -> None:
    attempts: list[int] = []

    async def flaky(ctx: Any) -> str:
        attempts.append(ctx.attempt)
        with tracer().start_as_current_span("call supplier"):
            if len(attempts) == 1:
                raise ConnectionError("supplier down")
        return "ok"

    def broken(ctx: Any) -> None:
        raise ValueError("no stock")

    flow = (
        cf.define("otel-retry")
        .step("flaky", flaky, retry=cf.Retry(attempts=2, delay="10ms"))
        .step("broken", broken)
    )
    with otlp_receiver() as receiver:
        runtime = cf.Runtime(
            db=tmp_path / "otel.db",
            workflows=[flow],
            otel_endpoint=f"{receiver.url}/v1/traces",
            otel_service_name="shop-engine",
        )
        async with runtime:
            run_id = await runtime.trigger("otel-retry", {})
            assert (await runtime.wait(run_id)).status == "failed"

    assert {span.resource["service.name"] for span in receiver.spans} == {"shop-engine"}
    runs = {s.attributes["cronflow.work_item"]: s for s in receiver.named("WorkItem.run")}
    first, second = sorted(
        (
            s
            for s in receiver.named("WorkItem.run")
            if s.attributes["cronflow.work_item"] == "flaky"
        ),
        key=lambda s: s.start_ns,
    )
    assert first.attributes["cronflow.attempt"] < second.attributes["cronflow.attempt"]
    assert first.span_id != second.span_id
    assert (first.status_code, first.attributes["cronflow.outcome"]) == (2, "retry")  # ERROR
    assert second.status_code == 0
    assert "cronflow.outcome" not in second.attributes
    supplier_calls = receiver.named("call supplier")
    assert sorted(s.parent_id for s in supplier_calls) == sorted([first.span_id, second.span_id])
    failed = runs["broken"]
    assert (failed.status_code, failed.attributes["cronflow.outcome"]) == (2, "failed")
    item_failed = _one(
        [
            s
            for s in receiver.named("WorkItem.fail")
            if s.attributes["cronflow.element"] == failed.attributes["cronflow.element"]
        ]
    )
    assert item_failed.status_code == 2
    assert item_failed.parent_id == failed.span_id
    assert {s.trace_id for s in receiver.spans} == {trace_id_of(run_id)}


async def test_a_collector_that_never_answers_holds_a_stop_a_few_seconds_at_most(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A collector that took the connection and never answered held every stop for the whole
    drain budget, and a watchdog then said steps were cut (ops h41 F5). The stop waits for the
    export a few seconds, then says what it dropped."""
    import logging
    import socket
    import time

    from cronflow_actors.runtime.otel import SHUTDOWN_SECONDS

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # connections are taken by the kernel, and never read
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        runtime = cf.Runtime(db=tmp_path / "otel.db", workflows=[orders], otel_endpoint=url)
        async with runtime:
            result = await runtime.wait(await runtime.trigger("otel-orders", {"amount": 1}))
            assert result.status == "completed"  # the run is not held by the collector
            caplog.set_level(logging.WARNING, "cronflow_actors.runtime.otel")
            stopping = time.monotonic()
        took = time.monotonic() - stopping
    finally:
        silent.close()
    assert took < SHUTDOWN_SECONDS + 3, took
    assert f"spans not yet exported to {url}/v1/traces were dropped" in caplog.text
