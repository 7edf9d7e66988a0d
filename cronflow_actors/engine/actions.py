"""The action boundary: how an outside call reaches a transition (spec section 5).

Order: an outside caller is admitted first (the payload converted to the action's schema, the
caller authenticated, the action's policy asked: ``stage="admit"``), so one who may not act hears
so and not how the element stands; then the element's state and bounds are checked, the callback
run (``stage="after"``); only then the transition.
An action with no custom definition is internal-only. Internal calls (``principal=None``) skip
authentication and the policy but keep the schema and the callback. Anything that refuses the
call raises before the transition, and the transaction is rolled back, so nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import msgspec

from cronflow_actors.calls import call_user
from cronflow_actors.engine.context import Context
from cronflow_actors.engine.transaction import normalize
from cronflow_actors.errors import (
    ActionDeniedError,
    AuthenticationRequiredError,
    InternalOnlyActionError,
    InvalidPayloadError,
    refusing_call,
    validation_path,
)
from cronflow_actors.messages import to_schema
from cronflow_actors.messages.engine import Principal
from cronflow_actors.net.builder import ActionSpec

__all__ = ["Stage", "admit_caller", "pass_boundary", "storable"]


Stage = Literal["all", "admit", "after"]
"""What of ``pass_boundary`` a call runs: all of it; ``admit``, an outside caller's checks
alone (schema, authentication, policy), asked before the element's state is said; ``after``,
the rest of a call so admitted (the callback, the storing), its policy not asked again."""


async def pass_boundary(
    *,
    actions: Mapping[str, ActionSpec],
    action: str,
    payload: Any,
    principal: Principal | None,
    element: str,
    context: Callable[[], Context],
    stage: Stage = "all",
) -> Any:
    """Check one action call (its ``stage``); returns the payload as stored (converted, then
    plain values; None for ``admit``)."""
    custom = actions.get(action)
    external = principal is not None
    if external and custom is None:
        raise InternalOnlyActionError(element, action)
    converted = payload
    if custom is not None and custom.schema is not None:
        try:
            converted = to_schema(payload, custom.schema)
        except msgspec.ValidationError as error:
            path = validation_path(error)
            raise InvalidPayloadError(element, action, str(error), path) from None
    if external and stage != "after":
        assert principal is not None
        await admit_caller(
            custom=custom,
            action=action,
            payload=converted,
            principal=principal,
            element=element,
            context=context,
        )
    if stage == "admit":
        return None
    if custom is not None and custom.callback is not None:
        callback = call_user(custom.callback, context(), converted)
        if external:  # (an internal call's error is its caller's to handle)
            await refusing_call(callback, f"{action} callback of {element}")
        else:
            await callback
    return storable(converted, element=element, action=action)


async def admit_caller(
    *,
    custom: ActionSpec | None,
    action: str,
    payload: Any,
    principal: Principal,
    element: str,
    context: Callable[[], Context],
) -> None:
    """Whether an outside caller may run ``action`` (its custom definition ``custom``) with
    ``payload``: authenticated, and admitted by the action's policy; raises if not. Its callback
    is not run (a migration asks the ``cancel`` action's policy, and skips the action)."""
    if custom is None:
        raise InternalOnlyActionError(element, action)
    if principal.id is None:
        raise AuthenticationRequiredError(element, action)
    if custom.policy is not None:
        # an outside caller's call: what the policy raises refuses it, nothing changes
        policy = call_user(custom.policy, context(), payload)
        answer = await refusing_call(policy, f"{action} policy of {element}")
        if answer is not True:  # a policy's "deny" (or any answer not a bool) is no allow
            named = getattr(custom.policy, "__qualname__", "")  # require_scope('x'), say
            shown = named if "<" not in named else ""  # not a lambda's or a closure's
            raise ActionDeniedError(element, action, principal.id, shown, answer)


def storable(payload: Any, *, element: str, action: str) -> Any:
    """``payload`` as it will be stored (plain values, a copy); ``InvalidPayloadError`` when
    the store cannot hold it (an object msgpack does not know, an integer beyond 64 bits)."""
    try:
        return normalize(payload)
    except (TypeError, ValueError, OverflowError) as error:
        raise InvalidPayloadError(element, action, f"it cannot be stored: {error}") from None
