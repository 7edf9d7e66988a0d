"""Cron schedules and intervals of registered flows, fired while the runtime runs.

Each tick starts one run whose instance id is derived from (flow, schedule, tick), so a tick that
was already started (before a crash, say) is not started again: one run per tick, even across a
restart.

A cron schedule keeps a mark in the store's key-value state (namespace ``cronflow:schedules``,
key ``<flow>|<schedule>``): every tick up to it has been handled, that is, its run was started
or the catch-up policy skipped it. The mark is written after each tick's run is started. When a
runtime starts, the ticks between the mark and now were missed, and the schedule's
``catch_up`` says which of them get a run (``flow/cron.py``). A schedule seen for the first time
marks the moment it was first planned, so a tick missed before its first run is caught up too.
While the runtime runs, the tick the loop woke for always fires; ticks that went by during a
late wake-up (a suspended process) are missed ones. Intervals keep no mark: their missed ticks
are skipped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import msgspec

from cronflow_actors.errors import ConfigurationError, InstanceExistsError, NotFoundError
from cronflow_actors.flow.cron import CatchUp, CronSchedule
from cronflow_actors.kernel import Clock
from cronflow_actors.net.durations import parse_duration
from cronflow_actors.runtime.catalog import FlowCatalog
from cronflow_actors.runtime.ids import derived_run_id
from cronflow_actors.store import MISSING, Store

__all__ = ["CATCH_UP_LIMIT", "ScheduleMark", "SchedulePause", "Schedules"]

logger = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("6c1f3a2e-8f6d-4c59-9b0e-2b8f0f7a9d11")
_STATE = "cronflow:schedules"
_PAUSES = "cronflow:schedule-pauses"
"""Where a flow's pause is kept, under the flow's id (apart from the marks, ``<flow>|<key>``)."""

CATCH_UP_LIMIT = 100
"""At most this many runs for the ticks a ``catch_up="all"`` schedule missed (the latest ones)."""


class ScheduleMark(msgspec.Struct, frozen=True):
    """What the store keeps for one cron schedule."""

    handled_until: float
    """Every tick up to this moment (epoch seconds) has been handled."""


class SchedulePause(msgspec.Struct, frozen=True, kw_only=True):
    """A flow's schedules paused by an operator (``Runtime.pause_schedules``): no tick of them
    starts a run until they are resumed, and the ticks that pass meanwhile are not caught up."""

    since: float
    """When they were paused (epoch seconds)."""
    by: str | None = None
    """Who paused them (a token's id; None: the runtime's own code)."""
    note: str = ""
    """Why, as the operator said it."""


class _Plan(msgspec.Struct, kw_only=True):
    """One schedule of one flow, as the loop follows it."""

    flow: str
    key: str
    text: str
    next_after: Callable[[float], float]
    cron: CronSchedule | None = None
    """None for an interval, which keeps no mark."""
    seconds: float | None = None
    """An interval's length (None for a cron schedule)."""
    handled: float = 0.0

    @property
    def state_key(self) -> str:
        return f"{self.flow}|{self.key}"


