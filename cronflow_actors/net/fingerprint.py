"""A definition's structural fingerprint: what a running instance depends on, as one short hash.

An instance's stored state names the conditions of its nets, their tasks, work items and child
workflows; run on a definition whose structure differs (a step removed, renamed or moved, a
split turned into a join, a composite's child changed), that state no longer means what it
meant. ``fingerprint(spec)`` hashes exactly that structure: the start and end conditions, every
condition and its flows, every task with its kind, join, split, preset and postset (in
declaration order), its cancellation region, whether it has a router, policy or reducer, and
whether it catches; its work item's type (name, kind, how it runs, what it waits for, its
action names); a composite's children, recursively; the net's action names. For a
Cronflow-style flow this is the compiled net, so the step ids and their order are in it.

What is left out: the bodies of the functions (changing a handler's code is a deploy, not a new
definition), object identities, the version (the same structure registered under another
version has the same fingerprint), and whether a version is deprecated. So the same definition
built twice, in this process or another, has the same fingerprint.
"""

from __future__ import annotations

import hashlib
import weakref
from typing import Any

import msgspec

from cronflow_actors.net.spec import NetSpec, TaskSpec, WorkItemSpec

__all__ = ["FINGERPRINT_LENGTH", "fingerprint"]

FINGERPRINT_LENGTH = 16
"""Hex digits of a fingerprint (the first 64 bits of a SHA-256)."""

_SCHEME = 1
"""Part of what is hashed: a change to what the structure covers changes every fingerprint
(and is then a migration of the recorded ones, not a silent mismatch)."""

_known: weakref.WeakKeyDictionary[NetSpec, str] = weakref.WeakKeyDictionary()
"""Fingerprints already computed, by spec (a NetSpec is immutable and hashed by identity)."""


def fingerprint(spec: NetSpec) -> str:
    """The structural fingerprint of ``spec`` and its child workflows: 16 hex digits."""
    known = _known.get(spec)
    if known is None:
        encoded = msgspec.json.encode([_SCHEME, _net(spec)])
        known = _known[spec] = hashlib.sha256(encoded).hexdigest()[:FINGERPRINT_LENGTH]
    return known


def _net(spec: NetSpec) -> list[Any]:
    return [
        spec.name,
        spec.start,
        spec.end,
        spec.output,
        [
            [c.name, c.implicit, list(c.inputs), list(c.outputs)]
            for c in sorted(spec.conditions.values(), key=lambda c: c.name)
        ],
        [_task(t) for t in sorted(spec.tasks.values(), key=lambda t: t.name)],
        sorted(spec.actions),
    ]


def _task(task: TaskSpec) -> list[Any]:
    return [
        task.name,
        str(task.kind),
        str(task.join),
        str(task.split),
        list(task.inputs),
        list(task.outputs),
        sorted(task.cancel_tasks),
        sorted(task.cancel_conditions),
        task.router is not None,
        task.policy is not None,
        task.reduce is not None,
        task.catch,
        _work_item(task.work_item),
        [_net(child) for child in task.subworkflows],
    ]


def _work_item(item: WorkItemSpec | None) -> list[Any] | None:
    if item is None:
        return None
    wait = item.wait
    return [
        item.name,
        item.kind,
        item.handler is not None,
        item.detached,
        item.durable,
        item.sets_last,
        item.records_as,
        sorted(item.actions),
        None if wait is None else [wait.kind, wait.event],
    ]
