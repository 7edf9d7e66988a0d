"""``cf.define(...)``: the Cronflow-style fluent builder.

Calls only record what they are told; ``build()`` (called by ``Runtime.register``) checks the
whole definition, raises one ``InvalidWorkflowError`` listing every problem (duplicate step ids,
an ``end_if`` without ``if_``, a bad retry, an invalid cron expression, ...), and compiles it to
a ``NetSpec`` that the net engine runs (``flow/compile.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Self

import msgspec

from cronflow_actors.errors import InvalidWorkflowError
from cronflow_actors.flow.cron import CatchUp, CronExpression, CronSchedule, time_zone
from cronflow_actors.flow.options import Hooks, Retry
from cronflow_actors.net.durations import parse_duration
from cronflow_actors.net.spec import NetSpec

__all__ = ["Flow", "SubflowNode", "WebhookSpec", "define", "walk"]

Fn = Callable[..., Any]


class Node(msgspec.Struct, frozen=True, kw_only=True, eq=False):
    id: str


class StepNode(Node, frozen=True, kw_only=True, eq=False):
    handler: Any
    retry: Retry | None = None
    timeout: float | None = None
    on_error: tuple[Any, ...] = ()
    """Fallbacks in order: each gets ``ctx.error`` (the error of the one before); the first
    that returns gives the step its output."""


class ActionNode(Node, frozen=True, kw_only=True, eq=False):
    handler: Any
    durable: bool = True


class Branch(msgspec.Struct, kw_only=True, eq=False):
    name: str
    condition: Any  # None for else
    nodes: list[Node] = msgspec.field(default_factory=list)


class IfNode(Node, frozen=True, kw_only=True, eq=False):
    branches: list[Branch]


class GroupNode(Node, frozen=True, kw_only=True, eq=False):
    """``parallel`` (mode "all") and ``race`` (mode "first")."""

    handlers: tuple[Any, ...]
    mode: str


class WhileNode(Node, frozen=True, kw_only=True, eq=False):
    condition: Any
    handler: Any
    max_iterations: int


class EachNode(Node, frozen=True, kw_only=True, eq=False):
    """``for_each`` (size 0: every item at once) and ``batch`` (chunks of ``size``, in order)."""

    items: Any
    handler: Any
    size: int = 0


class SleepNode(Node, frozen=True, kw_only=True, eq=False):
    seconds: float


class EventNode(Node, frozen=True, kw_only=True, eq=False):
    event: str
    filter: Any = None
    timeout: float | None = None


class HumanNode(Node, frozen=True, kw_only=True, eq=False):
    description: str = ""
    timeout: float | None = None
    on_pause: Any = None
    on_timeout: Any = None
    metadata: Mapping[str, Any] = msgspec.field(default_factory=dict)


class SubflowNode(Node, frozen=True, kw_only=True, eq=False):
    flow: Any
    input: Any = None


class CancelNode(Node, frozen=True, kw_only=True, eq=False):
    reason: str = ""


class WebhookSpec(msgspec.Struct, frozen=True, kw_only=True, eq=False):
    """A webhook trigger: served by the HTTP layer of the long-lived runtime."""

    path: str
    route: str = ""
    """The path as a route template: parameters written ``:id`` or ``{id}`` become ``{id}``."""
    params: tuple[str, ...] = ()
    """The names of the path's parameters (``ctx.trigger.params``)."""
    method: str = "POST"
    schema: Any = None
    validate: Any = None
    condition: Any = None
    required_headers: tuple[str, ...] = ()
    idempotency_key: Any = None
    require_token: bool = False
    """Callers must send ``Authorization: Bearer <token>`` with a configured token."""
    hmac_secret: str | None = None
    """Callers must sign each request: ``<signature_header>: t=<unix seconds>,v1=<hex
    HMAC-SHA256 of "<t>.<raw body>">``; a stale or replayed signature is refused."""
    signature_header: str = "x-signature-256"
    signature_tolerance: float = 300.0
    """How far (seconds) a signature's time may be from the server's; replays within it are
    refused too."""
    keep_headers: tuple[str, ...] = ()
    """Headers kept with the run (``ctx.trigger.headers``) besides the required ones."""


