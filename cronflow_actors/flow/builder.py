"""``cf.define(...)``: the Cronflow-style fluent builder.

Calls only record what they are told; ``build()`` (called by ``Runtime.register``) checks the
whole definition, raises one ``InvalidWorkflowError`` listing every problem (duplicate step ids,
an ``end_if`` without ``if_``, a bad retry, an invalid cron expression, ...), and compiles it to
a ``NetSpec`` that the net engine runs (``flow/compile.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Self

import msgspec

from cronflow_actors.errors import InvalidWorkflowError
from cronflow_actors.flow.cron import CatchUp, CronExpression, CronSchedule, time_zone
from cronflow_actors.flow.introspect import (
    FlowTrigger,
    StepDescription,
    describe,
    steps_of,
    triggers_of,
)
from cronflow_actors.flow.nodes import (
    ActionNode,
    Branch,
    CancelNode,
    EachNode,
    EventNode,
    GroupNode,
    HumanNode,
    IfNode,
    LogNode,
    Node,
    SleepNode,
    StepNode,
    SubflowNode,
    WhileNode,
    walk,
)
from cronflow_actors.flow.options import HOOK_NAMES, Cache, CircuitBreaker, Hooks, Retry
from cronflow_actors.flow.per_item import builds_a_flow, per_item_flow
from cronflow_actors.flow.triggers import (
    PollSpec,
    WebhookSpec,
    poll_spec,
    schema_problem,
    webhook_spec,
)
from cronflow_actors.flow.workflow_options import RateLimit, metadata_problems, rate_limit_of
from cronflow_actors.net.durations import parse_duration
from cronflow_actors.net.spec import NetSpec

__all__ = ["Flow", "SubflowNode", "WebhookSpec", "define", "use_test_harness", "walk"]

Fn = Callable[..., Any]


class Flow:
    """A Cronflow-style workflow. Chain steps on it; register it on a ``Runtime``."""

    def __init__(
        self,
        id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        tags: Iterable[str] = (),
        concurrency: int | None = None,
        timeout: float | str | None = None,
        hooks: Hooks | None = None,
        rate_limit: RateLimit | Mapping[str, Any] | None = None,
        queue: str | None = None,
        version: str = "v1",
        secrets: Mapping[str, Any] | None = None,
    ) -> None:
        self.id = id
        self.name: str = name if isinstance(name, str) and name.strip() else str(id)
        """What the flow is called in listings (its id unless given)."""
        self.description = description if isinstance(description, str) else ""
        if isinstance(tags, Iterable) and not isinstance(tags, str | bytes):
            tags = tuple(tags)  # once: a generator is read here only
        self.tags: tuple[str, ...] = tags if isinstance(tags, tuple) else ()
        self.version = version
        self.concurrency = concurrency
        self.hooks = hooks or Hooks()
        self.queue = queue
        """The named queue its runs wait in (its concurrency is set on the runtime)."""
        self.secrets: Mapping[str, Any] = dict(secrets) if isinstance(secrets, Mapping) else {}
        """Names to ``cf.env(...)`` or values: ``ctx.secrets`` (never persisted)."""
        self._options_problems = metadata_problems(
            name=name, description=description, tags=tags, queue=queue, secrets=secrets
        )
        self.rate_limit = rate_limit_of(rate_limit, self._options_problems)
        self._timeout = timeout
        self._root: list[Node] = []
        self._stack: list[tuple[IfNode, list[Node]]] = []
        self._problems: list[str] = []
        self.webhooks: list[WebhookSpec] = []
        self.schedules: list[CronSchedule] = []
        self.intervals: list[float] = []
        self.events: list[str] = []
        self.event_schemas: dict[str, Any] = {}
        """The schema of each ``on_event`` that has one, by event name."""
        self.polls: list[PollSpec] = []
        self._spec: NetSpec | None = None
        self._building = False
        self.needs_runtime: set[str] = set()
        """The problems only a runtime can settle (a subflow named by id, unresolved here)."""
        self.skip_when_empty = False
        """A per-item flow (``for_each``): a payload marked empty ends it at once."""
        self.waits: dict[str, Any] = {}
        """Compiled ``wait_for_event`` steps by task name."""
        self.humans: dict[str, Any] = {}
        """Compiled ``human_in_the_loop`` steps by task name."""

    # -- steps ------------------------------------------------------------------------------------

    def step(
        self,
        id: str,
        handler: Fn,
        *,
        retry: Retry | None = None,
        timeout: float | str | None = None,
        on_error: Fn | None = None,
        delay: float | str | None = None,
        cache: Cache | None = None,
        circuit_breaker: CircuitBreaker | None = None,
    ) -> Self:
        """A unit of work; its output becomes ``ctx.last`` and ``ctx.steps[id]``. ``delay``:
        wait that long (on a durable timer) before it runs; ``cache``: reuse the output of an
        earlier run with the same key; ``circuit_breaker``: fail fast while it keeps failing."""
        return self._add(
            StepNode(
                id=id,
                handler=handler,
                retry=retry,
                timeout=self._seconds(timeout, f"step {id!r} timeout"),
                on_error=() if on_error is None else (on_error,),
                delay=self._seconds(delay, f"step {id!r} delay"),
                cache=self._option(cache, Cache, f"step {id!r} cache"),
                circuit_breaker=self._option(
                    circuit_breaker, CircuitBreaker, f"step {id!r} circuit_breaker"
                ),
            )
        )

    def on_error(self, handler: Fn) -> Self:
        """Give the previous node a fallback: ``handler(ctx)`` (with ``ctx.error``) supplies its
        output once it failed (a step or an action: once its attempts are used up). It may
        follow a step, an action, a ``while_``, a ``parallel``, a ``race``, a ``for_each``, a
        ``batch``, a ``subflow`` or a ``wait_for_event``. Several fallbacks are tried in the
        order given, each with the error of the one before; if the last raises, the node
        fails with that."""
        nodes = self._current()
        kinds = (StepNode, ActionNode, WhileNode, GroupNode, EachNode, SubflowNode, EventNode)
        if nodes and isinstance(nodes[-1], kinds):
            return self._amend("on_error", kinds, on_error=(*nodes[-1].on_error, handler))
        return self._amend("on_error", kinds)

    def retry(self, retry: Retry) -> Self:
        """Give the previous step (or action) a retry policy."""
        return self._amend("retry", (StepNode, ActionNode), retry=retry)

    def cache(
        self, cache: Cache | None = None, *, key: Fn | None = None, ttl: float | str | None = None
    ) -> Self:
        """Give the previous step a cache: ``.cache(cf.Cache(key=fn, ttl="1h"))`` or
        ``.cache(key=fn, ttl="1h")``."""
        given = cache if cache is not None else Cache(key=key, ttl=ttl)
        checked = self._option(given, Cache, "cache")
        return self._amend("cache", (StepNode,), cache=checked)

    def action(
        self,
        id: str,
        handler: Fn,
        *,
        durable: bool = True,
        retry: Retry | None = None,
        timeout: float | str | None = None,
    ) -> Self:
        """A side effect run detached: the flow goes on at once, its output is ignored, an
        error is logged and never fails the run. ``retry`` tries it again (on the runtime's
        clock) and ``timeout`` bounds each attempt. After a crash it is dispatched again unless
        ``durable=False``."""
        seconds = self._seconds(timeout, f"action {id!r} timeout")
        node = ActionNode(id=id, handler=handler, durable=durable, retry=retry, timeout=seconds)
        return self._add(node)

    def sleep(self, id: str, duration: float | str | Fn) -> Self:
        """Wait ``duration`` ("30s", seconds, or ``duration(ctx)`` computed when the sleep
        starts) on a durable timer."""
        return self._add(self._sleep_node(id, duration, "sleep"))

    def delay(self, id: str, duration: float | str | Fn) -> Self:
        """A durable delay: wait ``duration`` (as ``sleep``) before the next step."""
        return self._add(self._sleep_node(id, duration, "delay"))

    def log(self, message: str | Fn, level: str = "info") -> Self:
        """Write a log line (``message``, or ``message(ctx)``) with the run's and the step's
        ids, to the ``cronflow_actors.flow.log`` logger; its output is not ``ctx.last``."""
        return self._add(LogNode(id=f"log#{self._count()}", message=message, level=level))

    def wait_for_event(
        self,
        id: str,
        event: str,
        *,
        filter: Fn | None = None,
        validate: Fn | None = None,
        timeout: float | str | None = None,
    ) -> Self:
        """Wait until ``publish_event(event, payload)`` with ``filter(payload, ctx)`` true (if
        given; ``ctx`` is this run's); the payload is the step's output. ``validate(payload,
        ctx)`` of the event that passed the filter returns True, or what is wrong with it (the
        step then fails with that). On ``timeout`` the step fails."""
        timeout_s = self._seconds(timeout, f"wait_for_event {id!r} timeout")
        node = EventNode(id=id, event=event, filter=filter, validate=validate, timeout=timeout_s)
        return self._add(node)

    def human_in_the_loop(
        self,
        id: str,
        *,
        description: str | Fn = "",
        timeout: float | str | None = None,
        on_pause: Fn | None = None,
        on_timeout: Fn | None = None,
        metadata: Mapping[str, Any] | None = None,
        approval_url: str | Fn | None = None,
    ) -> Self:
        """Pause until ``resume(token, payload)``; ``on_pause(ctx, token)`` is called once the
        pause is durable. With ``timeout`` (counted from the pause) the step completes as timed
        out and ``on_timeout(ctx)`` is called once. ``description`` (or ``description(ctx)``)
        and ``approval_url`` (or ``approval_url(ctx, token)``) show in ``list_paused``."""
        return self._add(
            HumanNode(
                id=id,
                description=description,
                timeout=self._seconds(timeout, f"human_in_the_loop {id!r} timeout"),
                on_pause=on_pause,
                on_timeout=on_timeout,
                metadata=dict(metadata or {}),
                approval_url=approval_url,
            )
        )

    def pause(self, id: str, on_pause: Fn | None = None) -> Self:
        """Wait, with no timeout, until ``resume(token, payload)`` (``on_pause(ctx, token)``
        tells the token once the pause is durable); the output is as ``human_in_the_loop``'s."""
        return self._add(HumanNode(id=id, on_pause=on_pause, kind="pause"))

    def subflow(self, id: str, flow: Flow | str, input: Any = None) -> Self:
        """Run ``flow`` (a ``Flow``, or the id of a flow registered on the runtime before this
        one) as a child workflow; its output is this step's output. Its payload is
        ``input(ctx)``, or ``input`` itself if it is not a function, or else ``ctx.last``."""
        if not isinstance(flow, Flow | str) or not flow:
            self._problems.append(
                f"subflow {id!r}: expected a cf.define(...) workflow or a flow id, got {flow!r}"
            )
        return self._add(SubflowNode(id=id, flow=flow, input=input))

    def cancel(self, reason: str = "") -> Self:
        """End the run as canceled when the flow reaches this point."""
        return self._add(CancelNode(id=f"cancel#{self._count()}", reason=reason))

    # -- control flow ------------------------------------------------------------------------------

    def if_(self, name: str, condition: Fn) -> Self:
        """Start a branch: the steps until ``elif_``/``else_``/``end_if`` run if ``condition(ctx)``
        (plain or async) is true. Exactly one branch of the block runs."""
        node = IfNode(id=name, branches=[Branch(name=name, condition=condition)])
        self._current().append(node)
        self._stack.append((node, node.branches[0].nodes))
        return self

    def elif_(self, name: str, condition: Fn) -> Self:
        if not self._stack:
            self._problems.append(f"elif_({name!r}) without an if_ before it")
            return self
        node = self._stack[-1][0]
        if node.branches[-1].condition is None:
            self._problems.append(f"elif_({name!r}) after else_() in if_({node.id!r})")
        node.branches.append(Branch(name=name, condition=condition))
        self._stack[-1] = (node, node.branches[-1].nodes)
        return self

    def else_(self) -> Self:
        if not self._stack:
            self._problems.append("else_() without an if_ before it")
            return self
        node = self._stack[-1][0]
        if node.branches[-1].condition is None:
            self._problems.append(f"if_({node.id!r}) has two else_()")
        node.branches.append(Branch(name=f"{node.id}:else", condition=None))
        self._stack[-1] = (node, node.branches[-1].nodes)
        return self

    def end_if(self) -> Self:
        if not self._stack:
            self._problems.append("end_if() without an if_ before it")
            return self
        self._stack.pop()
        return self

    def parallel(
        self,
        id: str,
        handlers: Sequence[Fn],
        *,
        max_concurrency: int | None = None,
        timeout: float | str | None = None,
    ) -> Self:
        """Run ``handlers`` (at most ``max_concurrency`` at a time); the output is their results
        in input order. The first failure, or ``timeout`` passing, fails the step (and cancels
        the others)."""
        return self._add(self._group(id, handlers, "all", max_concurrency, timeout))

    def race(
        self,
        id: str,
        handlers: Sequence[Fn],
        *,
        max_concurrency: int | None = None,
        timeout: float | str | None = None,
    ) -> Self:
        """Run ``handlers`` at once; the first to finish gives the output, the rest are
        canceled. If the first to finish fails, or ``timeout`` passes first, the step fails."""
        return self._add(self._group(id, handlers, "first", max_concurrency, timeout))

    def while_(self, name: str, condition: Fn, handler: Fn, *, max_iterations: int = 1000) -> Self:
        """Run ``handler(ctx)`` while ``condition(ctx)`` is true, each iteration durable; more
        than ``max_iterations`` fails the step. The output is the last iteration's."""
        return self._add(
            WhileNode(id=name, condition=condition, handler=handler, max_iterations=max_iterations)
        )

    def for_each(self, name: str, items: Fn, handler: Fn) -> Self:
        """``handler(item, ctx)`` for every item of ``items(ctx)``, all at once; or, when the
        handler's second parameter is named ``flow`` (``lambda item, flow: flow.step(...)``),
        a flow per item, run as a child workflow whose payload is the item. The output is
        ``{"type": "forEach", "name", "results": [{"item", "result", "index"}], "total_items"}``
        (a flow's result: its output)."""
        return self._add(self._each(name, items, handler, 0))

    def batch(self, name: str, items: Fn, size: int, handler: Fn) -> Self:
        """``handler(batch, ctx)`` (or a flow per batch, as ``for_each``) for the chunks of
        ``size`` items, one after another. The output is ``{"type": "batch", "name",
        "results": [{"batch_index", "items", "result", "size"}], "total_batches",
        "total_items"}``."""
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            self._problems.append(f"batch {name!r}: size must be a whole number >= 1, got {size!r}")
            size = 1
        return self._add(self._each(name, items, handler, size))

    # -- triggers ----------------------------------------------------------------------------------

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

        The run keeps the ``required_headers`` and ``keep_headers`` it is sent
        (``ctx.trigger.headers``), never ``Authorization``, ``Cookie`` or the signature header;
        with ``parse_raw_body=True`` it keeps the exact body too (``ctx.trigger.raw_body``).
        """
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
        """Trigger a run every ``interval`` ("15m", "1h", or seconds)."""
        seconds = self._seconds(interval, "on_interval")
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
        if not isinstance(name, str) or not name:
            self._problems.append(f"on_event needs an event name, got {name!r}")
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
        seconds = self._seconds(interval, "on_poll interval")
        spec = poll_spec(fn, interval, key, self._problems, seconds)
        if spec is not None:
            self.polls.append(spec)
        return self

    def manual(self) -> Self:
        """Mark the flow as triggered by hand (every flow can be)."""
        return self

    # -- build ------------------------------------------------------------------------------------

    @property
    def timeout(self) -> float | None:
        return self._seconds(self._timeout, "workflow timeout", report=False)

    def build(self, resolve: Callable[[str], Flow | None] | None = None) -> NetSpec:
        """Check the definition and compile it; raises ``InvalidWorkflowError`` with every
        problem found. The result is cached. ``resolve(flow_id)``: the flows a runtime has
        registered, for subflows named by id (without it they are a problem)."""
        if self._spec is not None:
            return self._spec
        if self._building:
            raise InvalidWorkflowError(
                self.id, [f"flow {self.id!r} runs itself as a subflow, which never ends"]
            )
        self._building = True
        try:
            return self._build(resolve)
        finally:
            self._building = False

    def _build(self, resolve: Callable[[str], Flow | None] | None) -> NetSpec:
        from cronflow_actors.flow.compile import compile_flow

        problems = list(self._problems)
        if not isinstance(self.id, str) or not self.id:
            problems.append(f"a workflow needs a non-empty id, got {self.id!r}")
        if self._stack:
            problems.append(f"if_({self._stack[-1][0].id!r}) has no end_if()")
        if self.concurrency is not None and (
            not isinstance(self.concurrency, int) or self.concurrency < 1
        ):
            problems.append(f"concurrency must be a whole number >= 1, got {self.concurrency!r}")
        self._seconds(self._timeout, "workflow timeout", problems=problems)
        problems.extend(self._options_problems)
        for name in HOOK_NAMES:
            hook = getattr(self.hooks, name)
            if hook is not None and not callable(hook):
                problems.append(f"hooks.{name} must be a function, got {hook!r}")
        if not self._root:
            problems.append("the workflow has no steps; add one with .step(id, handler)")
        spec = compile_flow(self, self._root, problems, resolve)
        if problems or spec is None:
            raise InvalidWorkflowError(self.id, problems)
        self._spec = spec
        return spec

    def validate(self) -> None:
        """Check the definition as registration does; raises the same ``InvalidWorkflowError``
        listing every problem. (What only a runtime knows is checked at registration: that the
        flows named by id in subflows are registered, that no other flow takes its webhooks.)"""
        try:
            self.build()
        except InvalidWorkflowError as error:
            problems = [p for p in error.problems if p not in self.needs_runtime]
            if problems:
                raise InvalidWorkflowError(self.id, problems) from None

    # -- introspection ----------------------------------------------------------------------------

    def get_steps(self) -> list[StepDescription]:
        """Its steps in order (an ``if_``'s branches inside it), with their options."""
        return steps_of(self._root)

    def get_step(self, id: str) -> StepDescription:
        """One step, found anywhere in the flow (``KeyError`` naming the ids if none)."""
        for node in walk(self._root):
            if node.id == id:
                return steps_of([node])[0]
        known = [node.id for node in walk(self._root)]
        raise KeyError(f"flow {self.id!r} has no step {id!r} (steps: {known})")

    def get_triggers(self) -> list[FlowTrigger]:
        return triggers_of(self)

    def to_json(self) -> str:
        """The flow as JSON: what ``get_workflows()`` says of it, and its steps."""
        record = msgspec.to_builtins(describe(self))
        record["steps"] = msgspec.to_builtins(self.get_steps())
        return msgspec.json.encode(record).decode()

    def test(self) -> Any:
        """A test harness on the real engine, in memory, on a clock that jumps to the next
        timer (``FlowTest``: ``.trigger(payload)``, ``.mock_step(id, fn)``,
        ``.expect_step(id).to_succeed()``, ``await .run()``; see ``runtime/testing.py``)."""
        if not _TEST_HARNESS:
            raise RuntimeError("the test harness comes with the runtime: import cronflow_actors")
        return _TEST_HARNESS[0](self)

    # -- internals ---------------------------------------------------------------------------------

    def _current(self) -> list[Node]:
        return self._stack[-1][1] if self._stack else self._root

    def _add(self, node: Node) -> Self:
        self._spec = None
        self._current().append(node)
        return self

    def _count(self) -> int:
        return sum(1 for _ in walk(self._root))

    def _amend(self, what: str, kinds: tuple[type[Node], ...], **change: Any) -> Self:
        nodes = self._current()
        if not nodes or not isinstance(nodes[-1], kinds):
            allowed = ", ".join(f".{k.__name__.removesuffix('Node').lower()}()" for k in kinds)
            self._problems.append(
                f".{what}() must follow one of {allowed}; it follows {_describe(nodes)}"
            )
            return self
        if change:
            self._spec = None
            nodes[-1] = msgspec.structs.replace(nodes[-1], **change)
        return self

    def _option(self, value: Any, kind: type, what: str) -> Any:
        if value is not None and not isinstance(value, kind):
            self._problems.append(f"{what} must be a cf.{kind.__name__}(...), got {value!r}")
            return None
        return value

    def _sleep_node(self, id: str, duration: float | str | Fn, kind: str) -> SleepNode:
        if callable(duration):
            return SleepNode(id=id, duration=duration, kind=kind)
        seconds = self._seconds(duration, f"{kind} {id!r} duration")
        return SleepNode(id=id, seconds=seconds or 0.0, kind=kind)

    def _group(
        self,
        id: str,
        handlers: Sequence[Fn],
        mode: str,
        max_concurrency: int | None,
        timeout: float | str | None,
    ) -> GroupNode:
        what = "parallel" if mode == "all" else "race"
        return GroupNode(
            id=id,
            handlers=tuple(handlers),
            mode=mode,
            max_concurrency=max_concurrency,
            timeout=self._seconds(timeout, f"{what} {id!r} timeout"),
        )

    def _each(self, name: str, items: Fn, handler: Fn, size: int) -> EachNode:
        inner = None
        if callable(handler) and builds_a_flow(handler):
            inner = per_item_flow(handler, f"{self.id}.{name}", self._problems)
        return EachNode(id=name, items=items, handler=handler, size=size, inner=inner)

    def _seconds(
        self,
        value: float | str | None,
        what: str,
        *,
        problems: list[str] | None = None,
        report: bool = True,
    ) -> float | None:
        if value is None:
            return None
        try:
            return parse_duration(value, what)
        except ValueError as error:
            if problems is not None:
                problems.append(str(error))
            elif report:
                self._problems.append(str(error))
            return None


_TEST_HARNESS: list[Callable[[Flow], Any]] = []


def use_test_harness(factory: Callable[[Flow], Any]) -> None:
    """How ``Flow.test()`` makes its harness: the runtime layer, which runs the engine, says
    so when it is imported (this layer may not import it)."""
    _TEST_HARNESS[:] = [factory]


def _describe(nodes: list[Node]) -> str:
    if not nodes:
        return "nothing"
    return f"{type(nodes[-1]).__name__.removesuffix('Node').lower()} {nodes[-1].id!r}"


def define(
    id: str,
    *,
    name: str | None = None,
    description: str | None = None,
    tags: Iterable[str] = (),
    hooks: Hooks | None = None,
    timeout: float | str | None = None,
    concurrency: int | None = None,
    rate_limit: RateLimit | Mapping[str, Any] | None = None,
    queue: str | None = None,
    version: str = "v1",
    secrets: Mapping[str, Any] | None = None,
) -> Flow:
    """Start a Cronflow-style workflow definition (see ``Flow``).

    ``name``, ``description`` and ``tags`` describe the flow in ``Runtime.get_workflows()``
    and ``GET /flows``. ``concurrency``: at most that many runs at once; ``rate_limit``
    (``cf.RateLimit(count=10, per="1m")`` or ``{"count": 10, "per": "1m"}``): at most that many
    run starts per window; ``queue``: its runs wait in the named FIFO queue, shared with the
    other flows that name it, whose concurrency is set on the runtime
    (``cf.Runtime(queues={"emails": 5})``). Runs over any limit wait in order in a durable
    queue; none is dropped. ``secrets`` maps names to ``cf.env("VAR")`` or plain values, read
    by steps as ``ctx.secrets[name]`` and never persisted. Every option is checked by
    ``build()`` with the rest of the definition.
    """
    return Flow(
        id,
        name=name,
        description=description,
        tags=tags,
        concurrency=concurrency,
        timeout=timeout,
        hooks=hooks,
        rate_limit=rate_limit,
        queue=queue,
        version=version,
        secrets=secrets,
    )