class Schedules:
    def __init__(
        self,
        *,
        catalog: FlowCatalog,
        store: Store,
        clock: Clock,
        trigger: Callable[..., Awaitable[str]],
        spawn: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]],
        on_fired: Callable[[str, float], None],
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._clock = clock
        self._trigger = trigger
        self._spawn = spawn
        self._on_fired = on_fired
        self._task: asyncio.Task[None] | None = None
        self.fired = 0

    def _plans(self, *only: str) -> list[_Plan]:
        """The schedules of the registered flows (of ``only`` these, if named)."""
        plans: list[_Plan] = []
        for name in only or sorted(self._catalog.roots):
            flow = self._catalog.compiled[name]
            for index, cron in enumerate(flow.triggers.schedules):
                key = f"cron{index}"
                plans.append(
                    _Plan(flow=name, key=key, text=cron.text, next_after=cron.next_after, cron=cron)
                )
            for index, seconds in enumerate(flow.triggers.intervals):
                text = f"every {seconds:g} s"
                plans.append(
                    _Plan(
                        flow=name,
                        key=f"every{index}",
                        text=text,
                        next_after=_aligned(seconds),
                        seconds=seconds,
                    )
                )
        return plans

    def restart(self) -> None:
        """(Re)plan after a start or a registration (the runtime calls it while running)."""
        self.stop()
        plans = self._plans()
        if plans:
            self._task = self._spawn(self._run(plans), "schedules")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self, plans: list[_Plan]) -> None:
        clock = self._clock
        now = clock.now()
        for plan in plans:
            await self._resume(plan, now)
        while True:
            due = min(plan.next_after(plan.handled) for plan in plans)
            if math.isinf(due):
                return  # no schedule has a tick left in the next 50 years
            await clock.sleep_until(due)
            now = clock.now()
            for plan in plans:
                tick = plan.next_after(plan.handled)
                if tick <= now:
                    await self._fire(plan, tick)
                    await self._catch_up(plan, now)

    async def _resume(self, plan: _Plan, now: float) -> None:
        """Pick a schedule up where it was left: the ticks after its mark were missed."""
        if plan.cron is None:
            plan.handled = now
            return
        try:
            mark = await self._load(plan)
        except Exception:
            logger.exception(
                "schedule %r of %s: its mark could not be read; the ticks it missed are not "
                "caught up now (the mark stays for the next start)",
                plan.text,
                plan.flow,
            )
            plan.handled = now
            return
        if mark is None:
            plan.handled = now
            await self._save(plan)
        else:
            plan.handled = mark.handled_until
            await self._catch_up(plan, now)

    async def _catch_up(self, plan: _Plan, now: float) -> None:
        """Apply the plan's policy to the ticks after its mark up to ``now``."""
        if plan.cron is None:
            plan.handled = max(plan.handled, now)
            return
        if plan.next_after(plan.handled) > now:
            return  # nothing missed, the usual case
        policy = plan.cron.catch_up
        count = CATCH_UP_LIMIT + 1 if policy is CatchUp.ALL else 1
        missed = plan.cron.latest(plan.handled, now, count)
        if not missed:
            return
        if policy is CatchUp.NONE:
            logger.info(
                "schedule %r of %s skips the ticks it missed since %s, up to %s (catch_up='none')",
                plan.text,
                plan.flow,
                _iso(plan.handled),
                _iso(missed[-1]),
            )
            plan.handled = missed[-1]
            await self._save(plan)
            return
        if len(missed) > CATCH_UP_LIMIT:
            missed = missed[-CATCH_UP_LIMIT:]
            logger.warning(
                "schedule %r of %s missed more than %d ticks since %s; catch_up='all' starts "
                "runs for the latest %d (from %s) and skips the older ones",
                plan.text,
                plan.flow,
                CATCH_UP_LIMIT,
                _iso(plan.handled),
                CATCH_UP_LIMIT,
                _iso(missed[0]),
            )
        for tick in missed:
            await self._fire(plan, tick)

    async def _fire(self, plan: _Plan, tick: float) -> None:
        """Start the run of one tick; ``on_fired(flow, lag)`` hears of it with how late after
        the tick it started (long for a tick caught up after a downtime)."""
        if await self._paused_now(plan, tick):
            return
        instance_id = derived_run_id("tick", _NAMESPACE, f"{plan.flow}|{plan.key}|{tick}")
        payload = _tick_payload(plan, tick)
        # Handled in memory whatever happens, so the loop moves on; the mark is saved only once
        # the run exists, so a tick whose start failed counts as missed after a restart (unless
        # a later tick started first).
        plan.handled = tick
        try:
            await self._trigger(
                plan.flow, payload, kind="schedule", instance_id=instance_id, derived=True
            )
            self.fired += 1
            self._on_fired(plan.flow, self._clock.now() - tick)
        except InstanceExistsError:
            pass  # this tick was started before
        except Exception:
            logger.exception(
                "schedule %s of %s could not start a run at %s", plan.text, plan.flow, tick
            )
            return
        await self._save(plan)

    async def _paused_now(self, plan: _Plan, tick: float) -> bool:
        """Whether the flow's schedules are paused: the tick is then handled, no run started
        (read at each tick, so a pause by any process on the database holds here at once)."""
        try:
            paused = await self.paused(plan.flow)
        except Exception:  # unreadable: the tick fires, as it did before pauses were kept
            logger.exception("schedule %r of %s: its pause could not be read", plan.text, plan.flow)
            return False
        if paused is None:
            return False
        logger.info(
            "schedule %r of %s is paused (since %s): its tick %s starts no run",
            plan.text,
            plan.flow,
            _iso(paused.since),
            _iso(tick),
        )
        plan.handled = tick
        await self._save(plan)
        return True

    async def paused(self, flow: str) -> SchedulePause | None:
        """The pause of ``flow``'s schedules, or None while they run."""
        stored = await self._store.kv_get(_PAUSES, flow, now=self._clock.now())
        if stored is MISSING or stored is None:
            return None
        try:
            return msgspec.convert(stored, SchedulePause)
        except msgspec.ValidationError:  # (written by this module alone: paused all the same)
            return SchedulePause(since=0.0, note=f"unreadable: {stored!r}")

    async def pause(self, flow: str, *, note: str = "", by: str | None = None) -> SchedulePause:
        """Pause every schedule and interval of ``flow`` (until ``resume``): its ticks start
        no run, here and in every process on the database. Paused already: that pause, as it
        was. ``NotFoundError`` for a flow that is not registered or has no schedule."""
        self._scheduled(flow)
        pause = SchedulePause(since=self._clock.now(), by=by, note=note)
        # one step: of two pauses at once, in any process, one stands and both are told so
        # (a read, then a write: each was told its own stood, review h39 F6)
        stood = await self._store.kv_setdefault(_PAUSES, flow, pause, now=pause.since)
        stands = msgspec.convert(stood, SchedulePause)
        if stands == pause:
            logger.info("the schedules of %s are paused%s", flow, f" ({note})" if note else "")
        return stands

    async def resume(self, flow: str) -> bool:
        """Resume ``flow``'s schedules: its next tick starts a run, and the ticks that passed
        while they were paused are not caught up (their marks move to now). Whether they were
        paused."""
        plans = self._scheduled(flow)
        if await self.paused(flow) is None:
            return False
        now = self._clock.now()
        for plan in plans:  # (a tick that passed while paused, not yet handled: skipped)
            mark = await self._load(plan) if plan.cron is not None else None
            plan.handled = max(now, mark.handled_until if mark is not None else now)
            await self._save(plan)
        resumed = await self._store.kv_delete(_PAUSES, flow)  # (of two at once: one)
        if resumed:
            logger.info("the schedules of %s are resumed", flow)
        return resumed

    def _scheduled(self, flow: str) -> list[_Plan]:
        """The plans of ``flow``; ``NotFoundError`` for a flow not registered, or without any."""
        self._catalog.root(flow)
        plans = self._plans(flow)
        if not plans:
            raise NotFoundError(
                "schedule of flow",
                flow,
                advice="it has no on_schedule or on_interval; start a run of it with trigger "
                "(POST /runs, cronflow-actors run FLOW)",
            )
        return plans

    async def fire_now(
        self,
        flow: str,
        schedule: str | None = None,
        *,
        instance_id: str | None = None,
        by: str | None = None,
    ) -> str:
        """Start a run of ``flow`` now as a tick of one of its schedules would (``Runtime.
        fire_schedule``): the payload a tick gives it, ``scheduled_at`` now, ``fired_now``
        true. The schedule's mark and its next tick stay as they were; its lag is not
        measured. ``schedule``: as ``_names`` reads it (None: the flow's only one)."""
        plans = self._scheduled(flow)
        names = ", ".join(repr(name) for name in _shown(plans))
        if schedule is None and len(plans) > 1:  # (in words an HTTP caller reads: h32 F4)
            expected = f"the schedule to fire named, as flow {flow!r} has {len(plans)}: {names}"
            raise ConfigurationError(
                "schedule",
                None,
                expected,
                said=f"no schedule named, and flow {flow!r} has {len(plans)}: name the one to "
                f'fire: {names} (the "schedule" field over HTTP, --schedule in the CLI, '
                "schedule= in Python)",
            )
        chosen = [plan for plan in plans if schedule is None or _names(plan, schedule)]
        if not chosen:
            raise NotFoundError(
                "schedule", schedule or "", f"flow {flow!r}", advice=f"its schedules: {names}"
            )
        zones = list(dict.fromkeys(plan.cron.timezone for plan in chosen if plan.cron))
        if len(zones) > 1:  # one expression in several zones (the same twice: one tick's run)
            zoned = ", ".join(f"'{chosen[0].text} ({zone})'" for zone in zones)
            raise ConfigurationError(
                "schedule",
                schedule,
                f"one schedule of flow {flow!r}: {schedule!r} is declared in several time zones; "
                f"name it with its zone, one of {zoned}",
                named="argument",
            )
        payload = _tick_payload(chosen[0], self._clock.now())
        payload["fired_now"] = True
        return await self._trigger(flow, payload, kind="schedule", instance_id=instance_id, by=by)

    async def _load(self, plan: _Plan) -> ScheduleMark | None:
        stored = await self._store.kv_get(_STATE, plan.state_key, now=self._clock.now())
        if stored is MISSING:
            return None
        try:
            return msgspec.convert(stored, ScheduleMark)
        except msgspec.ValidationError as error:
            logger.warning(
                "schedule %r of %s: the stored mark %r is unreadable (%s); missed ticks are "
                "counted from now",
                plan.text,
                plan.flow,
                stored,
                error,
            )
            return None

    async def _save(self, plan: _Plan) -> None:
        if plan.cron is None:
            return
        mark = ScheduleMark(handled_until=plan.handled)
        try:
            await self._store.kv_set(_STATE, plan.state_key, mark, now=self._clock.now())
        except Exception:
            logger.exception(
                "schedule %r of %s: its mark %s was not saved; after a restart this tick counts "
                "as missed (a started one is not started again)",
                plan.text,
                plan.flow,
                _iso(plan.handled),
            )