class Flow:
    """A Cronflow-style workflow. Chain steps on it; register it on a ``Runtime``."""

    def __init__(
        self,
        id: str,
        *,
        concurrency: int | None = None,
        timeout: float | str | None = None,
        hooks: Hooks | None = None,
        description: str = "",
        version: str = "v1",
    ) -> None:
        self.id = id
        self.description = description
        self.version = version
        self.concurrency = concurrency
        self.hooks = hooks or Hooks()
        self._timeout = timeout
        self._root: list[Node] = []
        self._stack: list[tuple[IfNode, list[Node]]] = []
        self._problems: list[str] = []
        self.webhooks: list[WebhookSpec] = []
        self.schedules: list[CronSchedule] = []
        self.intervals: list[float] = []
        self.events: list[str] = []
        self._spec: NetSpec | None = None
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
    ) -> Self:
        """A unit of work; its output becomes ``ctx.last`` and ``ctx.steps[id]``."""
        return self._add(
            StepNode(
                id=id,
                handler=handler,
                retry=retry,
                timeout=self._seconds(timeout, f"step {id!r} timeout"),
                on_error=() if on_error is None else (on_error,),
            )
        )

    def on_error(self, handler: Fn) -> Self:
        """Give the previous step a fallback: ``handler(ctx)`` (with ``ctx.error``) supplies its
        output once its attempts are used up. Several fallbacks are tried in the order given,
        each with the error of the one before; if the last raises, the step fails with that."""
        nodes = self._current()
        if nodes and isinstance(nodes[-1], StepNode):
            return self._amend("on_error", on_error=(*nodes[-1].on_error, handler))
        return self._amend("on_error")

    def retry(self, retry: Retry) -> Self:
        """Give the previous step a retry policy."""
        return self._amend("retry", retry=retry)

    def action(self, id: str, handler: Fn, *, durable: bool = True) -> Self:
        """A side effect run detached: the flow goes on at once, its output is ignored, an
        error is logged and never fails the run. After a crash it is dispatched again unless
        ``durable=False``."""
        return self._add(ActionNode(id=id, handler=handler, durable=durable))

    def sleep(self, id: str, duration: float | str) -> Self:
        """Wait ``duration`` on a durable timer."""
        seconds = self._seconds(duration, f"sleep {id!r} duration")
        return self._add(SleepNode(id=id, seconds=seconds or 0.0))

    def wait_for_event(
        self,
        id: str,
        event: str,
        *,
        filter: Fn | None = None,
        timeout: float | str | None = None,
    ) -> Self:
        """Wait until ``publish_event(event, payload)`` with ``filter(payload, ctx)`` true (if
        given; ``ctx`` is this run's); the payload is the step's output. On ``timeout`` the step
        fails."""
        timeout_s = self._seconds(timeout, f"wait_for_event {id!r} timeout")
        return self._add(EventNode(id=id, event=event, filter=filter, timeout=timeout_s))

    def human_in_the_loop(
        self,
        id: str,
        *,
        description: str = "",
        timeout: float | str | None = None,
        on_pause: Fn | None = None,
        on_timeout: Fn | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Self:
        """Pause until ``resume(token, payload)``; ``on_pause(ctx, token)`` is called once the
        pause is durable. With ``timeout`` (counted from the pause) the step completes as timed
        out and ``on_timeout(ctx)`` is called once."""
        return self._add(
            HumanNode(
                id=id,
                description=description,
                timeout=self._seconds(timeout, f"human_in_the_loop {id!r} timeout"),
                on_pause=on_pause,
                on_timeout=on_timeout,
                metadata=dict(metadata or {}),
            )
        )

    def subflow(self, id: str, flow: Flow, input: Fn | None = None) -> Self:
        """Run ``flow`` as a child workflow; its output is this step's output. ``input(ctx)``
        gives its payload (default: ``ctx.last``)."""
        if not isinstance(flow, Flow):
            self._problems.append(
                f"subflow {id!r}: expected a cf.define(...) workflow, got {flow!r}"
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

    def parallel(self, id: str, handlers: Sequence[Fn]) -> Self:
        """Run ``handlers`` at once; the output is their results in input order. The first
        failure fails the step (and cancels the others)."""
        return self._add(GroupNode(id=id, handlers=tuple(handlers), mode="all"))

    def race(self, id: str, handlers: Sequence[Fn]) -> Self:
        """Run ``handlers`` at once; the first to finish gives the output, the rest are
        canceled. If the first to finish fails, the step fails."""
        return self._add(GroupNode(id=id, handlers=tuple(handlers), mode="first"))

    def while_(self, name: str, condition: Fn, handler: Fn, *, max_iterations: int = 1000) -> Self:
        """Run ``handler(ctx)`` while ``condition(ctx)`` is true, each iteration durable; more
        than ``max_iterations`` fails the step. The output is the last iteration's."""
        return self._add(
            WhileNode(id=name, condition=condition, handler=handler, max_iterations=max_iterations)
        )

    def for_each(self, name: str, items: Fn, handler: Fn) -> Self:
        """``handler(item, ctx)`` for every item of ``items(ctx)``, all at once. The output is
        ``{"type": "forEach", "name", "results": [{"item", "result", "index"}], "total_items"}``."""
        return self._add(EachNode(id=name, items=items, handler=handler))

    def batch(self, name: str, items: Fn, size: int, handler: Fn) -> Self:
        """``handler(batch, ctx)`` for the chunks of ``size`` items, one after another. The
        output is ``{"type": "batch", "name", "results": [{"batch_index", "items", "result",
        "size"}], "total_batches", "total_items"}``."""
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            self._problems.append(f"batch {name!r}: size must be a whole number >= 1, got {size!r}")
            size = 1
        return self._add(EachNode(id=name, items=items, handler=handler, size=size))

    # -- triggers ----------------------------------------------------------------------------------

    def on_webhook(
        self,
        path: str,
        *,
        method: str = "POST",
        schema: Any = None,
        validate: Fn | None = None,
        condition: Fn | None = None,
        required_headers: Iterable[str] = (),
        idempotency_key: Fn | str | None = None,
        require_token: bool = False,
        hmac_secret: str | None = None,
        signature_header: str = "X-Signature-256",
        signature_tolerance: float = 300.0,
        keep_headers: Iterable[str] = (),
    ) -> Self:
        """Trigger runs from HTTP requests (served by ``cronflow-actors serve``). The run keeps
        the ``required_headers`` and ``keep_headers`` it is sent (``ctx.trigger.headers``), never
        ``Authorization``, ``Cookie`` or the signature header."""
        route: str = path
        params: tuple[str, ...] = ()
        if not isinstance(path, str) or not path.startswith("/"):
            self._problems.append(f"on_webhook: the path must start with '/', got {path!r}")
        else:
            route, params = _route_template(path, self._problems)
        if method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            self._problems.append(f"on_webhook({path!r}): unknown method {method!r}")
        if (
            isinstance(signature_tolerance, bool)
            or not isinstance(signature_tolerance, int | float)
            or signature_tolerance <= 0
        ):
            self._problems.append(
                f"on_webhook({path!r}): signature_tolerance must be a positive number of "
                f"seconds, got {signature_tolerance!r}"
            )
        self.webhooks.append(
            WebhookSpec(
                path=path,
                route=route,
                params=params,
                method=method.upper(),
                schema=schema,
                validate=validate,
                condition=condition,
                required_headers=tuple(h.lower() for h in required_headers),
                idempotency_key=idempotency_key,
                require_token=require_token,
                hmac_secret=hmac_secret,
                signature_header=signature_header.lower(),
                signature_tolerance=signature_tolerance,
                keep_headers=tuple(h.lower() for h in keep_headers),
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

    def on_event(self, name: str) -> Self:
        """Trigger a run for every ``publish_event(name, payload)``."""
        if not isinstance(name, str) or not name:
            self._problems.append(f"on_event needs an event name, got {name!r}")
        else:
            self.events.append(name)
        return self

    def manual(self) -> Self:
        """Mark the flow as triggered by hand (every flow can be)."""
        return self

    # -- build ------------------------------------------------------------------------------------

    @property
    def timeout(self) -> float | None:
        return self._seconds(self._timeout, "workflow timeout", report=False)

    def build(self) -> NetSpec:
        """Check the definition and compile it; raises ``InvalidWorkflowError`` with every
        problem found. The result is cached."""
        if self._spec is not None:
            return self._spec
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
        for name in ("on_success", "on_failure"):
            hook = getattr(self.hooks, name)
            if hook is not None and not callable(hook):
                problems.append(f"hooks.{name} must be a function, got {hook!r}")
        if not self._root:
            problems.append("the workflow has no steps; add one with .step(id, handler)")
        spec = compile_flow(self, self._root, problems)
        if problems or spec is None:
            raise InvalidWorkflowError(self.id, problems)
        self._spec = spec
        return spec

    # -- internals ---------------------------------------------------------------------------------

    def _current(self) -> list[Node]:
        return self._stack[-1][1] if self._stack else self._root

    def _add(self, node: Node) -> Self:
        self._spec = None
        self._current().append(node)
        return self

    def _count(self) -> int:
        return sum(1 for _ in walk(self._root))

    def _amend(self, what: str, **change: Any) -> Self:
        nodes = self._current()
        if not nodes or not isinstance(nodes[-1], StepNode):
            self._problems.append(f".{what}() must follow a .step(); it follows {_describe(nodes)}")
            return self
        nodes[-1] = msgspec.structs.replace(nodes[-1], **change)
        return self

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


def _describe(nodes: list[Node]) -> str:
    if not nodes:
        return "nothing"
    return f"{type(nodes[-1]).__name__.removesuffix('Node').lower()} {nodes[-1].id!r}"


_PARAM = re.compile(r"^(?::(?P<colon>.+)|\{(?P<brace>.+)\})$")


def _route_template(path: str, problems: list[str]) -> tuple[str, tuple[str, ...]]:
    """``/orders/:id`` or ``/orders/{id}`` -> ``/orders/{id}`` and ``("id",)``."""
    segments, params = [], []
    for segment in path.split("/"):
        match = _PARAM.match(segment)
        if match is None:
            if any(mark in segment for mark in ":{}"):
                problems.append(
                    f"on_webhook({path!r}): {segment!r} is not a path parameter; write a "
                    "parameter as a whole segment, ':name' or '{name}'"
                )
            segments.append(segment)
            continue
        name = match.group("colon") or match.group("brace")
        if not name.isidentifier():
            problems.append(
                f"on_webhook({path!r}): parameter {name!r} needs a name of letters, digits and '_'"
            )
        elif name in params:
            problems.append(f"on_webhook({path!r}): parameter {name!r} appears twice")
        params.append(name)
        segments.append("{" + name + "}")
    return "/".join(segments), tuple(params)


def walk(nodes: Iterable[Node]) -> Iterable[Node]:
    """Every node of a sequence, depth first (the branches of an ``if_`` included)."""
    for node in nodes:
        yield node
        if isinstance(node, IfNode):
            for branch in node.branches:
                yield from walk(branch.nodes)


def define(
    id: str,
    *,
    concurrency: int | None = None,
    timeout: float | str | None = None,
    hooks: Hooks | None = None,
    description: str = "",
    version: str = "v1",
) -> Flow:
    """Start a Cronflow-style workflow definition (see ``Flow``)."""
    return Flow(
        id,
        concurrency=concurrency,
        timeout=timeout,
        hooks=hooks,
        description=description,
        version=version,
    )
