"""The runtime ``serve`` runs: the one APP builds, or one made from the settings around APP's
list of workflows.

A ``Runtime`` that APP builds has opened its own database, with its own durability, lease and
retention: a setting of ``serve`` that would have built them is not used. Each one given (by a
file, a variable or a flag, its default's value too) that differs from the runtime's own is
refused, naming the ``Runtime`` argument that takes it (newcomer h42 F1: ``--db real.db`` given
to a ``Runtime`` made without ``db=`` served in memory, its warning saying to give ``--db`` a
file, and every accepted run was lost at the next stop; retest h42 N2: ``--db cronflow.db``, the
default's name, was taken for none given). ``--wait-for-lease``, how this process's start meets
another's lease (a supervisor's restart), is taken by that runtime too, as is ``--no-audit``.
"""

from __future__ import annotations

from typing import Any

from cronflow_actors.errors import ConfigurationError

__all__ = ["runtime_of"]


def runtime_of(settings: Any, target: Any, app_spec: str) -> Any:
    """The runtime APP (``app_spec``, loaded as ``target``) gives: the one it builds, or one
    made from the settings around its list of workflows (or its one workflow)."""
    from cronflow_actors.runtime import WORKFLOWS, Runtime
    from cronflow_actors.runtime.config import deletion_age

    if isinstance(target, Runtime):
        _refuse_unused(settings, target)
        if not settings.audit:
            target.audit = False
        if settings.wait_for_lease:  # (both kinds of lease read it as their start waits)
            target.lease.waits = True
        return target
    if isinstance(target, (list, tuple, *WORKFLOWS)):  # (one workflow: a list of it)
        return Runtime(
            db=settings.db,
            workflows=target if isinstance(target, list | tuple) else [target],
            synchronous=settings.synchronous,
            lease_seconds=settings.lease_seconds,
            wait_for_lease=settings.wait_for_lease,
            retention=deletion_age(settings.retention, "retention"),
            queues=settings.queues,
            otel_endpoint=settings.otel_endpoint,
            audit=settings.audit,
            max_active_runs=settings.max_active_runs,
        )
    expected = "a Runtime, a list of workflows, or one workflow (cf.define(...), a net)"
    raise ConfigurationError("APP", app_spec, expected)


def _refuse_unused(settings: Any, runtime: Any) -> None:
    """``ConfigurationError`` for the first setting given that the runtime APP built does not
    take: one the runtime has otherwise, or one only a runtime ``serve`` makes takes."""
    from cronflow_actors.runtime.config import deletion_age
    from cronflow_actors.runtime.database import describe, is_database

    store = runtime.store
    unused = {  # (given, as load_config says: --db cronflow.db given is no default, h42 N2)
        "queues": bool(settings.queues),
        "max_active_runs": settings.max_active_runs is not None,
        "otel_endpoint": bool(settings.otel_endpoint),
        "db": not is_database(store, settings.db),
        "synchronous": settings.synchronous != getattr(store, "synchronous", None),
        "lease_seconds": settings.lease_seconds != runtime.lease.duration,
        "retention": (deletion_age(settings.retention, "retention") or None) != runtime.retention,
    }
    for name, refused in unused.items():
        if refused and name in settings.given:
            own = f"; its database is {describe(store) or 'in memory'}" if name == "db" else ""
            raise ConfigurationError(
                name,
                getattr(settings, name),
                f"none: APP builds its own Runtime, which takes it as Runtime({name}=...){own} "
                "(serve's settings build the runtime only when APP is a list of workflows)",
            )
