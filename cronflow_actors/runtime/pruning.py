"""Pruning finished runs (``Runtime.prune``, ``serve --retention``, ``db prune``), and what it
must leave: the runs a migration under way still needs, and a run whose work goes on in another
still stored (its resume, the run its migration started).

A finished run whose work goes on elsewhere still answers for it: a webhook's duplicate delivery
finds it by the id its key names and is told where the work is now (``current_run_id``). Pruned
by its own end, its id was free again while its resume still ran, and the duplicate started the
work a second time (ops h41 F3). So each resume and each migration's hop records which run goes
on from which (kv namespace ``cronflow:successors``: the earlier run's id -> the later one's and
when), before the later run starts (a resume: before it even reads the earlier one), and the
store's delete keeps every run such a link names, read in the delete's own statement: a link
written before it keeps its run (a link read beforehand, then a delete, lost the runs resumed in
between: review h42 F2), and one written while it runs waits for it (``kv_set``'s ``keeps``:
another PostgreSQL process's delete read the links as its statement began, retest3 h42 N1).
A link is let go once its later run is gone (pruned in turn: a chain goes with its last run, in
the same prune) or was never started (a resume refused), a minute after it was written; and once
its earlier run is gone. A resume or migration an older runtime made recorded nothing: its run
is pruned by its own end, as it was.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Collection, Iterable
from typing import Any

from cronflow_actors.runtime.migration_plans import kept_by_migrations
from cronflow_actors.store import Store

__all__ = ["SUCCESSORS", "forget_successor", "prune_finished", "record_successors"]

SUCCESSORS = "cronflow:successors"
"""The namespace of the links: a run's id -> ``[the id of the run its work went on in, when]``."""

_STARTING = 60.0
"""Seconds a link to a run not stored is kept: the run may still be starting."""

_PAGE = 1000  # the store's page: of prunes, and of the ids one existence read takes

_LOCKS: weakref.WeakKeyDictionary[Store, asyncio.Lock] = weakref.WeakKeyDictionary()
"""A prune of a store at a time in this process: one let go a link while another's pass had
read it, and returned with the run it freed still there (a caller's beside retention's)."""


async def record_successors(store: Store, pairs: Iterable[tuple[str, str]], now: float) -> None:
    """Record that the work of each pair's first run goes on in its second, before that one is
    started (a link to a run never started keeps its first run a minute, then goes)."""
    for run_id, successor in pairs:
        await store.kv_set(SUCCESSORS, run_id, [successor, now], now=now, keeps=True)


async def forget_successor(store: Store, run_id: str, successor: str) -> None:
    """Delete the link of ``run_id`` to ``successor`` unless that run is stored: its start was
    refused (a link left for it kept the run a minute, and its row for good with no pruning:
    retest3 h42 N4)."""
    if not await store.instance_exists(successor):
        await store.kv_delete(SUCCESSORS, run_id)


async def prune_finished(
    store: Store,
    *,
    finished_before: float,
    now: float,
    on_page: Callable[[int], object] | None = None,
) -> int:
    """Delete the runs that finished before ``finished_before``, with their history, and the
    expired state keys; returns how many runs (``on_page`` hears each page's count as it is
    committed: a prune that fails later has deleted those). Kept: the runs a migration under way
    needs (read once: a migration that begins later cancels its run after the cutoff), and each
    run a link names."""
    lock = _LOCKS.setdefault(store, asyncio.Lock())
    async with lock:  # one at a time: retention's and a caller's (each sees the other's end)
        return await _prune(store, finished_before, now, on_page)


async def _prune(
    store: Store, finished_before: float, now: float, on_page: Callable[[int], object] | None
) -> int:
    planned = await kept_by_migrations(store, now)
    total = 0
    while True:
        pruned = 0
        stored = await _stored(store, {after for after, _at in (await _links(store, now)).values()})
        while page := await store.prune(
            finished_before=finished_before, keep=planned, keep_keys_of=SUCCESSORS
        ):
            pruned += page
            if on_page is not None:
                on_page(page)
        total += pruned
        if not await _let_go(store, now, stored):  # a link let go frees its run: prune again
            break
    await store.kv_purge_expired(now)
    return total


async def _let_go(store: Store, now: float, stored: set[str]) -> int:
    """Delete the links whose earlier run is gone, or whose later one is gone (it was in
    ``stored``, the later runs stored as the prune began: pruned) or not stored a minute after
    they were written (never started); how many of the second kind, each of which frees a run
    to prune. (A link younger than a minute kept its earlier run when the prune took its later
    one: a client's retried resume then ran the work again, pg h43 F1.)"""
    links = await _links(store, now)
    runs = await _stored(store, links.keys())
    later = await _stored(store, {after for after, _at in links.values()})
    freed = 0
    for run, (after, at) in links.items():
        gone = run not in runs
        if gone or (after not in later and (after in stored or now - at >= _STARTING)):
            await store.kv_delete(SUCCESSORS, run)
            freed += not gone
    return freed


async def _links(store: Store, now: float) -> dict[str, tuple[str, float]]:
    """Every link: its earlier run -> its later run, and when it was written."""
    return {run: _link(value) for run, value in (await store.kv_items(SUCCESSORS, now=now)).items()}


def _link(value: Any) -> tuple[str, float]:
    """A link's later run and when it was written (a value of another form: long ago)."""
    if isinstance(value, list) and len(value) == 2:
        return str(value[0]), float(value[1])
    return str(value), 0.0


async def _stored(store: Store, ids: Collection[str]) -> set[str]:
    """Of ``ids``, those stored, a page of them a read."""
    ordered = sorted(ids)
    found: set[str] = set()
    for start in range(0, len(ordered), _PAGE):
        found |= await store.existing_among(ordered[start : start + _PAGE])
    return found