def _shown(plans: list[_Plan]) -> list[str]:
    """The names of ``plans`` to fire them by, as a refusal lists them: a cron expression with
    its zone where the flow declares it in two (conform h32 F6: it was listed twice, alike)."""
    zones: dict[str, set[str]] = {}
    for plan in plans:
        if plan.cron is not None:
            zones.setdefault(plan.text, set()).add(plan.cron.timezone)
    shown = [
        f"{plan.text} ({plan.cron.timezone})"
        if plan.cron is not None and len(zones[plan.text]) > 1
        else plan.text
        for plan in plans
    ]
    return list(dict.fromkeys(shown))


def _names(plan: _Plan, schedule: str) -> bool:
    """Whether ``schedule`` names ``plan``: a cron schedule by its expression as declared, alone
    or followed by its zone as ``flows`` shows it (``0 9 * * * (Europe/Paris)``, the zone in any
    case); an interval by ``every`` and its length, in seconds however written (``every 900 s``,
    ``every 9e2``) or as a duration (``every 15m``, or ``15m`` as ``on_interval`` was given it):
    a number and its unit (or a number of seconds), in ASCII digits, in any case (``every 6 0``
    named the 60 s one: hostile h32 L2)."""
    words = schedule.split()
    if plan.cron is not None:
        declared = plan.text.split()
        zone = f"({plan.cron.timezone})".casefold()
        return words == declared or (words[:-1] == declared and words[-1].casefold() == zone)
    words = [word.lower() for word in words]  # ("EVERY 600 S" as "every 600 s")
    if words[:1] == ["every"]:
        words = words[1:]
    if not 1 <= len(words) <= 2 or (len(words) == 2 and not words[1].isalpha()):
        return False
    text = "".join(words)  # (no "_": float() reads "6_0" as 60)
    return text.isascii() and "_" not in text and _length(text) == plan.seconds


def _length(text: str) -> float | None:
    """Seconds in an interval's length as a caller names it: a number (``900``, ``9e2``), with
    ``s`` after it or not, or a duration (``15m``); None for anything else."""
    for number in (text, text.removesuffix("s")):
        try:
            return float(number)
        except ValueError:
            pass
    try:
        return parse_duration(text)
    except ValueError:
        return None


def _tick_payload(plan: _Plan, tick: float) -> dict[str, Any]:
    """The payload of the run of ``plan``'s tick at ``tick``."""
    payload: dict[str, Any] = {
        "trigger_type": "schedule",
        "schedule": plan.text,
        "scheduled_at": tick,
        "scheduled_at_iso": _iso(tick),
        "workflow_id": plan.flow,
    }
    if plan.cron is not None:  # Cronflow's name for it, and the zone it is read in
        payload["cron_expression"] = plan.text
        payload["timezone"] = plan.cron.timezone
    return payload


def _iso(stamp: float) -> str:
    return dt.datetime.fromtimestamp(stamp, tz=dt.UTC).isoformat()


def _aligned(seconds: float) -> Callable[[float], float]:
    def next_after(when: float) -> float:
        return (math.floor(when / seconds) + 1) * seconds

    return next_after
