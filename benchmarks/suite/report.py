"""The suite's figures as the issue's summary line and a Markdown report. Standard library only.

The summary's peer figures are each peer's best three-step throughput in this run: the larger
of its bounded-in-flight figure (a) and its one-at-a-time figure (e), so the ratios never
flatter cronflow-actors by picking a peer's slower form.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
from typing import Any

from benchmarks.suite.plan import WORKLOADS

SUMMARY_KEYS = (
    "runs_per_s_3step",
    "dbos_wal_runs_per_s_3step",
    "dbos_default_runs_per_s_3step",
    "spiff_grouped_runs_per_s_3step",
    "ratio_vs_dbos_wal",
    "ratio_vs_dbos_default",
    "p50_ms_seq",
    "p99_ms_seq",
    "bytes_per_waiting_run",
)
OURS = "cronflow-actors"


def _ok(results: list[dict[str, Any]], engine: str, workload: str) -> list[dict[str, Any]]:
    return [
        r
        for r in results
        if r["engine"] == engine and r["workload"] == workload and r["status"] == "ok"
    ]


def in_flight_curve(results: list[dict[str, Any]], limited: bool = False) -> list[dict[str, Any]]:
    """Ours, workload a, on an empty file, by runs in flight: without ``max_active_runs`` (the
    default), or with it (``limited``). A point measured in several rounds (``plan.CURVE_ROUNDS``)
    is one record: the first round's, with the mean of the rounds' runs/s and latencies, and
    each round's runs/s in ``extra["rounds"]``."""
    points: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for r in _ok(results, OURS, "a"):
        if not r["extra"].get("db_runs") and bool(r["extra"].get("max_active_runs")) == limited:
            key = (r["in_flight"], r["extra"].get("max_active_runs") or 0)
            points.setdefault(key, []).append(r)
    return [_mean_of_rounds(points[key]) for key in sorted(points)]


def _mean_of_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    if len(rounds) == 1:
        return rounds[0]

    def mean(key: str, digits: int) -> float | None:
        values = [r[key] for r in rounds if r[key] is not None]
        return round(statistics.fmean(values), digits) if values else None

    first = rounds[0]
    return first | {
        "runs_per_s": mean("runs_per_s", 1),
        "p50_ms": mean("p50_ms", 3),
        "p99_ms": mean("p99_ms", 3),
        "extra": first["extra"] | {"rounds": [r["runs_per_s"] for r in rounds]},
    }


