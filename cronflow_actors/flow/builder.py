"""``cf.define(...)``: the Cronflow-style fluent builder.

Calls only record what they are told; ``build()`` (called by ``Runtime.register``) checks the
whole definition, raises one ``InvalidWorkflowError`` listing every problem (duplicate step ids,
an ``end_if`` without ``if_``, a bad retry, an invalid cron expression, ...), and compiles it to
a ``NetSpec`` that the net engine runs (``flow/compile.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Self

import msgspec

from cronflow_actors.errors import InvalidWorkflowError
from cronflow_actors.flow.branching import ControlFlowMethods
from cronflow_actors.flow.compile import compile_flow
from cronflow_actors.flow.compiled import CompiledFlow, Resolve
from cronflow_actors.flow.definition import FlowDefinition
from cronflow_actors.flow.introspect import (
    FlowTrigger,
    StepDescription,
    describe,
    kind_of,
    steps_of,
    triggers_of,
)
from cronflow_actors.flow.nodes import (
    ActionNode,
    CancelNode,
    EachNode,
    EventNode,
    GroupNode,
    HumanNode,
    LogNode,
    SleepNode,
    StepNode,
    SubflowNode,
    WhileNode,
    walk,
)
from cronflow_actors.flow.options import Cache, CircuitBreaker, Hooks, Retry
from cronflow_actors.flow.trigger_methods import TriggerMethods
from cronflow_actors.flow.triggers import WebhookSpec
from cronflow_actors.flow.workflow_options import (
    RateLimit,
    checked_hooks,
    hooks_of,
    metadata_problems,
    rate_limit_of,
)
from cronflow_actors.net.spec import NetSpec, version_problem

__all__ = ["Flow", "SubflowNode", "WebhookSpec", "define", "use_test_harness", "walk"]

Fn = Callable[..., Any]


class Flow(ControlFlowMethods, TriggerMethods):
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
        hooks: Hooks | Mapping[str, Any] | None = None,
        rate_limit: RateLimit | Mapping[str, Any] | None = None,
        queue: str | None = None,
        version: str = "v1",
        secrets: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.id = id
        self.name: str = name if isinstance(name, str) and name.strip() else str(id)
        """What the flow is called in listings (its id unless given)."""
        self.description = description if isinstance(description, str) else ""
        if isinstance(tags, Iterable) and not isinstance(tags, str | bytes):
            tags = tuple(tags)  # once: a generator is read here only
        self.tags: tuple[str, ...] = tags if isinstance(tags, tuple) else ()
        self.version = version
        self.concurrency = concurrency
        self._options_problems: list[str] = []
        self.hooks = self._hooks_given = hooks_of(hooks, self._options_problems)
        self.queue = queue
        """The named queue its runs wait in (its concurrency is set on the runtime)."""
        self.secrets: Mapping[str, Any] = dict(secrets) if isinstance(secrets, Mapping) else {}
        """Names to ``cf.env(...)`` or values: ``ctx.secrets`` (never persisted)."""
        self._options_problems += metadata_problems(
            name=name, description=description, tags=tags, queue=queue, secrets=secrets
        )
        self.rate_limit = rate_limit_of(rate_limit, self._options_problems)
        self._timeout = timeout
        self._init_triggers()
        self._building = False
        self.needs_runtime: set[str] = set()
        """The problems only a runtime can settle (a subflow named by id, unresolved here)."""
        self.skip_when_empty = False
        """A per-item flow (``for_each``): a payload marked empty ends it at once."""

    # -- steps ------------------------------------------------------------------------------------

    def step(
        self,
        id: str,
        handler: Fn,
        options: Mapping[str, Any] | None = None,
        *,
        retry: Retry | Mapping[str, Any] | None = None,
        timeout: float | str | None = None,
        on_error: Fn | None = None,
        delay: float | str | None = None,
        cache: Cache | Mapping[str, Any] | None = None,
        circuit_breaker: CircuitBreaker | Mapping[str, Any] | None = None,
    ) -> Self:
        """A unit of work; its output becomes ``ctx.last`` and ``ctx.steps[id]``. ``delay``:
        wait that long (on a durable timer) before it runs; ``cache``: reuse the output of an
        earlier run with the same key; ``circuit_breaker``: fail fast while it keeps failing.
        ``options``: the same as Cronflow's dict (``{"timeout": "5s", "retry": {...},
        "circuitBreaker": {...}}``), for those not given by name."""
        named: dict[str, Any] = {"retry": retry, "timeout": timeout, "delay": delay}
        named.update(cache=cache, circuit_breaker=circuit_breaker)
        return self._add(self._step_node(id, handler, options, named, on_error))

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

    def retry(self, retry: Retry | Mapping[str, Any]) -> Self:
        """Give the previous step (or action) a retry policy (a ``cf.Retry``, or Cronflow's
        dict of it: ``options.from_mapping``); after a ``wait_for_event`` with a timeout, a
        wait that timed out waits again while attempts remain."""
        nodes = self._current()
        where = f"{kind_of(nodes[-1])} {nodes[-1].id!r} retry" if nodes else "retry"
        checked = self._option(retry, Retry, where)
        return self._amend("retry", (StepNode, ActionNode, EventNode), retry=checked)

    def timeout(self, duration: float | str) -> Self:
        """Give the previous step (or action) a timeout: each attempt is cut after
        ``duration`` (as its ``timeout=`` option; Cronflow's chained ``.timeout(d)``)."""
        seconds = self._seconds(duration, ".timeout()")
        return self._amend("timeout", (StepNode, ActionNode), timeout=seconds)

    def cache(
        self,
        cache: Cache | Mapping[str, Any] | None = None,
        *,
        key: Fn | None = None,
        ttl: float | str | None = None,
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
        retry: Retry | Mapping[str, Any] | None = None,
        timeout: float | str | None = None,
    ) -> Self:
        """A side effect run detached: the flow goes on at once, its output is ignored, an
        error is logged and never fails the run. ``retry`` tries it again (on the runtime's
        clock) and ``timeout`` bounds each attempt. After a crash it is dispatched again unless
        ``durable=False``."""
        seconds = self._seconds(timeout, f"action {id!r} timeout")
        checked = self._option(retry, Retry, f"action {id!r} retry")
        node = ActionNode(id=id, handler=handler, durable=durable, retry=checked, timeout=seconds)
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
        *more: Any,
        filter: Fn | None = None,
        validate: Fn | None = None,
        timeout: float | str | None = None,
        retry: Retry | Mapping[str, Any] | None = None,
    ) -> Self:
        """Wait until ``publish_event(event, payload)`` with ``filter(payload, ctx)`` true (if
        given; ``ctx`` is this run's); the payload is the step's output. ``validate(payload,
        ctx)`` of the event that passed the filter returns True, or what is wrong with it (the
        step then fails with that). On ``timeout`` the step fails (``StepTimeoutError``), or,
        with ``retry``, waits again after the retry's delay while attempts remain."""
        if more:  # Cronflow's waitForEvent(name, timeout), the id before it (newcomer h35 F8)
            said = ", ".join(map(repr, (id, event, *more)))
            raise InvalidWorkflowError(
                self.id,
                [
                    f"wait_for_event({said}): it takes the step's id and the event's name, the "
                    f"timeout by name: .wait_for_event({id!r}, {event!r}, timeout={more[0]!r})"
                ],
            )
        timeout_s = self._seconds(timeout, f"wait_for_event {id!r} timeout")
        checked = self._option(retry, Retry, f"wait_for_event {id!r} retry")
        node = EventNode(
            id=id, event=event, filter=filter, validate=validate, timeout=timeout_s, retry=checked
        )
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
        pause is durable, and again after a crash or a stop that cut it, while the pause is open
        (at least once: ``engine/notices.py``). With ``timeout`` (counted from the pause) the
        step completes as timed out and ``on_timeout(ctx)`` is called once. ``description`` (or
        ``description(ctx)``) and ``approval_url`` (or ``approval_url(ctx, token)``) show in
        ``list_paused``."""
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
        tells the token once the pause is durable, at least once); the output is as
        ``human_in_the_loop``'s."""
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

    # -- build ------------------------------------------------------------------------------------

    @property
    def run_timeout(self) -> float | None:
        """The run's ``timeout`` (seconds; None: none), as ``define(timeout=...)`` gave it."""
        return self._seconds(self._timeout, "workflow timeout", report=False)

    def definition(self) -> FlowDefinition:
        """What the chain says so far, as data (the compiler's input)."""
        return FlowDefinition(
            id=self.id,
            name=self.name,
            description=self.description,
            tags=self.tags,
            version=self.version,
            nodes=tuple(self._root),
            triggers=self.triggers(),
            hooks=self.hooks,
            timeout=self.run_timeout,
            concurrency=self.concurrency,
            rate_limit=self.rate_limit,
            queue=self.queue,
            secrets=self.secrets,
            skip_when_empty=self.skip_when_empty,
        )

    def compile(self, resolve: Resolve | None = None) -> CompiledFlow:
        """Check the definition and compile it to the ``CompiledFlow`` a runtime registers;
        raises ``InvalidWorkflowError`` with every problem found. The result is kept until the
        chain changes. ``resolve(flow_id)``: the flows a runtime has registered, for subflows
        named by id (without it they are a problem)."""
        if self._compiled is not None:
            return self._compiled
        if self._building:
            raise InvalidWorkflowError(
                self.id, [f"flow {self.id!r} runs itself as a subflow, which never ends"]
            )
        self._building = True
        try:
            self._compiled = self._compile(resolve)
        finally:
            self._building = False
        return self._compiled

    def build(self, resolve: Resolve | None = None) -> NetSpec:
        """``compile(resolve)``'s net: what the engine runs."""
        return self.compile(resolve).spec

    def _compile(self, resolve: Resolve | None) -> CompiledFlow:
        problems = list(self._problems)
        if not isinstance(self.id, str) or not self.id:
            problems.append(
                f"a workflow needs a non-empty id, got {self.id!r}: the id comes first, the "
                "options by name (Cronflow's define({id, name}) is cf.define('orders', "
                "name='Orders'))"
            )
        if (version := version_problem(self.version)) is not None:
            problems.append(version)
        if self._stack:
            problems.append(f"if_({self._stack[-1][0].id!r}) has no end_if()")
        if self.concurrency is not None and (
            not isinstance(self.concurrency, int)
            or isinstance(self.concurrency, bool)  # (True ran as a limit of 1: devx h40 F13)
            or self.concurrency < 1
        ):
            problems.append(f"concurrency must be a whole number >= 1, got {self.concurrency!r}")
        self._seconds(self._timeout, "workflow timeout", problems=problems)
        problems.extend(self._options_problems)
        if self.hooks is not self._hooks_given:  # (set since: the given ones are checked, once)
            checked_hooks(self.hooks, problems)
        compiled = compile_flow(self.definition(), problems, resolve, self.needs_runtime)
        if problems or compiled is None:
            raise InvalidWorkflowError(self.id, problems)
        return compiled

    @property
    def waits(self) -> dict[str, Any]:
        """Compiled ``wait_for_event`` steps by task name (empty until compiled)."""
        return dict(self._compiled.waits) if self._compiled is not None else {}

    @property
    def humans(self) -> dict[str, Any]:
        """Compiled ``human_in_the_loop`` steps by task name (empty until compiled)."""
        return dict(self._compiled.humans) if self._compiled is not None else {}

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
        return triggers_of(self.triggers())

    def __getattr__(self, name: str) -> Any:
        """Only for a name a flow lacks: Cronflow's name of a method says its name here."""
        python = _CRONFLOW_NAMES.get(name)
        if python is None:
            said = f"{type(self).__name__!r} object has no attribute {name!r}"
            raise AttributeError(said, name=name, obj=self)
        said = f"a flow has no {name!r}: Cronflow's .{name}() is .{python}() here"
        raise AttributeError(said, name=name, obj=self)

    def to_json(self) -> str:
        """The flow as JSON: what ``get_workflows()`` says of it, and its steps."""
        record = msgspec.to_builtins(describe(self.definition()))
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

    def _sleep_node(self, id: str, duration: float | str | Fn, kind: str) -> SleepNode:
        if callable(duration):
            return SleepNode(id=id, duration=duration, kind=kind)
        seconds = self._seconds(duration, f"{kind} {id!r} duration")
        return SleepNode(id=id, seconds=seconds or 0.0, kind=kind)


