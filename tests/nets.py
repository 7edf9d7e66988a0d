"""Net definitions the tests share."""

from __future__ import annotations

import itertools

from cronflow_actors import net


def chain(name: str, version: str, *tasks: str) -> net.WorkflowBuilder:
    """A net whose plain tasks run one after another from ``start`` to ``end``, not built yet
    (a test adds its actions or activities)."""
    builder = net.workflow(name, version=version).start_condition("start").end_condition("end")
    for task in tasks:
        builder.task(task, net.task())
    builder.connect_condition("start", tasks[0])
    for source, target in itertools.pairwise(tasks):
        builder.connect_task(source, target)
    return builder.connect_task(tasks[-1], "end")
