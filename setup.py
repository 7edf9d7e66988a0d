"""The build: everything is in pyproject.toml, except the engine compiled to C by mypyc.

With ``CRONFLOW_ACTORS_COMPILE=1`` (``CRONFLOW_ACTORS_COMPILE=1 pip install .``, or ``make
test-compiled``), the modules in ``COMPILED`` are compiled by mypyc into C extensions that
replace them at import: the engine's hot path (a quarter more runs a second on one machine,
none on the same machine another day: README, "The compiled engine"). It needs a C compiler
and Python's headers; ``_build/backend.py`` adds mypy and the runtime's dependencies (whose
types mypyc compiles against) to what the build installs (``pip install`` with its default
build isolation: the build's environment gets all it needs, whatever the target environment
holds). Without it (the default, and every editable install) the package is pure Python, the
same code.

What a compiled module must keep to: a class whose base is not compiled (pykka's ``Actor``,
prometheus-client's ``Collector``, a msgspec ``Struct``) is marked
``@mypyc_attr(native_class=False)``, or its instances do not match their base's layout and
corrupt memory; no nested function kept in a local (mypyc's closures hold their enclosing frame
in a reference cycle), a small class with bound methods instead. Modules that define msgspec
structs with class keywords (``kw_only=True``) stay pure: mypyc's class creation drops them.
"""

import os

from setuptools import setup

COMPILED = [
    "cronflow_actors/calls.py",
    "cronflow_actors/engine/audit.py",
    "cronflow_actors/engine/cascade.py",
    "cronflow_actors/engine/commands.py",
    "cronflow_actors/engine/handlers.py",
    "cronflow_actors/engine/policies.py",
    "cronflow_actors/engine/state_body.py",
    "cronflow_actors/engine/states.py",
    "cronflow_actors/engine/task_children.py",
    "cronflow_actors/engine/tasks.py",
    "cronflow_actors/engine/transaction.py",
    "cronflow_actors/engine/withdrawal.py",
    "cronflow_actors/engine/work_item_create.py",
    "cronflow_actors/engine/work_items.py",
    "cronflow_actors/engine/workflow_actor.py",
    "cronflow_actors/engine/workflows.py",
    "cronflow_actors/metrics/families.py",
    "cronflow_actors/net/marking.py",
    "cronflow_actors/runtime/telemetry.py",
    "cronflow_actors/store/_batch_sql.py",
]

if os.environ.get("CRONFLOW_ACTORS_COMPILE") == "1":
    try:
        from mypyc.build import mypycify
    except ImportError:
        raise SystemExit(
            "CRONFLOW_ACTORS_COMPILE=1 needs mypyc in the build's environment, with everything the "
            "package imports and setuptools>=77: a build with isolation (pip's default) installs "
            "them itself (_build/backend.py); with --no-build-isolation, first pip install "
            "'mypy>=2.4,<3' 'setuptools>=77' asyncpg-stubs '.[postgres,otel]'. Unset it for the "
            "pure package."
        ) from None
    setup(ext_modules=mypycify(COMPILED, opt_level="3"))
else:
    setup()
