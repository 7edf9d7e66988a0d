"""SpiffWorkflow (BPMN) with its serialized workflow in SQLite: workload a (three steps), one run
at a time and with grouped commits, the way the library's documentation shows a user:

- the process is BPMN parsed once with ``BpmnParser`` and run as a ``BpmnWorkflow``
  (https://spiffworkflow.readthedocs.io/en/latest/bpmn/workflows.html);
- each step is a script task whose script is the step body (``x = x + 1``);
- state is kept with ``BpmnWorkflowSerializer.serialize_json``, saved after each step through
  ``do_engine_steps(did_complete_task=...)`` (its documented hook), once when the run starts and
  once when it completes (https://spiffworkflow.readthedocs.io/en/latest/bpmn/serialization.html);
  one row per run, ``INSERT OR REPLACE``; a run is five commits (ours: four).

SQLite in WAL mode with synchronous=FULL (as cronflow-actors' store). ``--mode sequential``: one
run at a time, each save its own transaction. ``--mode grouped``: ``--in-flight`` runs advance
in rounds, each moving every run one step, then one transaction saves every run's new state,
so no run takes its next step before its last one is durable: the same group commit that
cronflow-actors' store does.

    python spiff_peer.py --mode sequential|grouped --runs N [--in-flight K]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from SpiffWorkflow.bpmn.parser import BpmnParser
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.defaults import ScriptTask
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from benchmarks.suite.record import drive_blocking, emit, record

BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    id="defs" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="three" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="s1"><bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing>
      <bpmn:script>x = x + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="s2"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>x = x + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="s3"><bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:script>x = x + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="s1" />
    <bpmn:sequenceFlow id="f1" sourceRef="s1" targetRef="s2" />
    <bpmn:sequenceFlow id="f2" sourceRef="s2" targetRef="s3" />
    <bpmn:sequenceFlow id="f3" sourceRef="s3" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""

parser = BpmnParser()
parser.add_bpmn_str(BPMN.encode())
SPEC = parser.get_spec("three")
SERIALIZER = BpmnWorkflowSerializer()
SAVE = "INSERT OR REPLACE INTO workflows (id, state, completed) VALUES (?, ?, ?)"


def open_db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE workflows (id INTEGER PRIMARY KEY, state TEXT, completed INTEGER)")
    return db


def new_workflow() -> BpmnWorkflow:
    workflow = BpmnWorkflow(SPEC)
    workflow.data["x"] = 7
    workflow.get_tasks(state=TaskState.READY)[0].data["x"] = 7
    return workflow


def save(db: sqlite3.Connection, rows: list[tuple[int, str, int]]) -> None:
    db.execute("BEGIN IMMEDIATE")
    db.executemany(SAVE, rows)
    db.execute("COMMIT")


def sequential(db: sqlite3.Connection, runs: int) -> tuple[float, list[float], int]:
    commits = 0

    def one(number: int) -> None:
        nonlocal commits
        workflow = new_workflow()
        save(db, [(number, SERIALIZER.serialize_json(workflow), 0)])
        commits += 1

        def did_complete(task: object) -> None:
            nonlocal commits
            if isinstance(task.task_spec, ScriptTask):  # type: ignore[attr-defined]
                save(db, [(number, SERIALIZER.serialize_json(workflow), 0)])
                commits += 1

        workflow.do_engine_steps(did_complete_task=did_complete)
        assert workflow.is_completed()
        save(db, [(number, SERIALIZER.serialize_json(workflow), 1)])
        commits += 1

    elapsed, latencies = drive_blocking(one, runs)
    return elapsed, latencies, commits


def advance(workflow: BpmnWorkflow) -> None:
    """Run engine tasks until one step (script task) has completed or the workflow has."""
    while not workflow.is_completed():
        ready = [t for t in workflow.get_tasks(state=TaskState.READY) if not t.task_spec.manual]
        if not ready:
            return
        ready[0].run()
        if isinstance(ready[0].task_spec, ScriptTask):
            return


def grouped(db: sqlite3.Connection, runs: int, in_flight: int) -> tuple[float, list[float], int]:
    commits = 0
    latencies: list[float] = []
    waiting = iter(range(runs))
    active: dict[int, tuple[BpmnWorkflow, float]] = {}
    began = time.perf_counter()
    while True:
        rows = []
        for number in list(active):
            workflow = active[number][0]
            advance(workflow)
            done = workflow.is_completed()
            rows.append((number, SERIALIZER.serialize_json(workflow), int(done)))
        for number in waiting:  # new runs take the free places; their start is saved below
            workflow = new_workflow()
            active[number] = (workflow, time.perf_counter())
            rows.append((number, SERIALIZER.serialize_json(workflow), 0))
            if len(active) >= in_flight:
                break
        if not rows:
            break
        save(db, rows)
        commits += 1
        now = time.perf_counter()
        for number, _state, done in rows:
            if done:
                latencies.append(now - active.pop(number)[1])
    return time.perf_counter() - began, latencies, commits


def check(db: sqlite3.Connection, runs: int) -> list[str]:
    """Every run completed, its saved state says so, and x went 7 -> 10."""
    problems = []
    completed = db.execute("SELECT COUNT(*) FROM workflows WHERE completed = 1").fetchone()[0]
    if completed != runs:
        problems.append(f"{completed} of {runs} runs completed")
    for (state,) in db.execute("SELECT state FROM workflows ORDER BY random() LIMIT 20"):
        workflow = SERIALIZER.deserialize_json(state)
        if not workflow.is_completed() or workflow.data.get("x") != 10:
            problems.append(f"a saved run ended with data {workflow.data}")
            break
    return problems


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--mode", choices=["sequential", "grouped"], default="sequential")
    arguments.add_argument("--runs", type=int, default=1000)
    arguments.add_argument("--in-flight", type=int, default=100)
    args = arguments.parse_args()
    engine = f"spiff-{args.mode}"
    in_flight = 1 if args.mode == "sequential" else args.in_flight
    workload = "e" if args.mode == "sequential" else "a"
    with tempfile.TemporaryDirectory(prefix="spiff-bench-") as folder:
        db = open_db(Path(folder) / "spiff.db")
        try:
            if args.mode == "sequential":
                elapsed, latencies, commits = sequential(db, args.runs)
            else:
                elapsed, latencies, commits = grouped(db, args.runs, args.in_flight)
            problems = check(db, args.runs)
        except Exception as error:
            problems = [f"{type(error).__name__}: {error}"]
        finally:
            synchronous = db.execute("PRAGMA synchronous").fetchone()[0]
            db.close()
    if problems:
        rec = record(
            engine,
            workload,
            runs=args.runs,
            in_flight=in_flight,
            status="failed",
            note="; ".join(problems),
        )
    else:
        rec = record(
            engine,
            workload,
            runs=args.runs,
            in_flight=in_flight,
            elapsed_s=elapsed,
            latencies_s=latencies,
            steps_per_run=3,
            commits=commits,
            synchronous=synchronous,
            journal_mode="wal",
        )
    emit(rec)
    if args.mode == "sequential" and rec["status"] == "ok":
        # The same measurement stands for three steps one at a time (workload a, in flight 1).
        emit({**rec, "workload": "a"})


if __name__ == "__main__":
    main()
