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
A chain goes from its first run on, a run a pass: the run a link names is kept while the run it
goes on from is stored, and a chain's first link is let go (its run then goes) once every run of
it is one the prune takes. So a resume asked again finds the run it resumes, and answers the
run it started, or finds it gone (a later run taken in one pass and its earlier one in the next:
a resume asked between them ran the work again, review h43 F2). A link is let go once its
earlier run is gone, and a minute after it was written if its later run is not stored (never
started: a resume refused). A resume or migration an older runtime made recorded nothing: its
run is pruned by its own end, as it was.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Collection, Iterable
from typing import Any

from cronflow_actors.runtime.migration_plans import kept_by_migrations
from cronflow_actors.store import Store, prunable

__all__ = ["SUCCESSORS", "forget_successor", "prune_finished", "record_successors"]

logger = logging.getLogger(__name__)

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
    # one at a time here (retention's and a caller's: each sees the other's end), and one
    # process at a time: two at once broke the chain's order, one let a chain's first link go,
    # the other read the links then, kept nothing of the run after it and deleted it, which a
    # resume asked again started again (review h44 F1)
    lock = _LOCKS.setdefault(store, asyncio.Lock())
    async with lock, store.exclusive("prune", _waiting):
        return await _prune(store, finished_before, now, on_page)


def _waiting() -> None:
    logger.warning("another process prunes this database: this prune waits for its end")


async def _prune(
    store: Store,
    finished_before: float,
    now: float,
    on_page: Callable[[int], object] | None,
) -> int:
    planned = await kept_by_migrations(store, now)
    takes = _Takes(store, finished_before, planned)
    total = 0
    while True:  # a pass a run of a chain: its earliest run goes first
        links = await _links(store, now)
        earlier = await _stored(store, links.keys())
        held = {after for run, (after, _at) in links.items() if run in earlier}
        await _let_go(store, links, earlier, now)
        for head in await _heads_taken(links, earlier, held, takes):
            await store.kv_delete(SUCCESSORS, head)
        pruned = 0
        while page := await store.prune(
            finished_before=finished_before, keep=planned | held, keep_keys_of=SUCCESSORS
        ):
            pruned += page
            if on_page is not None:
                on_page(page)
        total += pruned
        if not pruned:
            break
    await store.kv_purge_expired(now)
    return total


class _Takes:
    """Whether the store's delete takes a run (``store.prunable``). A run found so is so for
    the rest of the prune (a run that has ended stays so): each is read once, where each pass
    read every chain again (800 links: 320,000 reads, review h44 F2)."""

    def __init__(self, store: Store, finished_before: float, planned: Collection[str]) -> None:
        self._store, self._before, self._planned = store, finished_before, planned
        self._found: set[str] = set()

    async def __call__(self, run_id: str) -> bool:
        if run_id in self._found:
            return True
        run = await self._store.load_snapshot(run_id)
        taken = run is not None and prunable(run, self._before) and run_id not in self._planned
        if taken:
            self._found.add(run_id)
        return taken


async def _let_go(
    store: Store, links: dict[str, tuple[str, float]], earlier: set[str], now: float
) -> None:
    """Delete the links whose earlier run is gone, and those whose later run is not stored a
    minute after they were written (never started: its earlier run goes by its own end)."""
    later = await _stored(store, {after for run, (after, _at) in links.items() if run in earlier})
    for run, (after, at) in links.items():
        if run not in earlier or (after not in later and now - at >= _STARTING):
            await store.kv_delete(SUCCESSORS, run)


async def _heads_taken(
    links: dict[str, tuple[str, float]],
    earlier: set[str],
    held: set[str],
    takes: _Takes,
) -> list[str]:
    """The first runs of the chains this prune takes whole (each of its runs is one the delete
    takes, and its last goes on nowhere): their links are let go, so each goes in this pass and
    the run after it in the next. A chain goes from its first run on: a run its retried resume
    would start again is never gone while the run it resumes is stored (review h43 F2: a later
    run taken in one pass and its earlier run in the next, a resume asked again between them
    started the work again)."""
    heads = []
    for head in sorted(earlier - held):
        run, seen = head, set()
        while run not in seen and await takes(run):
            seen.add(run)
            if run not in links:
                heads.append(head)
                break
            run = links[run][0]
    return heads


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
