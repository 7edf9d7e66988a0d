"""The action boundary (validation, authentication, policy, callback) and versions."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.errors import (
    ActionDeniedError,
    AuthenticationRequiredError,
    ConfigurationError,
    InternalOnlyActionError,
    InvalidPayloadError,
    InvalidStateTransitionError,
    UnknownWorkflowError,
    WorkflowDeprecatedError,
)
from tests.engine.helpers import build, open_item, states


class Review(msgspec.Struct):
    approved: bool
    note: str = ""


REVIEWER = cf.Principal(id="ada", scopes=frozenset({"review:write"}))
READER = cf.Principal(id="bob", scopes=frozenset({"review:read"}))
ANONYMOUS = cf.Principal(id=None)


class Calls:
    def __init__(self) -> None:
        self.policy: list[Any] = []
        self.callback: list[Any] = []

    def review_net(self) -> net.NetSpec:
        def policy(ctx: Any, payload: Review) -> bool:
            self.policy.append(payload)
            return bool(net.require_scope("review:write")(ctx, payload))

        def callback(ctx: Any, payload: Review) -> None:
            self.callback.append((ctx.principal.id if ctx.principal else None, payload))

        item = net.work_item("review").actions(
            start=net.action(policy=net.require_any_scope(["review:write", "review:admin"])),
            complete=net.action(Review, policy=policy, callback=callback),
        )
        return build("review", {"review": net.task(item)}, [("start", "review"), ("review", "end")])


async def started_review(rt: cf.Runtime, calls: Calls) -> tuple[str, str]:
    rt.register(calls.review_net())
    wid = await rt.start_workflow("review")
    item = await open_item(rt, wid, "review")
    await rt.start_work_item(item.id, principal=REVIEWER)
    return wid, item.id


async def test_default_actions_are_internal_only(rt: cf.Runtime) -> None:
    rt.register(build("plain", {"a": net.task()}, [("start", "a"), ("a", "end")]))
    wid = await rt.start_workflow("plain")
    item = await open_item(rt, wid, "a")
    with pytest.raises(InternalOnlyActionError, match=r"'start'.*internal-only"):
        await rt.start_work_item(item.id, principal=REVIEWER)
    assert (await rt.work_item(item.id)).state == "initialized"
    with pytest.raises(InternalOnlyActionError):
        await rt.start_workflow("plain", principal=REVIEWER)
    with pytest.raises(InternalOnlyActionError):
        await rt.cancel_workflow(wid, principal=REVIEWER)
    with pytest.raises(InternalOnlyActionError):
        await rt.initialize_work_item(wid, "a", principal=REVIEWER)
    assert len(await rt.work_items(wid, "a")) == 1
    await rt.start_work_item(item.id)  # internal: allowed
    assert (await rt.work_item(item.id)).state == "started"


async def test_an_undeclared_action_is_refused_before_the_items_state_is_asked(
    rt: cf.Runtime,
) -> None:
    """An outside caller's undeclared ``reset`` of an item that cannot be reset now was a 409
    (its state), which invites a wait and a retry that the 403 would refuse all the same
    (hostile h38 F5)."""
    calls = Calls()
    rt.register(calls.review_net())  # start and complete declared, reset and cancel not
    wid = await rt.start_workflow("review")
    item = await open_item(rt, wid, "review")
    for undeclared in (rt.reset_work_item, rt.cancel_work_item):
        with pytest.raises(InternalOnlyActionError, match="internal-only"):
            await undeclared(item.id, principal=REVIEWER)
    # a declared one: whom its policy refuses, or who is nobody, is told so before the state
    # (a complete of an item not started is a 409; review h38 F3)
    with pytest.raises(ActionDeniedError):
        await rt.complete_work_item(item.id, {"approved": True}, principal=READER)
    with pytest.raises(AuthenticationRequiredError):
        await rt.complete_work_item(item.id, {"approved": True}, principal=ANONYMOUS)
    assert calls.callback == []  # no callback ran for a refused call
    assert (await rt.work_item(item.id)).state == "initialized"
    with pytest.raises(InvalidStateTransitionError):  # an admitted caller: the state's 409
        await rt.complete_work_item(item.id, {"approved": True}, principal=REVIEWER)
    assert calls.callback == []  # nor for one the state refused


async def test_an_unauthenticated_caller_is_refused(rt: cf.Runtime) -> None:
    calls = Calls()
    _wid, item = await started_review(rt, calls)
    # what to do, in Python and over HTTP (a server without tokens cannot: the second hostile
    # client's N5 read 'pass a principal with an id', which no HTTP client can)
    said = "over HTTP send a bearer token of the server's \\[tokens\\]"
    with pytest.raises(AuthenticationRequiredError, match=said):
        await rt.complete_work_item(item, {"approved": True}, principal=ANONYMOUS)
    assert (await rt.work_item(item)).state == "started"
    assert calls.policy == []
    assert calls.callback == []


async def test_a_caller_without_the_scope_is_denied(rt: cf.Runtime) -> None:
    calls = Calls()
    _wid, item = await started_review(rt, calls)
    with pytest.raises(ActionDeniedError, match="'bob'"):
        await rt.complete_work_item(item, {"approved": True}, principal=READER)
    assert (await rt.work_item(item)).state == "started"
    assert calls.callback == []


async def test_a_caller_with_the_scope_completes(rt: cf.Runtime) -> None:
    calls = Calls()
    wid, item = await started_review(rt, calls)
    await rt.complete_work_item(item, {"approved": True, "note": "fine"}, principal=REVIEWER)
    info = await rt.work_item(item)
    assert (info.state, info.output) == ("completed", {"approved": True, "note": "fine"})
    assert calls.callback == [("ada", Review(approved=True, note="fine"))]
    assert await rt.workflow_state(wid) == "completed"


async def test_internal_calls_skip_the_policy_but_keep_schema_and_callback(rt: cf.Runtime) -> None:
    calls = Calls()
    _wid, item = await started_review(rt, calls)
    await rt.complete_work_item(item, {"approved": False})
    assert calls.policy == []
    assert calls.callback == [(None, Review(approved=False))]


async def test_an_invalid_payload_is_refused_before_the_policy(rt: cf.Runtime) -> None:
    calls = Calls()
    _wid, item = await started_review(rt, calls)
    with pytest.raises(InvalidPayloadError, match=r"Expected `bool`, got `str` - at `\$.approved`"):
        await rt.complete_work_item(item, {"approved": "yes"}, principal=REVIEWER)
    with pytest.raises(InvalidPayloadError, match="approved"):
        await rt.complete_work_item(item, {}, principal=REVIEWER)
    assert calls.policy == []
    assert calls.callback == []
    assert (await rt.work_item(item)).state == "started"


async def test_a_callback_can_veto_the_transition(rt: cf.Runtime) -> None:
    def veto(ctx: Any, payload: Any) -> None:
        raise PermissionError("office closed")

    item = net.work_item("a").actions(complete=net.action(callback=veto))
    rt.register(build("veto", {"a": net.task(item)}, [("start", "a"), ("a", "end")]))
    wid = await rt.start_workflow("veto")
    work = await open_item(rt, wid, "a")
    await rt.start_work_item(work.id)
    with pytest.raises(PermissionError, match="office closed"):
        await rt.complete_work_item(work.id, principal=REVIEWER)
    assert (await states(rt, wid))["a"] == "started"


async def test_custom_workflow_actions_admit_external_callers(rt: cf.Runtime) -> None:
    class Order(msgspec.Struct):
        amount: int

    spec = build(
        "orders",
        {"a": net.task()},
        [("start", "a"), ("a", "end")],
        actions={
            "initialize": net.action(Order, policy=net.require_scope("orders:create")),
            "cancel": net.action(policy=net.require_scope("orders:cancel")),
        },
    )
    rt.register(spec)
    creator = cf.Principal(id="c", scopes=frozenset({"orders:create"}))
    wid = await rt.start_workflow("orders", {"amount": 5}, principal=creator)
    assert (await rt.workflow(wid)).payload == {"amount": 5}
    with pytest.raises(InvalidPayloadError):
        await rt.start_workflow("orders", {"amount": "five"}, principal=creator)
    with pytest.raises(ActionDeniedError):
        await rt.cancel_workflow(wid, principal=creator)
    await rt.cancel_workflow(
        wid, principal=cf.Principal(id="d", scopes=frozenset({"orders:cancel"}))
    )
    assert await rt.workflow_state(wid) == "canceled"


async def test_versions_side_by_side_and_deprecation(rt: cf.Runtime) -> None:
    flows = [("start", "a"), ("a", "end")]
    v1 = build("hire", {"a": net.task()}, flows, version="v1")
    v2 = build(
        "hire",
        {"a": net.task(), "b": net.task()},
        [("start", "a"), ("a", "b"), ("b", "end")],
        version="v2",
    )
    rt.register(v1)
    old = await rt.start_workflow("hire")
    rt.register(v2)
    new = await rt.start_workflow("hire")
    assert set(await rt.task_states(new)) == {"a", "b"}
    assert set(await rt.task_states(old)) == {"a"}
    rt.deprecate("hire", "v1")
    with pytest.raises(WorkflowDeprecatedError, match="v1"):
        await rt.start_workflow("hire", version="v1")
    with pytest.raises(UnknownWorkflowError, match="v9"):
        await rt.start_workflow("hire", version="v9")
    with pytest.raises(UnknownWorkflowError, match="nope"):
        await rt.start_workflow("nope")
    item = await open_item(rt, old, "a")  # the deprecated version's instance goes on
    await rt.start_work_item(item.id)
    await rt.complete_work_item(item.id)
    assert await rt.workflow_state(old) == "completed"
    deprecated = build("fire", {"a": net.task()}, flows)
    rt.register(deprecated, deprecated=True)
    with pytest.raises(
        WorkflowDeprecatedError,
        match=r"every version of workflow 'fire' is deprecated .* register a new version",
    ):
        await rt.start_workflow("fire")
    with pytest.raises(ConfigurationError, match=r"versions of 'hire': \['v1', 'v2'\]"):
        rt.deprecate("hire", None)  # type: ignore[arg-type]
    assert await rt.start_workflow("hire")  # nothing was deprecated


@pytest.mark.parametrize("answer", ["deny", "DENY", {"allowed": False}, 1, None])
async def test_a_policy_answer_that_is_not_a_bool_refuses_the_caller(
    rt: cf.Runtime, answer: Any
) -> None:
    """An action policy answering ``"deny"`` (Tasquencer's ``PolicyResult.DENY`` as a string)
    let the caller act, any truthy answer being an allow (the conformance auditor's h25 M3):
    only True admits; the refusal says what it answered. Combined policies read it alike."""
    item = net.work_item("a").actions(
        start=net.action(policy=lambda ctx, payload: answer),
        complete=net.action(policy=net.any_policy(lambda ctx, payload: answer)),
    )
    rt.register(build("deny", {"a": net.task(item)}, [("start", "a"), ("a", "end")]))
    wid = await rt.start_workflow("deny")
    work = await open_item(rt, wid, "a")
    with pytest.raises(ActionDeniedError, match=rf"it answered {answer!r}, not True or False"):
        await rt.start_work_item(work.id, principal=REVIEWER)
    assert (await rt.work_item(work.id)).state == "initialized"
    await rt.start_work_item(work.id)  # the engine's own call asks no policy
    with pytest.raises(ActionDeniedError, match="its policy denied it"):
        await rt.complete_work_item(work.id, principal=REVIEWER)
    assert (await rt.work_item(work.id)).state == "started"


async def test_an_auto_trigger_in_an_outside_callers_turn_is_an_internal_call(
    rt: cf.Runtime,
) -> None:
    """An item's ``on_started`` completes it, in the turn of an outside caller's start: the
    complete runs as an internal call (no policy), and its callback said so not: it read the
    turn's caller, whom the policy would have refused (conform h36 F6)."""
    seen: list[Any] = []

    def callback(ctx: Any, payload: Any) -> None:
        seen.append((ctx.is_internal, ctx.principal, payload))

    item = (
        net.work_item("w")
        .actions(
            start=net.action(),
            complete=net.action(policy=lambda ctx, payload: False, callback=callback),
        )
        .activities(on_started=lambda ctx: ctx.work_item.complete({"auto": 1}))
    )
    rt.register(build("auto", {"w": net.task(item)}, [("start", "w"), ("w", "end")]))
    workflow_id = await rt.start_workflow("auto")
    opened = await open_item(rt, workflow_id, "w")
    await rt.start_work_item(opened.id, principal=REVIEWER)
    assert (await rt.work_item(opened.id)).state == "completed"
    assert seen == [(True, None, {"auto": 1})]
