"""The benchmark suite without the peers: its records, summary line, Markdown table and the way
a missing or failing peer is reported (never as a number), and a tiny run of our workloads."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.suite import ours, plan, report, runner
from benchmarks.suite.progress import Progress
from benchmarks.suite.record import FIELDS, MARKER, parse, record
from cronflow_actors.errors import ConfigurationError

REPO = Path(__file__).resolve().parents[2]


def ok(engine: str, workload: str, rate: float, **extra: Any) -> dict[str, Any]:
    in_flight = extra.pop("in_flight", 1 if workload == "e" else 500)
    return record(
        engine,
        workload,
        runs=100,
        in_flight=in_flight,
        elapsed_s=100 / rate,
        latencies_s=[0.001 * (i + 1) for i in range(100)],
        **extra,
    )


def test_a_record_has_every_field_and_its_figures() -> None:
    rec = ok("cronflow-actors", "a", 2000.0)
    assert tuple(rec) == FIELDS
    assert rec["runs_per_s"] == 2000.0
    assert rec["p50_ms"] == 51.0
    assert rec["p99_ms"] == 100.0
    assert json.loads(json.dumps(rec)) == rec


def test_a_record_that_is_not_ok_carries_no_figures() -> None:
    rec = record("dbos-wal", "a", runs=10, elapsed_s=1.0, latencies_s=[0.1], status="failed")
    assert (rec["runs_per_s"], rec["p50_ms"], rec["p99_ms"]) == (None, None, None)
    with pytest.raises(ValueError, match="status"):
        record("x", "a", status="great")


def test_records_are_found_among_other_output() -> None:
    rec = ok("restate", "e", 40.0)
    output = f"INFO something\n{MARKER}{json.dumps(rec)}\n{{'not': 'a record'}}\n"
    assert parse(output) == [rec]


def full_results() -> list[dict[str, Any]]:
    return [
        ok("cronflow-actors", "a", 1800.0, in_flight=100),
        ok("cronflow-actors", "a", 2000.0, in_flight=500),
        ok("cronflow-actors", "a", 1500.0, in_flight=2000),
        ok("cronflow-actors", "a", 2100.0, in_flight=500, max_active_runs=128),
        ok("cronflow-actors", "a", 1900.0, in_flight=2000, max_active_runs=128),
        ok("cronflow-actors", "a", 1700.0, db_runs=10_000),
        ok("cronflow-actors", "e", 400.0),
        ok("cronflow-actors", "f", 1500.0, bytes_per_waiting_run=1234),
        ok("dbos-wal", "a", 80.0),
        ok("dbos-wal", "e", 200.0),
        ok("dbos-default", "a", 25.0),
        ok("dbos-default", "e", 50.0),
        ok("spiff-grouped", "a", 700.0),
    ]


def test_the_summary_line_has_the_issues_keys_and_the_peers_best_figures() -> None:
    summary = report.summary(full_results())
    assert tuple(summary) == report.SUMMARY_KEYS
    # a at 500 in flight on an empty file, without a limit on runs in memory (the default)
    assert summary["runs_per_s_3step"] == 2000.0
    assert summary["dbos_wal_runs_per_s_3step"] == 200.0  # the better of a and e
    assert summary["dbos_default_runs_per_s_3step"] == 50.0
    assert summary["spiff_grouped_runs_per_s_3step"] == 700.0
    assert summary["ratio_vs_dbos_wal"] == 10.0
    assert summary["ratio_vs_dbos_default"] == 40.0
    assert summary["p50_ms_seq"] == 51.0
    assert summary["p99_ms_seq"] == 100.0
    assert summary["bytes_per_waiting_run"] == 1234


def test_a_missing_or_failed_peer_is_null_in_the_summary_and_named_in_the_table() -> None:
    results = [r for r in full_results() if not r["engine"].startswith(("dbos", "spiff"))]
    results.append(record("dbos-wal", "a", runs=100, status="missing", note="dbos not installed"))
    results.append(record("dbos-default", "e", runs=100, status="failed", note="exit 1: boom"))
    summary = report.summary(results)
    for key in ("dbos_wal_runs_per_s_3step", "dbos_default_runs_per_s_3step", "ratio_vs_dbos_wal"):
        assert summary[key] is None
    table = report.markdown(results, summary, report.machine(), quick=True, elapsed_s=1.0)
    assert "| dbos-wal | (a) three trivial async steps |" in table
    assert "**missing**: dbos not installed" in table
    assert "**failed**: exit 1: boom" in table
    row = next(line for line in table.splitlines() if "**failed**" in line)
    assert "| — | — | — |" in row
    # a peer not installed ran nothing: no in-flight or run count as if it had (newcomer h27)
    row = next(line for line in table.splitlines() if "**missing**" in line)
    assert row.startswith("| dbos-wal | (a) three trivial async steps |  | — | — | — |"), row


def test_the_markdown_table_shows_every_record_and_both_curves() -> None:
    results = full_results()
    table = report.markdown(
        results, report.summary(results), report.machine(), quick=False, elapsed_s=3.0
    )
    header = (
        "| engine | workload | variant | in flight | runs | runs/s | p50 ms | p99 ms | status |"
    )
    assert header in table
    rows = [line for line in table.splitlines() if line.startswith("| cronflow-actors")]
    rows += [line for line in table.splitlines() if line.startswith(("| dbos", "| spiff"))]
    assert len(rows) == len(results)
    assert "## (a) against runs in flight" in table
    # each in-flight level without a limit and with one, as shares of the best of all (2,100)
    assert "| in flight | runs/s | of best | max_active_runs 128 | of best |" in table
    assert "| 100 | 1,800 | 86% | — | — |" in table
    assert "| 2,000 | 1,500 | 71% | 1,900 | 90% |" in table
    assert "## (a) against runs already in the file" in table
    assert "| 10,000 | 1,700 |" in table
    assert json.dumps(report.summary(results)) in table


def test_a_point_measured_in_rounds_is_their_mean_everywhere_the_curve_is_used() -> None:
    results = [r for r in full_results() if r["extra"].get("max_active_runs") is None]
    # a second round of the curve: 500 in flight was 2,000 runs/s, then 2,400 (the mean 2,200)
    results.insert(3, ok("cronflow-actors", "a", 2400.0, in_flight=500))
    results.insert(4, ok("cronflow-actors", "a", 1700.0, in_flight=2000))
    results.insert(5, ok("cronflow-actors", "a", 2000.0, in_flight=100))
    curve = report.in_flight_curve(results)
    assert [(r["in_flight"], r["runs_per_s"]) for r in curve] == [
        (100, 1900.0),
        (500, 2200.0),
        (2000, 1600.0),
    ]
    assert curve[1]["extra"]["rounds"] == [2000.0, 2400.0]
    summary = report.summary(results)
    assert summary["runs_per_s_3step"] == 2200.0  # the headline is the mean too
    assert summary["ratio_vs_dbos_wal"] == 11.0
    assert report.db_size_curve(results)[0] == (0, 2200.0)
    table = report.markdown(results, summary, report.machine(), quick=False, elapsed_s=3.0)
    rows = [line for line in table.splitlines() if line.startswith("| cronflow-actors")]
    # every round's own record is still a row of the table
    assert len(rows) == sum(r["engine"] == "cronflow-actors" for r in results)
    assert "| 500 | 2,200 | 100% |" in table
    assert "| 2,000 | 1,600 | 73% |" in table
    assert "- 500 in flight: 2,000 / 2,400" in table


def test_the_full_plan_measures_the_curves_twice_forwards_then_backwards() -> None:
    jobs = plan.our_jobs(quick=False)
    curve = [j for j in jobs if j.expects == ("a",) and "--db-runs" not in j.argv]
    points = [(j.in_flight, "--max-active-runs" in j.argv) for j in curve]
    first = [(100, False), (500, False), (2000, False), (500, True), (2000, True)]
    assert points == first + first[::-1]
    assert all("round 1" in j.title for j in curve[:5])
    assert all("round 2" in j.title for j in curve[5:])
    quick = [j for j in plan.our_jobs(quick=True) if j.expects == ("a",)]
    assert not any("round" in j.title for j in quick)


def test_a_peer_whose_module_is_missing_is_reported_missing() -> None:
    absent = runner.installed(sys.executable, ["dbos", "prefect"])
    for peer in ("dbos", "prefect"):
        module = plan.PEER_MODULES[peer][0]
        if absent[peer] is not None:
            assert module in absent[peer]
    broken = runner.installed("/no/such/python", ["spiff"])
    assert "does not run" in (broken["spiff"] or "")


def test_a_job_that_fails_or_prints_nothing_gives_failed_records() -> None:
    job = plan.Job(
        engine="dbos-wal",
        title="a peer that crashes",
        argv=("-c", "import sys; print('starting'); sys.exit('boom')"),
        expects=("a", "e"),
        peer="dbos",
        runs=10,
    )
    found = runner.run_job(job, sys.executable)
    assert [(r["workload"], r["status"]) for r in found] == [("a", "failed"), ("e", "failed")]
    assert all("boom" in r["note"] and r["runs_per_s"] is None for r in found)
    half = plan.Job(
        engine="restate",
        title="a peer that reports only a",
        argv=("-c", f"print({MARKER!r} + {json.dumps(json.dumps(ok('restate', 'a', 50.0)))})"),
        expects=("a", "e"),
        peer="restate",
    )
    found = runner.run_job(half, sys.executable)
    assert [(r["workload"], r["status"]) for r in found] == [("a", "ok"), ("e", "failed")]
    slow = plan.Job(
        engine="prefect",
        title="a peer that hangs",
        argv=("-c", "import time; time.sleep(30)"),
        expects=("a",),
        peer="prefect",
        timeout_s=0.5,
    )
    (timed_out,) = runner.run_job(slow, sys.executable)
    assert timed_out["status"] == "failed"
    assert "timed out" in timed_out["note"]


def test_the_quick_plan_runs_every_workload_and_the_curves() -> None:
    jobs = plan.our_jobs(quick=True)
    assert {w for job in jobs for w in job.expects} == set("abcdefg")
    curve = [j for j in jobs if j.expects == ("a",) and "--db-runs" not in j.argv]
    assert sorted(j.in_flight for j in curve if "--max-active-runs" not in j.argv) == [
        100,
        500,
        2000,
    ]
    limited = [j for j in curve if "--max-active-runs" in j.argv]
    assert sorted(j.in_flight for j in limited) == [500, 2000]
    assert all(j.argv[-1] == str(plan.ADMISSION) for j in limited)
    assert any("--db-runs" in job.argv for job in jobs)
    peers = plan.peer_jobs(quick=True)
    assert {job.engine for job in peers} == {
        "dbos-wal",
        "dbos-default",
        "spiff-sequential",
        "spiff-grouped",
        "restate",
        "prefect",
    }


def test_the_progress_bar_prints_a_line_per_job_off_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(2, stream=stream)
    progress.start("one")
    progress.finish("one", "ok")
    progress.finish("two", "missing")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[############------------] 1/2")
    assert lines[1].endswith("two: missing")


def test_a_tiny_run_of_our_workloads_without_peers(tmp_path: Path) -> None:
    """The whole command, as a user runs it, on a few runs of each of our workloads."""
    out = tmp_path / "results"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cronflow_actors",
            "bench",
            "--quick",
            "--scale",
            "0.004",
            "--peers",
            "",
            "--no-chart",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,  # seconds on an idle machine; a loaded CI may be ten times slower
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert tuple(summary) == report.SUMMARY_KEYS
    assert summary["dbos_wal_runs_per_s_3step"] is None  # no peers asked for
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["workload"] for r in records} == set("abcdefg")
    # the records name the build that ran: this tree's pure package (or, where the tests run
    # against the compiled engine, build/compiled/tree, "cronflow-actors compiled", which is
    # never the summary's headline)
    assert {r["engine"] for r in records} == {ours.ENGINE}
    if ours.ENGINE == report.OURS:
        assert summary["runs_per_s_3step"] > 0
        assert summary["p50_ms_seq"] > 0
    assert all(r["status"] == "ok" for r in records), [r["note"] for r in records]
    assert (out / "results.md").read_text().startswith("# cronflow-actors bench --quick")
    assert "12/12" in done.stderr  # the progress bar reached the end


def test_the_compiled_jobs_run_in_the_compiled_tree_under_their_own_engine_name(
    tmp_path: Path,
) -> None:
    jobs = plan.compiled_jobs(tmp_path, quick=True)
    assert [(j.in_flight, "--max-active-runs" in j.argv) for j in jobs] == [
        (500, False),
        (500, True),
        (2000, True),
    ]
    assert {j.cwd for j in jobs} == {tmp_path}
    assert {j.engine for j in jobs} == {plan.COMPILED}
    # its records are not ours' headline nor our curve: they are another build
    results = [*full_results(), ok(plan.COMPILED, "a", 9000.0, max_active_runs=128)]
    assert report.summary(results)["runs_per_s_3step"] == 2000.0
    table = report.markdown(
        results, report.summary(results), report.machine(), quick=True, elapsed_s=1.0
    )
    assert "| cronflow-actors compiled | (a) three trivial async steps |" in table
    assert "| 2,000 | 1,500 | 71% | 1,900 | 90% |" in table


def test_the_calls_yardstick_counts_the_work_of_a_run() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.calls", "a", "--runs", "200", "--in-flight", "20"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    counted = dict(line.split() for line in result.stdout.splitlines()[1:])
    assert set(counted) == {
        "python_calls_per_run",
        "call_soon_per_run",
        "create_task_per_run",
        "create_future_per_run",
        "group_commits_per_run",
    }
    # a three-step run: a few hundred calls at least, a handful of tasks, at most 4 commits
    assert float(counted["python_calls_per_run"]) > 300
    assert float(counted["create_task_per_run"]) >= 3
    assert 0 < float(counted["group_commits_per_run"]) <= 4


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (("--scale", "-1"), "setting '--scale' has the value -1.0"),
        (("--scale", "nan"), "setting '--scale' has the value nan"),
        (("--in-flight", "0"), "setting '--in-flight' has the value 0"),
        (("--out", "/proc/no-such-folder"), "expected a folder this user can write"),
    ],
)
def test_bench_refuses_what_would_measure_nothing_before_it_runs(
    tmp_path: Path, given: tuple[str, ...], said: str
) -> None:
    """A scale <= 0 recorded figures of nothing, in-flight 0 failed workloads, and a folder that
    cannot be written failed with a traceback after the runs: each is refused first."""
    args = ["bench", "--quick", "--peers", "", "--no-chart", "--out", str(tmp_path / "r")]
    done = subprocess.run(
        [sys.executable, "-m", "cronflow_actors", *args, *given],
        capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert said in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_the_runner_run_directly_refuses_the_same_arguments(tmp_path: Path) -> None:
    """``python -m benchmarks.suite.runner`` takes bench's options: it refuses what bench
    refuses, before anything runs (it ran a suite of nothing at --scale 0)."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.suite.runner", "--quick", "--peers", "",
         "--out", str(tmp_path / "r"), "--scale", "0"],
        capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "setting '--scale' has the value 0.0" in done.stderr
    assert not (tmp_path / "r").exists()


def test_bench_from_an_install_without_the_checkout_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Installed without -e, bench said "setting 'bench' has the value <site-packages>", as if
    the user had mis-set something (newcomer h44 F5)."""
    from cronflow_actors.cli import bench

    monkeypatch.setattr(bench, "_CHECKOUT", tmp_path)
    with pytest.raises(ConfigurationError) as refused:
        bench._suite()
    assert str(refused.value) == (
        "cronflow-actors bench runs the suite in a source checkout's benchmarks/suite, and this "
        f"one is installed from {tmp_path}, which has none: install the checkout with pip "
        "install -e '.[bench]' and run it from there"
    )
