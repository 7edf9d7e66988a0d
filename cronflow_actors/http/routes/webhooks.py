"""The flows' webhooks: each request is checked (token, required headers, signature, media type,
``header_validator``, schema, ``validate``, ``condition``) before a run starts, or starts nothing.

A signed request's signature counts as seen only once the request is accepted (its run started,
or a duplicate answered): a request refused after its signature was checked may be sent again.
A request seen before starts nothing: the duplicate of a run its idempotency key names gets the
duplicate answer, anything else is a replay (401).

An idempotency key is a string, a number, a bool, or lists and objects of them; None and the
empty string are no key. Keys are compared by value and type: 0 and false are keys, 1 and "1"
two keys, 2 and 2.0 one (a canonical JSON form); a string key gives the run id it always gave.

Every callback gets one ``WebhookRequest``. A callback that raises is logged with its traceback
and answered with a 500 problem that names it (``callback``); so is a start the flow's own code
refused (its first node's condition raised: ``flow-code-failed``, ``raised_in``), the error's
message left to the log. ``on_success`` and ``on_error`` may give the answer instead of the
standard one; when they raise or return what cannot be sent, the standard one goes out, logged.

Only what a run needs is kept with it: the headers the flow declares (``required_headers`` and
``keep_headers``), never ``Authorization``, ``Cookie`` or the signature header; and, with
``parse_raw_body``, the exact body.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cronflow_actors.calls import call_user
from cronflow_actors.errors import CronflowError, InstanceExistsError
from cronflow_actors.http.auth import SECRET_HEADERS, Signature, replayed, request_line
from cronflow_actors.http.edge import Edge, json_response, webhook_route
from cronflow_actors.http.key_headers import key_header, unread_key
from cronflow_actors.http.problems import (
    Problem,
    as_problem,
    flow_code_problem,
    problem_body,
    problem_response,
)
from cronflow_actors.http.requests import (
    check_media_type,
    decode_json,
    joined_headers,
    one_header,
    printable_kept,
    read_body,
)
from cronflow_actors.http.routes.runs import started
from cronflow_actors.http.routes.webhook_answers import custom_response
from cronflow_actors.http.routes.webhook_keys import body_digest
from cronflow_actors.http.routes.webhook_named import NamedRuns
from cronflow_actors.messages import to_schema
from cronflow_actors.runtime import (
    RunInfo,
    WebhookProblem,
    WebhookRequest,
    WebhookSpec,
    schema_path,
)
from cronflow_actors.runtime.cluster import ClusterLease

__all__ = ["routes"]

logger = logging.getLogger(__name__)

_TWIN_WAIT = 2.0
"""Seconds a signed request with an idempotency key, whose signature another process claimed,
looks for the run that process starts (its duplicate answer) before it is a replay."""


class _Seen(msgspec.Struct):
    """What is known of a request so far (what ``on_error`` gets when it is refused)."""

    request: WebhookRequest


class Webhook:
    """One webhook of one flow, as served."""

    def __init__(self, edge: Edge, flow_id: str, spec: WebhookSpec) -> None:
        self.edge = edge
        self.flow_id = flow_id
        self.spec = spec
        never = {*SECRET_HEADERS, spec.signature_header}
        self.keep = frozenset({*spec.required_headers, *spec.keep_headers} - never)
        # an Idempotency-Key it reads in no way is refused (hostile h38 F2), not one it names
        # runs by, a signature does, it requires or keeps, or its header_validator reads
        self.unread_key = "idempotency-key" not in self.keep and all(
            way is None for way in (spec.idempotency_key, spec.hmac_secret, spec.header_validator)
        )
        self.name = f"{spec.method} {spec.path}"
        self.runs = NamedRuns(edge.runtime, flow_id, spec, self.name, self._call)

    async def receive(self, request: Request) -> Response:
        seen = _Seen(
            WebhookRequest(
                headers=joined_headers(request),
                method=request.method,
                path=request.url.path,
                params=dict(request.path_params),
                query=dict(request.query_params),
            )
        )
        try:
            return await self._accept(request, seen)
        except Problem as problem:
            if self.spec.on_error is None:
                raise
            return await self._refused(seen.request, problem)
        except Exception as error:  # the runtime refused the start (503, say), or the flow's code
            if isinstance(error, CronflowError):  # (its first node's condition raised)
                refused: Problem | None = as_problem(error)
            else:
                refused = flow_code_problem(error, message=False)
            if refused is None or (self.spec.on_error is None and isinstance(error, CronflowError)):
                raise
            if self.spec.on_error is None:
                raise refused from None
            return await self._refused(seen.request, refused)

    def _caller(self, request: Request) -> str | None:
        """Who sent a webhook that takes a token (its principal, checked in ``_accept``)."""
        if not self.spec.require_token:
            return None
        principal = self.edge.tokens.principal(request)
        return principal.id if principal is not None else None

    async def _accept(self, request: Request, seen: _Seen) -> Response:
        spec, edge = self.spec, self.edge
        # what the run keeps is read before any callback runs (and may change what it sees)
        headers = seen.request.headers
        kept = {name: value for name, value in headers.items() if name in self.keep}
        if spec.require_token and edge.tokens.principal(request) is None:
            raise Problem(
                401,
                "authentication-required",
                "this webhook needs 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        for name in spec.required_headers:  # one tenant, not "a, b" (nor ", ": hostile h32 M1)
            one_header(request, name)
        missing = [h for h in spec.required_headers if not headers.get(h, "").strip()]
        if missing:  # an empty one too: it names no tenant, signs nothing
            raise Problem(400, "missing-headers", f"missing (or empty) required headers: {missing}")
        printable_kept(kept, request)  # (an Idempotency-Key's were refused, kept ones not)
        if self.unread_key:
            unread_key(request)
        if isinstance(spec.idempotency_key, str):
            # two: which of them names the run? and bytes that are not UTF-8 (hostile h31 L1)
            key_header(request, spec.idempotency_key)
        raw = await read_body(request, edge.limits)
        if spec.parse_raw_body:
            seen.request = msgspec.structs.replace(seen.request, raw_body=raw)
        signature = None
        if spec.hmac_secret is not None:
            signature = await self._verify(request, spec.hmac_secret, raw)
        check_media_type(request, raw, subject="this webhook")
        if raw.strip():
            seen.request = msgspec.structs.replace(
                seen.request, payload=decode_json(raw, edge.limits)
            )
        # a key the client sends names one body, as sent (not as a schema converts it)
        keyed = isinstance(spec.idempotency_key, str)
        digest = body_digest(seen.request.payload) if keyed else None
        if spec.header_validator is not None:
            verdict = await self._call("header_validator", seen.request)
            if verdict is not True:
                raise Problem(400, "invalid-headers", _refusal("header_validator", verdict))
        if spec.schema is not None:
            try:
                converted = to_schema(seen.request.payload, spec.schema)
            except msgspec.ValidationError as invalid:
                raise Problem(
                    400,
                    "invalid-payload",
                    f"the payload does not match the webhook's schema: {invalid}",
                    path=schema_path(invalid),
                ) from None
            payload = msgspec.to_builtins(converted)
            seen.request = msgspec.structs.replace(seen.request, payload=payload)
        webhook_request = seen.request
        if spec.validate is not None:
            verdict = await self._call("validate", webhook_request)
            if verdict is not True:
                raise Problem(400, "validation-failed", _refusal("validate", verdict))
        if signature is None:
            return await self._start(request, webhook_request, kept, raw, digest)
        return await self._start_signed(
            request, webhook_request, kept, raw, signature, digest=digest
        )

    async def _verify(self, request: Request, secret: str, raw: bytes) -> Signature:
        """The request's signature, checked (401 when bad, 400 when its header is sent twice;
        counted), not yet claimed."""
        spec = self.spec
        try:
            return await self.edge.signatures.verify(
                hook=self.name,
                secret=secret,
                header=spec.signature_header,
                tolerance=spec.signature_tolerance,
                value=one_header(request, spec.signature_header),
                body=raw,
                request=request_line(request.method, request.scope),
                schemes=spec.signature_schemes,
            )
        except Problem:
            self.edge.runtime.metrics.webhook_signature_failures.labels(self.flow_id).inc()
            raise

    async def _start_signed(
        self,
        request: Request,
        webhook_request: WebhookRequest,
        kept: dict[str, str],
        raw: bytes,
        signature: Signature,
        *,
        digest: str | None,
    ) -> Response:
        """A signed request that passed every check: its signature is claimed here, and given
        back when the start fails (a 500 of a callback, a 503), so that only an accepted
        request spends it. A request whose signature was claimed before starts nothing, with
        one exception: without an idempotency key its run is named by its signature, and a
        claim with neither that run nor an answer behind it (a ``condition`` that said no) is
        a crash's, between the claim and the start (two commits); the same request sent again
        starts that run, where it was refused as a replay and lost. With a key, the run is
        the key's, which a replay may change (a header, or what a callback reads): refused."""
        signatures = self.edge.signatures
        named = self.runs.signed(signature) if self.spec.idempotency_key is None else None
        with signatures.handling(signature) as in_flight:
            # a twin in flight here is asked at once and after the awaits: one that ends during
            # them (its condition said no, its answer marked) is seen at one moment or the other
            if not await signatures.claim(signature) and (
                in_flight.twins()
                or named is None
                or await self.runs.find(named) is not None
                or await signatures.answered(signature)
                or in_flight.twins()
            ):
                if self.spec.idempotency_key is not None:  # its twin's run may be its answer
                    await in_flight.first_ended(self.edge.limits.read_timeout)
                    # a twin in another process (of a cluster): its run is stored once its
                    # start is durable
                    shared = isinstance(self.edge.runtime.lease, ClusterLease)
                    wait = _TWIN_WAIT if shared else 0.0
                    return await self._replayed(webhook_request, digest, wait=wait)
                return await self._replayed(webhook_request, digest)
            sent: list[bool] = []  # the start was sent: it may be durable from then on
            try:
                return await self._start(
                    request,
                    webhook_request,
                    kept,
                    raw,
                    digest,
                    own_id=named[0] if named is not None else None,
                    signature=signature,
                    sent=sent,
                )
            except Problem as refused:
                if refused.status == 401:  # a replay after all (it lost the start to its twin)
                    raise
                await self._give_back(signature)
                raise
            except Exception:  # a callback's error, or a start the runtime refused
                await self._give_back(signature)
                raise
            except BaseException:  # the drain gave up on it: given back only if it had not
                # asked for the start (once asked, a run may exist that nothing would name)
                if not sent:
                    await asyncio.shield(self._give_back(signature))
                raise

    async def _give_back(self, signature: Signature) -> None:
        await self._signature_step(
            self.edge.signatures.release(signature),
            "the signature of a refused request could not be given back; the same request is "
            "refused as a replay until it is stale",
        )

    async def _signature_step(self, step: Awaitable[None], failed: str) -> None:
        """``step`` on a signature's record in the store, whose failure is logged (``failed``
        says what it leaves), not the request's answer."""
        try:
            await step
        except Exception:
            logger.warning("webhook %s: %s", self.name, failed, exc_info=True)

    async def _replayed(
        self, request: WebhookRequest, digest: str | None, *, wait: float = 0.0
    ) -> Response:
        """A signed request seen before: the duplicate of a run its idempotency key names gets
        the duplicate answer (its client retries); anything else is a replay (401). A replay
        never starts a run: the key may come from headers the signature does not cover, so it
        could name a new run. ``wait``: seconds to look again for the key's run (a twin that
        another process is starting)."""
        # a key from a header is not signed: its duplicate is answered plainly, no on_success
        signed_key = not isinstance(self.spec.idempotency_key, str)
        clock = self.edge.runtime.clock
        deadline = clock.monotonic() + wait
        names = await self.runs.keyed(request)  # asked once
        while True:
            run = await self.runs.find(names, request.params)
            if run is not None:
                return await self._duplicate(request, digest, run, callbacks=signed_key)
            if clock.monotonic() >= deadline:
                break
            await clock.sleep(0.05)
        self.edge.runtime.metrics.webhook_signature_failures.labels(self.flow_id).inc()
        raise replayed()

    async def _start(
        self,
        request: Request,
        webhook_request: WebhookRequest,
        kept: dict[str, str],
        raw: bytes,
        digest: str | None,
        *,
        own_id: str | None = None,
        signature: Signature | None = None,
        sent: list[bool] | None = None,
    ) -> Response:
        """Start the run (unless ``condition`` says no), or answer the duplicate of the run its
        idempotency key names (the store refuses a second start of one id, also of two at
        once). ``own_id``: the run's id when no key names it (a signed request's, whose
        ``signature`` is marked answered when ``condition`` says no: spent, with no run);
        ``sent`` hears when the start is asked for."""
        spec, edge = self.spec, self.edge
        ids = None
        if spec.condition is not None and isinstance(spec.idempotency_key, str):
            # a header's key is read before the condition: the retry of a request whose run
            # exists gets that run's answer, whatever the condition would say now
            ids = await self.runs.keyed(webhook_request)
            run = await self.runs.find(ids, webhook_request.params)
            if run is not None:
                return await self._duplicate(webhook_request, digest, run)
        if spec.condition is not None and not await self._call("condition", webhook_request):
            if signature is not None:
                await edge.signatures.mark_answered(signature)
            return json_response({"run_id": None, "condition_met": False})
        instance_id, legacy = ids or await self.runs.keyed(webhook_request)
        run = await self.runs.find((None, legacy), webhook_request.params) if ids is None else None
        if run is not None:
            return await self._duplicate(webhook_request, digest, run)
        instance_id = instance_id if instance_id is not None else own_id
        if sent is not None:
            sent.append(True)
        try:
            run_id = await edge.runtime.runs.trigger(
                self.flow_id,
                webhook_request.payload,
                headers=kept,
                kind="webhook",
                instance_id=instance_id,
                params=dict(request.path_params),
                query=dict(request.query_params),
                raw_body=raw if spec.parse_raw_body else None,
                body_digest=digest,
                derived=instance_id is not None,
                by=self._caller(request),
                webhook=self.spec.path,
            )
        except InstanceExistsError:
            assert instance_id is not None
            if instance_id == own_id:  # the same signed request, started meanwhile: a replay
                return await self._replayed(webhook_request, digest)
            return await self._duplicate(
                webhook_request, digest, await self.edge.runtime.inspect(instance_id)
            )
        if signature is not None and instance_id == own_id:
            await self._spent(signature)
        return await self._accepted(webhook_request, run_id, started(run_id))

    async def _spent(self, signature: Signature) -> None:
        """Mark ``signature`` answered once its run started: a run may be pruned (retention,
        ``db prune``) before the signature is stale, and its claim with no run behind it would
        then pass for a crash's, its request started again."""
        await self._signature_step(
            self.edge.signatures.mark_answered(signature),
            "a started run's signature could not be marked answered; the same request is "
            "refused as a replay while its run is kept",
        )

    async def _duplicate(
        self, request: WebhookRequest, digest: str | None, run: RunInfo, *, callbacks: bool = True
    ) -> Response:
        """The answer to a request whose idempotency key names ``run``, which exists: that
        run's, if it is a run of this webhook's flow. A run of another flow under that id (code
        that chose it: no client may) is a 409, never this request's answer."""
        run_id = run.id
        if run.workflow != self.flow_id:
            raise Problem(
                409,
                "instance-exists",
                f"this request's idempotency key names run {run_id}, which is not a run of "
                f"flow {self.flow_id!r}: nothing was started; send it with another key",
            )
        # the digest of the body that started it (a run started before they were kept: this)
        kept = digest and (await self.edge.runtime.replays.recorded_trigger(run_id)).body_digest
        if kept and kept != digest:
            # a header's key names one request: another body under it is no retry, and would
            # be answered as done while it is lost (IETF's idempotency key draft: 422). A key a
            # callback derives from the body (no digest) may see a resent event differ.
            raise Problem(
                422,
                "idempotency-key-reused",
                f"this request's idempotency key ({self.spec.idempotency_key} header) names "
                f"run {run_id}, which was started with another payload: nothing was started; "
                "a retry must send the same body, another request another key",
            )
        self.edge.runtime.metrics.webhook_duplicates.labels(self.flow_id).inc()
        answer = {"run_id": run_id, "duplicate": True}
        current = await self.edge.runtime.replays.going_on(run_id)
        if current != run_id:  # migrated or resumed: where its client follows it now
            answer["current_run_id"] = current
        standard = json_response(answer)
        return await self._accepted(request, run_id, standard) if callbacks else standard

    async def _call(self, name: str, *args: Any) -> Any:
        """A callback of the user's; one that raises is a 500 that names it."""
        try:
            return await call_user(getattr(self.spec, name), *args)
        except Exception as error:
            logger.exception("the %s callback of webhook %s raised", name, self.name)
            raise Problem(
                500,
                "webhook-callback-failed",
                f"the webhook's {name} callback raised {type(error).__name__}; its traceback "
                "is in the server's log",
                callback=name,
            ) from None

    async def _accepted(self, request: WebhookRequest, run_id: str, standard: Response) -> Response:
        if self.spec.on_success is None:
            return standard
        custom = await self._custom("on_success", (request, run_id), standard)
        return custom or standard

    async def _refused(self, request: WebhookRequest, problem: Problem) -> Response:
        standard = problem_response(
            problem.status, problem.slug, problem.detail, headers=problem.headers, **problem.fields
        )
        body = problem_body(problem.status, problem.slug, problem.detail, **problem.fields)
        seen = WebhookProblem(
            status=body.status,
            type=body.type,
            title=body.title,
            detail=body.detail,
            path=body.path,
            callback=body.callback,
        )
        custom = await self._custom("on_error", (request, seen), standard)
        return custom or standard

    async def _custom(
        self, name: str, args: tuple[Any, ...], standard: Response
    ) -> Response | None:
        """The answer ``on_success``/``on_error`` gives, or None for the standard one (also
        when the callback raises or returns what cannot be sent: that is logged)."""
        try:
            value = await call_user(getattr(self.spec, name), *args)
            if value is None:
                return None
            return custom_response(value, standard)
        except Exception:
            logger.exception(
                "the %s callback of webhook %s failed; the standard answer (%d) is sent",
                name,
                self.name,
                standard.status_code,
            )
            return None


def _refusal(name: str, verdict: Any) -> str:
    if isinstance(verdict, str):
        return f"refused by {name}(): {verdict}"
    return f"refused by {name}() (it returned {verdict!r}; return True to accept)"


def routes(edge: Edge) -> list[Route]:
    """One route per path: webhooks on one path with different methods share it (so a 405
    lists them all)."""
    catalog = edge.runtime.catalog
    by_path: dict[str, dict[str, Callable[[Request], Any]]] = {}
    for flow_id, spec in catalog.webhooks():
        methods = by_path.setdefault(spec.route, {})
        methods[spec.method.lower()] = Webhook(edge, flow_id, spec).receive
    return [webhook_route(path, **methods) for path, methods in by_path.items()]