_TEST_HARNESS: list[Callable[[Flow], Any]] = []


def use_test_harness(factory: Callable[[Flow], Any]) -> None:
    """How ``Flow.test()`` makes its harness: the runtime layer, which runs the engine, says
    so when it is imported (this layer may not import it)."""
    _TEST_HARNESS[:] = [factory]


def define(
    id: str,
    *,
    name: str | None = None,
    description: str | None = None,
    tags: Iterable[str] = (),
    hooks: Hooks | Mapping[str, Any] | None = None,
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


_CRONFLOW_NAMES = {
    "elseIf": "elif_",
    "endIf": "end_if",
    "forEach": "for_each",
    "waitForEvent": "wait_for_event",
    "humanInTheLoop": "human_in_the_loop",
    "onError": "on_error",
    "onWebhook": "on_webhook",
    "onSchedule": "on_schedule",
    "onInterval": "on_interval",
    "onEvent": "on_event",
    "onPoll": "on_poll",
    "toJSON": "to_json",
    "getSteps": "get_steps",
    "getStep": "get_step",
    "getTriggers": "get_triggers",
}
"""Cronflow's camelCase methods of a flow, and theirs here (``if``, ``else`` and ``while`` are
Python's words: ``if_``, ``else_`` and ``while_``)."""
