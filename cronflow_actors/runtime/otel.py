"""OpenTelemetry export of the audit trail: a run's spans over OTLP/HTTP, with the standard SDK.

    pip install -e '.[otel]' in the cronflow-actors checkout
    cf.Runtime(db="app.db", otel_endpoint="http://localhost:4318")   # or serve --otel-endpoint

Optional: nothing here imports ``opentelemetry`` until a runtime is made with an endpoint, and a
runtime made with one where the extra is missing is refused with a ``ConfigurationError`` that
says what to install. Only this module of the package imports ``opentelemetry``.

What is exported: every ``AuditSpan`` once it is durable (``OtelExport.export`` is the
``Runtime.on_spans`` callback), through a ``BatchSpanProcessor`` and an ``OTLPSpanExporter``,
under the resource ``service.name`` given (else ``$OTEL_SERVICE_NAME``, else
``cronflow-actors``); flushed when the runtime stops. The ids are derived, so a trace reads the
same whichever process exported it, and the same ids come out of a rerun:

- trace id (128 bits) from the run id (the root instance id): a run id of 32 hexadecimal digits
  (the default ids) *is* the trace id, so pasting a run id into Jaeger or Tempo finds its trace;
  any other id maps to the first 16 bytes of SHA-256 of ``"cronflow-actors:" + run id``;
- span id (64 bits): the first 8 bytes of SHA-256 of ``run id + NUL + span_id``; a span's parent
  is the span of its ``parent_id`` (a turn's root span has none);
- name: the operation (``Task.enable``); kind ``INTERNAL``; start and end in nanoseconds;
  attributes ``cronflow.run_id``, ``cronflow.instance_id``, ``cronflow.element``,
  ``cronflow.revision``, ``cronflow.span_id`` and the span's own attributes under
  ``cronflow.<key>`` (see ``otel_attributes``); a ``*.fail`` operation has status ERROR.

Handlers run inside a span of their own, ``WorkItem.run`` (this module is the engine's
``HandlerTracing``): while a step's handler (or a detached action) runs, the current OTel context
is that span, whose id is derived from the run, the work item and the attempt, so
``tracer.start_as_current_span("charge")`` in user code makes a child of it. The span is
exported when the handler returns, with the handler's times; its parent is the item's
``WorkItem.start`` span, and the next turn's root span on that item (the transaction that records
the outcome) is made its child, so a trace reads start -> run -> (user spans) -> complete.

If the application has not set a global tracer provider when the runtime starts, the runtime's
becomes the global one, so ``opentelemetry.trace.get_tracer(...)`` in steps exports to the same
endpoint; if it has, user spans go where the application sends them (still children of their
step's span).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec

from cronflow_actors.errors import ConfigurationError, RetryRequested
from cronflow_actors.kernel import Clock
from cronflow_actors.messages.audit import AuditSpan
from cronflow_actors.messages.engine import WorkItemRecord

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.util.types import AttributeValue

__all__ = [
    "DEFAULT_SERVICE_NAME",
    "OtelExport",
    "handler_span_id",
    "otel_attributes",
    "span_id_of",
    "trace_id_of",
    "traces_url",
]

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "cronflow-actors"
SHUTDOWN_SECONDS = 5.0
"""How long a stop waits for the spans still buffered to be exported."""
RUN_OPERATION = "WorkItem.run"
"""The name of a handler's span."""

_HEX = frozenset("0123456789abcdefABCDEF")
_INT64 = range(-(2**63), 2**63)
_ITEM_ENDS = frozenset({"WorkItem.complete", "WorkItem.fail", "WorkItem.cancel"})
_REMEMBERED = 10_000
"""How many items' start and run spans are remembered for linking (the oldest are forgotten)."""


# -- ids -------------------------------------------------------------------------------------------


def trace_id_of(run_id: str) -> int:
    """The 128-bit trace id of a run: its id when that is 32 hex digits, else a hash of it."""
    if len(run_id) == 32 and _HEX.issuperset(run_id) and int(run_id, 16):
        return int(run_id, 16)
    return _nonzero(hashlib.sha256(f"cronflow-actors:{run_id}".encode()).digest()[:16])


