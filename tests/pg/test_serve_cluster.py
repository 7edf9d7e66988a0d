"""Several ``serve`` processes on one PostgreSQL database (the session's throwaway server): runs
spread over them complete once; a process killed in the middle of a workload has its runs taken
over once its lease expires, and no recorded step runs again; a pause, an event, a cron tick
reach the right run whichever process they arrive at; a process paused past its lease cannot
overwrite what the new owner wrote. Leases of 1 s keep these tests short."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cronflow_actors.http.auth import sign_request
from tests.pg.cluster_app import SIGNED_SECRET
from tests.serving import ROOT, Served, free_port

APP = str(ROOT / "tests" / "pg" / "cluster_app.py")
LEASE = "1"
http = httpx.Client(timeout=10)  # one client: a new one per call costs tens of milliseconds


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    yield
    http.close()


def serve(url: str, folder: Path, *, step_seconds: float = 0.0) -> Served:
    port = free_port()
    log = folder / f"serve-{port}.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "cronflow_actors", "serve", APP, "--db", url),
                *("--port", str(port), "--lease-seconds", LEASE),
            ],
            cwd=ROOT,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "CLUSTER_TEST_LOG": str(folder / "steps.log"),
                "CLUSTER_STEP_SECONDS": str(step_seconds),
            },
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    return Served(process, port, log)


@contextlib.contextmanager
def cluster(url: str, folder: Path, count: int, **kw: Any) -> Iterator[list[Served]]:
    processes = [serve(url, folder, **kw) for _ in range(count)]
    try:
        for served in processes:
            assert served.up(30), served.output()
        yield processes
    finally:
        for served in processes:
            if served.process.poll() is None:
                served.process.send_signal(signal.SIGCONT)
            served.stop()


def steps_run(folder: Path) -> collections.Counter[tuple[str, str]]:
    """How often each (run, step) ran, from the steps' own log."""
    log = folder / "steps.log"
    lines = log.read_text().split("\n") if log.exists() else []
    return collections.Counter(tuple(line.split()[:2]) for line in lines if line)  # type: ignore[misc]


def pids_of(folder: Path, step: str) -> set[int]:
    lines = (folder / "steps.log").read_text().split("\n")
    return {int(line.split()[2]) for line in lines if line and line.split()[1] == step}


def start(served: Served, workflow: str, payload: Any = None) -> str:
    answer = http.post(f"{served.url}/runs", json={"workflow": workflow, "payload": payload})
    assert answer.status_code == 202, answer.text
    run_id: str = answer.json()["run_id"]
    return run_id


def run_of(served: Served, run_id: str) -> dict[str, Any]:
    answer = http.get(f"{served.url}/runs/{run_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def eventually(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)


def all_completed(served: Served, run_ids: list[str]) -> bool:
    return all(run_of(served, run_id)["status"] == "completed" for run_id in run_ids)


@pytest.fixture(scope="module")
def three(
    postgres_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[Served], Path]]:
    """Three serve processes on one database, for the tests that only send them work."""
    folder = tmp_path_factory.mktemp("three")
    with cluster(postgres_server.create_database(), folder, 3) as processes:
        yield processes, folder


def test_runs_submitted_to_three_processes_complete_once(
    three: tuple[list[Served], Path],
) -> None:
    processes, folder = three
    run_ids = [start(processes[n % 3], "three", {"n": n}) for n in range(60)]
    eventually(lambda: all_completed(processes[0], run_ids), 30, "every run completed")
    ran = steps_run(folder)
    assert all(ran[run_id, step] == 1 for run_id in run_ids for step in "abc")
    # each process ran the runs it was sent: new runs spread over the processes
    assert pids_of(folder, "a") == {p.process.pid for p in processes}


def test_a_paused_run_is_resumed_through_another_process(
    three: tuple[list[Served], Path],
) -> None:
    (first, second, third), _folder = three
    run_id = start(first, "hold")
    paused: list[dict[str, Any]] = []

    def found() -> bool:
        paused[:] = [p for p in http.get(f"{first.url}/paused").json()["paused"]]
        return any(p["run_id"] == run_id for p in paused)

    eventually(found, 10, "the run paused")
    [token] = [p["token"] for p in paused if p["run_id"] == run_id]
    answer = http.post(f"{second.url}/resume/{token}", json={"approved": True})
    assert answer.status_code == 200, answer.text
    eventually(lambda: run_of(third, run_id)["status"] == "completed", 10, "the run completed")


def test_an_event_published_on_one_process_wakes_a_run_waiting_on_another(
    three: tuple[list[Served], Path],
) -> None:
    (first, second, _third), folder = three
    run_id = start(first, "waiter", {"key": "k1"})
    eventually(lambda: run_of(first, run_id)["status"] == "waiting", 10, "the run waits")
    answer = http.post(f"{second.url}/events/go", json={"key": "k1"})
    assert answer.status_code == 202, answer.text
    eventually(lambda: run_of(first, run_id)["status"] == "completed", 10, "the run was woken")
    assert steps_run(folder)[run_id, "woken"] == 1


def test_a_cron_schedule_fires_once_per_tick_with_three_processes(
    three: tuple[list[Served], Path],
) -> None:
    processes, folder = three
    time.sleep(3.5)  # every process plans the every-second schedule all along

    def ticks() -> list[dict[str, Any]]:
        answer = http.get(f"{processes[0].url}/runs", params={"workflow": "ticker", "limit": 200})
        runs: list[dict[str, Any]] = answer.json()["runs"]
        return runs

    runs = ticks()
    assert len(runs) >= 3
    scheduled = [run_of(processes[1], run["id"])["payload"]["scheduled_at"] for run in runs]
    assert len(set(scheduled)) == len(scheduled)  # one run per tick
    eventually(lambda: all_completed(processes[2], [r["id"] for r in runs]), 10, "ticks ran")
    ran = steps_run(folder)
    assert all(ran[run["id"], "tick"] == 1 for run in runs)


