"""The runs a webhook's requests name: by their idempotency key, or (signed, with no key) by
their signature. The ids are the runtime's own (``hook:...``: ``runtime/ids.py``), which no
client may choose, so nobody takes the run of a delivery before it arrives.

Earlier versions named them with 32 hex digits, which ``POST /runs`` accepts too: a run found
under such an id is a retry's answer only if a webhook started it (a client's run under it is no
delivery's, nor is a replay, which copies its run's trigger), so a retry that spans the upgrade
finds the run it started then. On a path with parameters (``/hooks/{tenant}``) a key names a run
of those parameters (one tenant's key never answers with another's run); the run an earlier
version named without them is a retry's answer only if its webhook started it with the same
parameters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cronflow_actors.errors import NotFoundError
from cronflow_actors.http.auth import Signature
from cronflow_actors.http.routes.webhook_keys import canonical_key, legacy_run_id_of, run_id_of
from cronflow_actors.runtime import RunInfo, Runtime, WebhookRequest, WebhookSpec

__all__ = ["NamedRuns", "Names"]

Names = tuple[str | None, tuple[str, ...]]
"""The id a request names its run by (None: it names none) and the ids earlier versions gave
that run."""


class NamedRuns:
    """Finds the run a request of one webhook names."""

    def __init__(
        self,
        runtime: Runtime,
        flow_id: str,
        spec: WebhookSpec,
        name: str,
        call: Callable[..., Awaitable[Any]],
    ) -> None:
        self._runtime = runtime
        self._flow_id = flow_id
        self._spec = spec
        self._name = name
        self._call = call
        """Calls a callback of the user's (a 500 naming it when it raises)."""

    def signed(self, signature: Signature) -> Names:
        """The run of a signed request without an idempotency key: named by its signature."""
        return self._named(f"signature:{signature.key}")

    async def keyed(self, request: WebhookRequest) -> Names:
        """The run ``request``'s idempotency key names (none without a key, or with the empty
        string, which is what a blank header holds). A string keeps the name it always had;
        any other key is named by its canonical JSON, marked so that no string's name is the
        same, and had its ``str()``'s name before keys told types apart (none when falsy). On a
        path with parameters (``/hooks/{tenant}``) a key names a run of those parameters only:
        one tenant's key never answers with another's run (h25 hostile M1)."""
        key = self._spec.idempotency_key
        if key is None:
            return None, ()
        if isinstance(key, str):
            value = request.headers.get(key.lower())  # read as UTF-8, as given in Python
        else:
            value = await self._call("idempotency_key", request)
        if value is None or (isinstance(value, str) and not value):
            return None, ()
        if request.params:
            where = canonical_key(dict(request.params), self._name).decode()
            instance_id = run_id_of(self._flow_id, f"{where}|{self._key_name(value)}")
            # earlier versions' names held no parameters: ``find`` takes such a run for this
            # request's only if its webhook started it with these parameters
            return instance_id, tuple(self._earlier(value))
        if isinstance(value, str):
            return self._named(value)
        named = self._key_name(value)
        instance_id, legacy = self._named(named)
        if value:
            legacy += (legacy_run_id_of(self._flow_id, str(value)),)
        return instance_id, legacy

    async def find(self, names: Names, params: Mapping[str, str] | None = None) -> RunInfo | None:
        """The run ``names`` names, if it exists: under its id, or under an earlier version's
        id when a webhook started it there (with the request's path ``params``, if given)."""
        instance_id, legacy = names
        if instance_id is not None:
            run = await self.run(instance_id)
            if run is not None:
                return run
        for old in legacy:
            run = await self.run(old)
            # a replay copies its run's trigger, and its id is the caller's choice: it is no
            # delivery's (hostile h26 H1: a token replayed a delivery under the id of a key a
            # sender would use, and that sender's delivery was answered as its duplicate)
            if run is None or run.replay_of is not None:
                continue
            if await self._started_by_webhook(old, params):
                return run
        return None

    async def run(self, run_id: str) -> RunInfo | None:
        """The run ``run_id`` (None: there is none)."""
        try:
            return await self._runtime.inspect(run_id)
        except NotFoundError:
            return None

    async def _started_by_webhook(self, run_id: str, params: Mapping[str, str] | None) -> bool:
        try:
            trigger = await self._runtime.replays.recorded_trigger(run_id)
        except NotFoundError:  # pruned meanwhile
            return False
        same = params is None or dict(trigger.params or {}) == dict(params)
        return trigger.kind == "webhook" and same

    def _earlier(self, value: Any) -> list[str]:
        """The ids earlier versions gave the run a key names, parameters left out."""
        name = self._key_name(value)
        earlier = [run_id_of(self._flow_id, name), legacy_run_id_of(self._flow_id, name)]
        if not isinstance(value, str) and value:
            earlier.append(legacy_run_id_of(self._flow_id, str(value)))
        return earlier

    def _key_name(self, value: Any) -> str:
        """A key's name: a string itself; another value its canonical JSON's digest, marked."""
        if isinstance(value, str):
            return value
        return "json:" + hashlib.sha256(canonical_key(value, self._name)).hexdigest()

    def _named(self, name: str) -> Names:
        return run_id_of(self._flow_id, name), (legacy_run_id_of(self._flow_id, name),)