def span_id_of(run_id: str, span_id: str) -> int:
    """The 64-bit span id of the audit span ``span_id`` of a run."""
    return _nonzero(hashlib.sha256(f"{run_id}\0{span_id}".encode()).digest()[:8])


def handler_span_id(run_id: str, work_item_id: str, attempt: int) -> int:
    """The 64-bit span id of an attempt of a work item's handler (its ``WorkItem.run``)."""
    key = f"{run_id}\0{RUN_OPERATION}\0{work_item_id}\0{attempt}"
    return _nonzero(hashlib.sha256(key.encode()).digest()[:8])


def _nonzero(digest: bytes) -> int:
    return int.from_bytes(digest, "big") or 1  # zero is OTel's "no id"


# -- attributes ------------------------------------------------------------------------------------


def otel_attributes(attributes: Mapping[str, Any], prefix: str = "cronflow.") -> dict[str, Any]:
    """An audit span's attributes as OTel attribute values, each key under ``prefix``: strings,
    booleans, 64-bit ints and floats as they are; a bigger int as its decimal string; bytes as
    hex; a mapping flattened into dotted keys (``cronflow.marking.c1``); a list of one primitive
    type as a sequence (ints among floats become floats); any other list as its JSON; None is
    left out."""
    mapped: dict[str, Any] = {}
    for key, value in attributes.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            mapped.update(otel_attributes(value, f"{name}."))
            continue
        converted = _attribute_value(value)
        if converted is not None:
            mapped[name] = converted
    return mapped


def _attribute_value(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | float):
        return value
    if isinstance(value, int):
        return value if value in _INT64 else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        kinds = {type(item) for item in value}
        if kinds <= {str} or kinds <= {bool}:
            return tuple(value)
        if kinds <= {int, float} and all(isinstance(i, float) or i in _INT64 for i in value):
            return tuple(float(i) for i in value) if float in kinds else tuple(value)
    try:
        return msgspec.json.encode(value).decode()
    except (TypeError, ValueError):
        return repr(value)


