"""The trigger methods of a ``cf.define(...)`` chain: ``on_webhook``, ``on_schedule``,
``on_interval``, ``on_event``, ``on_poll`` and ``manual``. What they record is checked as they
are called (problems wait for ``build()``) and compiled into the flow's ``FlowTriggers``."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Self, TypeVar

from cronflow_actors.flow.chain import Chain
from cronflow_actors.flow.cron import CatchUp, CronExpression, CronSchedule, time_zone
from cronflow_actors.flow.definition import FlowTriggers
from cronflow_actors.flow.triggers import (
    PollSpec,
    SignatureScheme,
    WebhookSpec,
    event_name_problem,
    poll_spec,
    webhook_spec,
)
from cronflow_actors.net.validation import schema_problem

__all__ = ["TriggerMethods", "without_triggers"]

Fn = Callable[..., Any]


class TriggerMethods(Chain):
    """How runs of a ``Flow`` (which inherits these) start besides by hand."""

    webhooks: list[WebhookSpec]
    schedules: list[CronSchedule]
    intervals: list[float]
    events: list[str]
    event_schemas: dict[str, Any]
    """The schema of each ``on_event`` that has one, by event name."""
    polls: list[PollSpec]

    def _init_triggers(self) -> None:
        self.webhooks = []
        self.schedules = []
        self.intervals = []
        self.events = []
        self.event_schemas = {}
        self.polls = []

    def on_webhook(
        self,
        path: str,
        *,
        method: str = "POST",
        schema: Any = None,
        validate: Fn | None = None,
        condition: Fn | None = None,
        header_validator: Fn | None = None,
        required_headers: Iterable[str] = (),
        idempotency_key: Fn | str | None = None,
        require_token: bool = False,
        hmac_secret: str | None = None,
        signature_header: str = "X-Signature-256",
        signature_tolerance: float = 300.0,
        signature_scheme: SignatureScheme | Sequence[SignatureScheme] = "v2",
        keep_headers: Iterable[str] = (),
        parse_raw_body: bool = False,
        on_success: Fn | None = None,
        on_error: Fn | None = None,
    ) -> Self:
        """Trigger runs from HTTP requests (served by ``cronflow-actors serve``).

        Every callback takes one ``cf.WebhookRequest`` (payload, headers, method, path, params,
        query, raw_body), plain or async: ``header_validator(request)`` and
        ``validate(request)`` return True or a string saying what is wrong (400);
        ``condition(request)`` false starts nothing (200); ``idempotency_key(request)`` (or a
        header name) makes requests with one key start one run. ``on_success(request,
        run_id)`` and ``on_error(request, problem)`` may return the answer (a
        ``cf.WebhookResponse``, or a JSON value for the body). A callback that raises is
        logged with its traceback; the request is answered with a 500 problem naming it (for
        ``on_success``/``on_error``: with the standard answer).

        With ``hmac_secret`` each request must be signed (``X-Signature-256: t=<unix
        seconds>,v2=<hex>``, the HMAC-SHA256 of ``"<t>\\n<METHOD> <path?query>\\n"`` and the body:
        ``cronflow_actors.http.auth.sign_request`` makes it); ``signature_scheme="v1"`` takes
        the older ``v1=`` of ``"<t>."`` and the body alone, ``("v1", "v2")`` either (while
        senders move to v2).

        The run keeps the ``required_headers`` and ``keep_headers`` it is sent
        (``ctx.trigger.headers``), never ``Authorization``, ``Cookie`` or the signature header;
        with ``parse_raw_body=True`` it keeps the exact body too (``ctx.trigger.raw_body``).
        """
        self._changed()  # the compiled flow holds its triggers
        callbacks = {
            "validate": validate,
            "condition": condition,
            "header_validator": header_validator,
            "on_success": on_success,
            "on_error": on_error,
        }
        self.webhooks.append(
            webhook_spec(
                path,
                method=method,
                schema=schema,
                callbacks={name: fn for name, fn in callbacks.items() if fn is not None},
                idempotency_key=idempotency_key,
                required_headers=required_headers,
                keep_headers=keep_headers,
                signature_header=signature_header,
                signature_tolerance=signature_tolerance,
                signature_scheme=signature_scheme,
                problems=self._problems,
                require_token=require_token,
                hmac_secret=hmac_secret,
                parse_raw_body=bool(parse_raw_body),
            )
        )
        return self

    def on_schedule(
        self, cron: str, *, timezone: str = "UTC", catch_up: CatchUp | str = "latest"
    ) -> Self:
        """Trigger a run at every tick of a cron expression: 5 fields, 6 with seconds first, or
        a macro such as ``@daily``, read in ``timezone`` (an IANA name). ``catch_up`` says what
        happens to the ticks missed while no runtime was running: ``"latest"`` starts one run
        for the most recent, ``"none"`` skips them, ``"all"`` starts one per tick (the most
        recent 100 at most). ``flow/cron.py`` tells how days and DST changes are handled."""
        self._changed()  # the compiled flow holds its triggers
        where = f"on_schedule({cron!r})"
        expression = policy = None
        zone_known = False
        try:
            expression = CronExpression.parse(cron)
        except ValueError as error:
            self._problems.append(f"{where}: {error}")
        try:
            time_zone(timezone)
            zone_known = True
        except ValueError as error:
            self._problems.append(f"{where}: {error}")
        try:
            policy = CatchUp.parse(catch_up)
        except ValueError as error:
            self._problems.append(f"{where}: {error}")
        if expression is not None and zone_known and policy is not None:
            self.schedules.append(
                CronSchedule(expression=expression, timezone=timezone, catch_up=policy)
            )
        return self

    def on_interval(self, interval: float | str) -> Self:
        """Trigger a run every ``interval`` ("15m", "1h", "every 900 s" as ``flows`` prints it,
        or seconds), at its multiples on the runtime's clock: one run per tick, never two;
        ticks missed while no runtime ran are skipped (a cron schedule's are caught up:
        ``on_schedule(catch_up=)``)."""
        self._changed()  # the compiled flow holds its triggers
        length = interval
        if isinstance(interval, str) and interval.lower().split()[:1] == ["every"]:
            # as flows and fire print it, "every 600 s" (newcomer h32 F5: refused here)
            length = interval.strip()[len("every") :].strip() or interval
        seconds = self._seconds(length, "on_interval", report=False)
        if seconds is None:  # its problem, said of it as written
            self._seconds(interval, "on_interval")
        if seconds is not None and seconds <= 0:
            self._problems.append(f"on_interval must be longer than 0, got {interval!r}")
        elif seconds is not None:
            self.intervals.append(seconds)
        return self

    def on_event(self, name: str, *, schema: Any = None) -> Self:
        """Trigger a run for every ``publish_event(name, payload)``. With ``schema`` (a
        ``msgspec.Struct``, a dataclass, a TypedDict, ...), a payload that does not match
        starts no run of this flow: ``publish_event`` lists the refusal (``.refused``), and
        raises ``InvalidEventError`` when every flow listening refused it."""
        self._changed()  # the compiled flow holds its triggers
        wrong = event_name_problem(name)
        if wrong is not None:
            self._problems.append(f"on_event: {wrong}")
            return self
        if name in self.events:
            self._problems.append(f"on_event({name!r}) is given twice")
            return self
        if schema is not None:
            problem = schema_problem(schema, f"on_event({name!r})")
            if problem:
                self._problems.append(problem)
            self.event_schemas[name] = schema
        self.events.append(name)
        return self

    def on_poll(self, fn: Fn, *, interval: float | str = "1m", key: Fn | None = None) -> Self:
        """While a runtime runs, call ``fn(ctx)`` (plain or async; a ``cf.PollContext``) at
        every multiple of ``interval`` and start one run per new item it returns (a list;
        None is no items). ``key(item)`` (a string or an int) says which items are the same:
        by default the item's ``"id"`` when it is a mapping, else the item itself. An item
        whose key was seen is never started again, across restarts too. The run's payload
        is the item, or its ``"payload"`` for Cronflow's ``{"id", "payload"}`` items. A poll
        that raises is logged and counted; the next one goes on."""
        self._changed()  # the compiled flow holds its triggers
        seconds = self._seconds(interval, "on_poll interval")
        spec = poll_spec(fn, interval, key, self._problems, seconds)
        if spec is not None:
            self.polls.append(spec)
        return self

    def manual(self) -> Self:
        """Mark the flow as triggered by hand (every flow can be)."""
        return self

    def triggers(self) -> FlowTriggers:
        """The triggers recorded so far."""
        return FlowTriggers(
            webhooks=tuple(self.webhooks),
            schedules=tuple(self.schedules),
            intervals=tuple(self.intervals),
            events=tuple(self.events),
            event_schemas=dict(self.event_schemas),
            polls=tuple(self.polls),
        )


F = TypeVar("F", bound=TriggerMethods)


def without_triggers(flow: F) -> F:
    """A copy of ``flow`` that only its caller starts (no webhooks, schedules, intervals,
    events or polls); ``flow`` is not changed."""
    clone = copy.copy(flow)
    clone._registered = False  # (a copy of one registered: the test harness registers it)
    clone._problems = list(flow._problems)
    clone._init_triggers()
    clone._changed()
    return clone