def _headline(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Ours, workload a, on an empty file, without a limit on runs in memory (the default), at
    the default in-flight bound (else the largest)."""
    plain = in_flight_curve(results)
    if not plain:
        return None
    at_500 = [r for r in plain if r["in_flight"] == 500]
    return (at_500 or sorted(plain, key=lambda r: r["in_flight"]))[-1]


def best_three_step(results: list[dict[str, Any]], engine: str) -> float | None:
    figures = [
        r["runs_per_s"] for w in ("a", "e") for r in _ok(results, engine, w) if r["runs_per_s"]
    ]
    return max(figures) if figures else None


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's JSON line; a figure that was not measured (peer missing or failed) is null."""
    head = _headline(results)
    ours = head["runs_per_s"] if head else None
    seq = _ok(results, OURS, "e")
    waiting = _ok(results, OURS, "f")
    wal = best_three_step(results, "dbos-wal")
    default = best_three_step(results, "dbos-default")
    grouped = _ok(results, "spiff-grouped", "a")

    def ratio(peer: float | None) -> float | None:
        return round(ours / peer, 1) if ours and peer else None

    return {
        "runs_per_s_3step": ours,
        "dbos_wal_runs_per_s_3step": wal,
        "dbos_default_runs_per_s_3step": default,
        "spiff_grouped_runs_per_s_3step": grouped[0]["runs_per_s"] if grouped else None,
        "ratio_vs_dbos_wal": ratio(wal),
        "ratio_vs_dbos_default": ratio(default),
        "p50_ms_seq": seq[0]["p50_ms"] if seq else None,
        "p99_ms_seq": seq[0]["p99_ms"] if seq else None,
        "bytes_per_waiting_run": waiting[0]["extra"]["bytes_per_waiting_run"] if waiting else None,
    }


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            names = [
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as info:
            memory_gib = int(info.readline().split()[1]) / 1024 / 1024
    except (OSError, ValueError, IndexError):
        memory_gib = 0.0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "system": f"{platform.system()} {platform.release()}",
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _num(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _status(rec: dict[str, Any]) -> str:
    if rec["status"] == "ok":
        return rec["note"] or "ok"
    return f"**{rec['status']}**: {rec['note']}"


def markdown(
    results: list[dict[str, Any]],
    summary_line: dict[str, Any],
    machine_info: dict[str, Any],
    *,
    quick: bool,
    elapsed_s: float,
) -> str:
    lines = [
        f"# cronflow-actors bench{' --quick' if quick else ''}",
        "",
        f"{machine_info['cpu']}, {machine_info['cores']} cores, {machine_info['memory_gib']} GiB; "
        f"{machine_info['system']}; Python {machine_info['python']}, SQLite "
        f"{machine_info['sqlite']}; load average at the end {machine_info['load_average']}; "
        f"suite took {elapsed_s:.0f} s. Every engine on SQLite with synchronous=FULL.",
        "",
        "| engine | workload | variant | in flight | runs | runs/s | p50 ms | p99 ms | status |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        ran = r["status"] != "missing"  # (a peer not installed ran nothing: no sizes to show)
        sizes = f"{r['in_flight']} | {r['runs']:,}" if ran else "— | —"
        lines.append(
            f"| {r['engine']} | ({r['workload']}) {WORKLOADS.get(r['workload'], '')} | "
            f"{r['variant']} | {sizes} | {_num(r['runs_per_s'])} | "
            f"{_num(r['p50_ms'], 2)} | {_num(r['p99_ms'], 2)} | {_status(r)} |"
        )
    lines += _in_flight_table(results)
    sizes = db_size_curve(results)
    if sizes:
        lines += [
            "",
            "## (a) against runs already in the file",
            "",
            "| runs in the file | runs/s |",
        ]
        lines += ["|---:|---:|"]
        lines += [f"| {size:,} | {_num(rate)} |" for size, rate in sizes]
    extras = [r for r in results if r["engine"] == OURS and r["workload"] in ("f", "g")]
    if extras:
        lines += ["", "## (f) and (g)", ""]
        for r in extras:
            shown = ", ".join(f"{k}={v}" for k, v in r["extra"].items() if k != "job_s")
            lines.append(f"- ({r['workload']}) {WORKLOADS[r['workload']]}: {shown}")
    lines += ["", "## Summary", "", "```json", _json(summary_line), "```", ""]
    return "\n".join(lines)


def _in_flight_table(results: list[dict[str, Any]]) -> list[str]:
    """(a) against runs in flight, without a limit on runs in memory and with each limit
    measured, every figure also as a share of the best of all."""
    plain, limited = in_flight_curve(results), in_flight_curve(results, limited=True)
    if not plain and not limited:
        return []
    best = max(r["runs_per_s"] for r in plain + limited)
    limits = sorted({r["extra"]["max_active_runs"] for r in limited})
    by_limit = {None: plain} | {
        limit: [r for r in limited if r["extra"]["max_active_runs"] == limit] for limit in limits
    }
    header = "| in flight | runs/s | of best |"
    header += "".join(f" max_active_runs {limit} | of best |" for limit in limits)
    lines = ["", "## (a) against runs in flight", "", header, "|---:" * (3 + 2 * len(limits)) + "|"]
    for level in sorted({r["in_flight"] for r in plain + limited}):
        row = f"| {level:,} |"
        for curve in by_limit.values():
            rates = [r["runs_per_s"] for r in curve if r["in_flight"] == level]
            row += f" {_num(rates[0])} | {rates[0] / best:.0%} |" if rates else " — | — |"
        lines.append(row)
    measured = [r for r in plain + limited if "rounds" in r["extra"]]
    if measured:
        lines += [
            "",
            "Each figure is the mean of its rounds, run forwards then backwards so that a steady "
            "drift of the machine's speed weighs alike on every point; the rounds' runs/s:",
            "",
        ]
        for r in measured:
            limit = r["extra"].get("max_active_runs")
            where = f"{r['in_flight']:,} in flight"
            where += f", max_active_runs {limit}" if limit else ""
            lines.append(f"- {where}: {' / '.join(_num(x) for x in r['extra']['rounds'])}")
    return lines


def db_size_curve(results: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(runs in the file, runs/s) for ours, workload a, starting from the empty file."""
    points = []
    head = _headline(results)
    if head:
        points.append((0, head["runs_per_s"]))
    for r in _ok(results, OURS, "a"):
        if r["extra"].get("db_runs"):
            points.append((r["extra"]["db_runs"], r["runs_per_s"]))
    return sorted(points)


def _json(values: dict[str, Any]) -> str:
    import json

    return json.dumps(values)