# -- configuration ---------------------------------------------------------------------------------


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of ``endpoint``: a base URL (``http://collector:4318``) gets the
    standard path ``/v1/traces``; a URL with a path is used as it is."""
    parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            "otel_endpoint", endpoint, "an http:// or https:// URL (http://localhost:4318)"
        )
    if parts.path in ("", "/"):
        return f"{endpoint.rstrip('/')}/v1/traces"
    return endpoint


def _require_sdk(endpoint: str) -> None:
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.sdk.trace
        import opentelemetry.trace  # noqa: F401
    except ImportError as error:
        raise ConfigurationError(
            "otel_endpoint",
            endpoint,
            "the OpenTelemetry packages, which are not installed: install the extra with "
            f"pip install -e '.[otel]' in the cronflow-actors checkout ({error})",
        ) from error


# -- the export ------------------------------------------------------------------------------------


class OtelExport:
    """Exports a runtime's audit spans, and runs its handlers inside spans (``HandlerTracing``).

    Made with the runtime (which checks the SDK is there); ``start`` builds the SDK pipeline,
    ``export`` is called on the runtime's loop with the spans of each commit, ``shutdown`` flushes
    what is buffered and stops the pipeline."""

    def __init__(self, endpoint: str, *, service_name: str | None = None, clock: Clock) -> None:
        self.url = traces_url(endpoint)
        _require_sdk(endpoint)
        if service_name is not None and (not isinstance(service_name, str) or not service_name):
            raise ConfigurationError("otel_service_name", service_name, "a non-empty string")
        self.service_name = service_name
        self._clock = clock
        self._provider: TracerProvider | None = None
        self._processor: SpanProcessor | None = None
        self._made: _Made | None = None
        self._started: dict[tuple[str, str], int] = {}
        """(run id, work item id) -> the OTel id of its last ``WorkItem.start`` span."""
        self._ran: dict[tuple[str, str], int] = {}
        """(run id, work item id) -> its handler's span, which the next turn's root is under."""

    @classmethod
    def optional(
        cls,
        endpoint: str | None,
        *,
        service_name: str | None = None,
        clock: Clock,
        audit: bool = True,
    ) -> OtelExport | None:
        """An export to ``endpoint``, or None without one (a service name alone is refused;
        without the audit trail, whose spans it sends, it says how little it sends)."""
        if endpoint is None:
            if service_name is not None:
                raise ConfigurationError(
                    "otel_service_name", service_name, "to come with an otel_endpoint"
                )
            return None
        if not audit:  # (started silently: ops h41 F11)
            logger.warning(
                "spans go to %s without the audit trail (--no-audit): only each step's "
                "WorkItem.run, with your own spans under it, and no run's structure",
                endpoint,
            )
        return cls(endpoint, service_name=service_name, clock=clock)

    @property
    def provider(self) -> TracerProvider | None:
        """The SDK tracer provider, once started."""
        return self._provider

    def start(self) -> None:
        """Build the pipeline (a ``TracerProvider`` with a ``BatchSpanProcessor`` feeding an
        ``OTLPSpanExporter``), and make it the global provider if none is set."""
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        attributes = {SERVICE_NAME: self.service_name} if self.service_name else {}
        resource = Resource.create(attributes)
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=self.url))
        provider.add_span_processor(processor)
        self._provider, self._processor = provider, processor
        self._made = _Made(
            resource=resource,
            scope=InstrumentationScope("cronflow_actors"),
            sampled=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        )
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(provider)

    def shutdown(self) -> None:
        """Export what is buffered and stop the pipeline (blocks while it sends: call it off the
        loop)."""
        provider, self._provider, self._processor = self._provider, None, None
        if provider is not None:
            provider.shutdown()  # its batch processor exports what it holds first

    async def close(self, within: float = SHUTDOWN_SECONDS) -> None:
        """``shutdown`` on a thread of its own, waited for ``within`` seconds at most: a
        collector that never answers (or is down, and retried) held every stop for the whole
        drain budget, and a watchdog then said steps were cut (ops h41 F5). What is not sent by
        then is said lost, once; the thread is a daemon, so it never holds the process."""
        done = asyncio.get_running_loop().create_future()

        def shut() -> None:
            try:
                self.shutdown()
            finally:
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                    done.get_loop().call_soon_threadsafe(_settle, done)

        threading.Thread(target=shut, name="otel shutdown", daemon=True).start()
        try:
            await asyncio.wait_for(asyncio.shield(done), within)
        except TimeoutError:
            logger.warning(
                "spans not yet exported to %s were dropped: the collector took none of them "
                "within %g s of the stop",
                self.url,
                within,
            )

    def export(self, spans: Sequence[AuditSpan]) -> None:
        """Export ``spans`` (durable ones, as ``Runtime.on_spans`` hands them over)."""
        if self._processor is None:
            return
        for span in spans:
            run_id, element = span.trace_id, span.element
            own = span_id_of(run_id, span.span_id)
            parent: int | None = None
            if span.parent_id is not None:
                parent = span_id_of(run_id, span.parent_id)
            if span.operation.startswith("WorkItem."):
                ran = self._ran.pop((run_id, element), None)
                if parent is None:
                    parent = ran  # the turn that records what the handler did
                if span.operation == "WorkItem.start":
                    _remember(self._started, (run_id, element), own)
                elif span.operation in _ITEM_ENDS:
                    self._started.pop((run_id, element), None)
            attributes = {
                "cronflow.run_id": run_id,
                "cronflow.instance_id": span.instance_id,
                "cronflow.element": element,
                "cronflow.revision": span.revision,
                "cronflow.span_id": span.span_id,
                **otel_attributes(span.attributes),
            }
            error = None
            if span.operation.endswith(".fail"):
                error = str(span.attributes.get("error") or "failed")
            self._emit(
                span.operation,
                trace_id_of(run_id),
                own,
                parent_id=parent,
                attributes=attributes,
                started_at=span.started_at,
                ended_at=span.ended_at,
                error=error,
            )

    def scope(
        self, instance_id: str, item: WorkItemRecord, attempt: int, what: str
    ) -> _HandlerSpan:
        """The span a handler runs in (``HandlerTracing``)."""
        return _HandlerSpan(self, instance_id, item, attempt, what)

    def _handler_ran(self, handler: _HandlerSpan, ended_at: float, error: str | None) -> None:
        key = (handler.run_id, handler.item.id)
        parent = self._started.pop(key, None)
        _remember(self._ran, key, handler.span_id)
        item = handler.item
        attributes: dict[str, AttributeValue] = {
            "cronflow.run_id": handler.run_id,
            "cronflow.instance_id": item.workflow_id,
            "cronflow.element": item.id,
            "cronflow.work_item": item.name,
            "cronflow.task": item.task,
            "cronflow.attempt": handler.attempt,
            "cronflow.handler": handler.what,
        }
        if handler.outcome:
            attributes["cronflow.outcome"] = handler.outcome
        self._emit(
            RUN_OPERATION,
            handler.trace_id,
            handler.span_id,
            parent_id=parent,
            attributes=attributes,
            started_at=handler.started_at,
            ended_at=ended_at,
            error=error,
        )

    def _emit(
        self,
        name: str,
        trace_id: int,
        span_id: int,
        *,
        parent_id: int | None,
        attributes: Mapping[str, AttributeValue],
        started_at: float,
        ended_at: float,
        error: str | None,
    ) -> None:
        processor, made = self._processor, self._made
        if processor is None or made is None:
            return
        # The span is finished before it is made (it records a committed transaction, or a
        # handler that returned), so it is made as the finished span the processor takes: the
        # SDK's live spans (sampling, id generation, attribute limits, a lock) would cost 15
        # times as much on the instance's turn, for nothing.
        context, sampled = made.SpanContext, made.sampled
        parent = None
        if parent_id is not None:
            parent = context(trace_id, parent_id, is_remote=False, trace_flags=sampled)
        processor.on_end(
            made.ReadableSpan(
                name,
                context=context(trace_id, span_id, is_remote=False, trace_flags=sampled),
                parent=parent,
                resource=made.resource,
                attributes=attributes,
                status=made.ok if error is None else made.Status(made.ERROR, error),
                start_time=_ns(started_at),
                end_time=max(_ns(ended_at), _ns(started_at)),
                instrumentation_scope=made.scope,
            )
        )


class _Made:
    """What every exported span shares, and the SDK's classes it is made of (imported once)."""

    def __init__(self, *, resource: Any, scope: Any, sampled: Any) -> None:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, Status, StatusCode

        self.resource, self.scope, self.sampled = resource, scope, sampled
        self.ReadableSpan, self.SpanContext, self.Status = ReadableSpan, SpanContext, Status
        self.ERROR = StatusCode.ERROR
        self.ok = Status(StatusCode.UNSET)


class _HandlerSpan:
    """The scope a handler is called in: its ``WorkItem.run`` span is the current OTel context
    while it runs, and is exported once it returns (or raises)."""

    def __init__(
        self, export: OtelExport, run_id: str, item: WorkItemRecord, attempt: int, what: str
    ) -> None:
        self.export = export
        self.run_id = run_id
        self.item = item
        self.attempt = attempt
        self.what = what
        self.trace_id = trace_id_of(run_id)
        self.span_id = handler_span_id(run_id, item.id, attempt)
        self.started_at = 0.0
        self.outcome = ""
        self._token: Any = None

    def __enter__(self) -> _HandlerSpan:
        from opentelemetry import context

        self.started_at = self.export._clock.now()
        self._token = context.attach(_parent_context(self.trace_id, self.span_id))
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: Any
    ) -> None:
        from opentelemetry import context

        context.detach(self._token)
        message = None
        if isinstance(error, RetryRequested):  # this attempt failed; another one comes
            self.outcome, message = "retry", error.error
        elif isinstance(error, Exception):
            self.outcome, message = "failed", f"{type(error).__name__}: {error}"
        elif error is not None:
            self.outcome, message = "canceled", type(error).__name__
        self.export._handler_ran(self, self.export._clock.now(), message)


def _parent_context(trace_id: int, span_id: int) -> Any:
    from opentelemetry import trace

    parent = trace.SpanContext(
        trace_id, span_id, is_remote=False, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))


def _remember(table: dict[tuple[str, str], int], key: tuple[str, str], value: int) -> None:
    table.pop(key, None)
    table[key] = value
    while len(table) > _REMEMBERED:
        del table[next(iter(table))]


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def _settle(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)