def test_a_killed_process_s_runs_are_taken_over_and_no_recorded_step_runs_again(
    postgres_url: str, tmp_path: Path
) -> None:
    with cluster(postgres_url, tmp_path, 2, step_seconds=0.2) as (doomed, survivor):
        run_ids = [start(doomed if n % 2 else survivor, "three", {"n": n}) for n in range(40)]
        time.sleep(0.5)  # in the middle of the workload: some steps recorded, some running
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait(10)
        killed_at = time.monotonic()
        eventually(lambda: all_completed(survivor, run_ids), 30, "every accepted run completed")
        took = time.monotonic() - killed_at
    ran = steps_run(tmp_path)
    assert all(ran[run_id, step] >= 1 for run_id in run_ids for step in "abc")
    again = [key for key, times in ran.items() if times > 1]
    # Only a step that was running when the process died (not yet recorded) runs again: at
    # most one step per run the killed process held.
    assert len(again) <= 20
    assert all(times == 2 for times in ran.values() if times > 1)
    assert survivor.process.pid in pids_of(tmp_path, "c")
    assert took < 20


def test_a_cancel_sent_as_the_holder_dies_comes_before_its_cut_step_runs_again(
    postgres_url: str, tmp_path: Path
) -> None:
    """A cancel sent to another process while the run's holder had just died waited for the
    take-over, which ran the cut step again first: the caller heard "canceled" and the step
    began again (chaos h34 F1; review h34 F2: half the time). The cancel comes first now,
    whichever of the take-over and the waiting call loads the run."""
    with cluster(postgres_url, tmp_path, 2) as (doomed, survivor):
        run_ids = [start(doomed, "slow") for _ in range(3)]
        eventually(
            lambda: all(steps_run(tmp_path)[run_id, "long"] == 1 for run_id in run_ids),
            10,
            "the steps started",
        )
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait(10)
        answers: dict[str, httpx.Response] = {}

        def cancel(run_id: str) -> None:
            answers[run_id] = httpx.post(f"{survivor.url}/runs/{run_id}/cancel", timeout=30)

        threads = [threading.Thread(target=cancel, args=(run_id,)) for run_id in run_ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert [answers[r].status_code for r in run_ids] == [200] * 3, answers
        time.sleep(1)  # a step begun again would have logged by now
        assert [steps_run(tmp_path)[run_id, "long"] for run_id in run_ids] == [1, 1, 1]
        assert [run_of(survivor, run_id)["status"] for run_id in run_ids] == ["canceled"] * 3


def test_a_process_paused_past_its_lease_cannot_overwrite_the_new_owner(
    postgres_url: str, tmp_path: Path
) -> None:
    with cluster(postgres_url, tmp_path, 2) as (paused, other):
        run_id = start(paused, "slow")
        eventually(lambda: steps_run(tmp_path)[run_id, "long"] == 1, 10, "the step started")
        paused.process.send_signal(signal.SIGSTOP)
        # its lease expires; the other process takes the run over and runs the step again
        eventually(lambda: run_of(other, run_id)["status"] == "completed", 20, "taken over")
        taken_over = run_of(other, run_id)
        assert taken_over["output"]["pid"] == other.process.pid
        paused.process.send_signal(signal.SIGCONT)
        # it wakes, its step ends, and its write is refused; it finds its lease gone and stops
        assert paused.process.wait(20) == 1
        # it says what a process of several does next: not "stop the other runtime"
        assert "the other processes take over the runs it held" in paused.output()
        assert "once the other runtime has stopped" not in paused.output()
        after = run_of(other, run_id)
        assert after["output"] == taken_over["output"]
        assert after["status"] == "completed"


def test_signed_twins_with_a_key_sent_to_two_processes_get_one_run_and_its_duplicate(
    three: tuple[list[Served], Path],
) -> None:
    """The same signed request with an idempotency key, sent to two processes at once: one
    202 and the other the duplicate answer of its run, where about a quarter of the pairs got
    a 401 'replay, send an idempotency key' (the PostgreSQL crash tester's F6)."""
    (first, second, _third), folder = three
    statuses: list[tuple[int, int]] = []
    for n in range(20):
        body = json.dumps({"n": n}).encode()
        moment = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": f"twin-{n}-{moment}",
            "X-Signature-256": sign_request(
                SIGNED_SECRET, "POST", "/hooks/signed", body, at=moment
            ),
        }
        answers: list[int] = []
        twins = [
            threading.Thread(target=send_signed, args=(served, body, headers, answers))
            for served in (first, second)
        ]
        for thread in twins:
            thread.start()
        for thread in twins:
            thread.join()
        statuses.append(tuple(sorted(answers)))  # type: ignore[arg-type]
    assert statuses == [(200, 202)] * 20
    taken = steps_run(folder)
    eventually(
        lambda: sum(n for (_run, step), n in steps_run(folder).items() if step == "take") == 20,
        10,
        "one run per pair, its step run once",
    )
    assert all(n == 1 for (_run, step), n in taken.items() if step == "take")


def send_signed(served: Served, body: bytes, headers: dict[str, str], answers: list[int]) -> None:
    url = f"{served.url}/hooks/signed"
    answers.append(httpx.post(url, content=body, headers=headers, timeout=10).status_code)
