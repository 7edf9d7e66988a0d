"""The suite's PNG: three-step throughput and sequential latency per engine, and ours against
runs in flight and against runs already in the file. Needs matplotlib (the ``bench`` extra);
when the suite's interpreter lacks it, the peers' interpreter draws it:

    python benchmarks/suite/chart.py results.jsonl chart.png
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.suite import report


def draw(results_file: Path, png: Path, fallback_python: str | None = None) -> str:
    """Draw ``png`` from ``results_file``; returns a sentence saying what happened."""
    if importlib.util.find_spec("matplotlib") is not None:
        _draw(_load(results_file), png)
        return f"chart: {png}"
    if fallback_python and fallback_python != sys.executable:
        done = subprocess.run(
            [fallback_python, __file__, str(results_file), str(png)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode == 0:
            return f"chart: {png} (drawn by {fallback_python})"
    return "chart skipped: matplotlib is not installed (pip install '.[bench]')"


def _load(results_file: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in results_file.read_text().splitlines() if line.strip()]


def _draw(results: list[dict[str, Any]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engines = sorted({r["engine"] for r in results}, key=lambda e: (e != report.OURS, e))
    figure, axes = plt.subplots(2, 2, figsize=(13, 9))
    throughput, latency, in_flight, sizes = axes.flat

    names, rates = [], []
    for engine in engines:
        best = (
            report.summary(results)["runs_per_s_3step"]
            if engine == report.OURS
            else report.best_three_step(results, engine)
        )
        names.append(engine)
        rates.append(best or 0.0)
    bars = throughput.barh(
        names, rates, color=["tab:green" if n == report.OURS else "tab:gray" for n in names]
    )
    for bar, rate, name in zip(bars, rates, names, strict=True):
        label = f"{rate:,.0f}" if rate else _why(results, name)
        throughput.text(
            bar.get_width(),
            bar.get_y() + bar.get_height() / 2,
            f" {label}",
            va="center",
            fontsize=8,
        )
    throughput.set_xscale("symlog")
    throughput.invert_yaxis()
    throughput.set_title("(a) three steps: runs/s, best of bounded in-flight and one at a time")

    seq = [(e, r) for e in engines for r in results if r["engine"] == e and r["workload"] == "e"]
    labels = [e for e, _ in seq]
    p50 = [r["p50_ms"] or 0.0 for _, r in seq]
    p99 = [r["p99_ms"] or 0.0 for _, r in seq]
    positions = range(len(labels))
    latency.barh([p - 0.2 for p in positions], p50, height=0.4, label="p50")
    latency.barh([p + 0.2 for p in positions], p99, height=0.4, label="p99")
    for position, fast, slow in zip(positions, p50, p99, strict=True):
        latency.text(slow, position, f" {fast:,.1f} / {slow:,.1f}", va="center", fontsize=8)
    latency.set_xscale("log")  # Prefect's two seconds hid every other engine's milliseconds
    latency.set_yticks(list(positions), labels)
    latency.invert_yaxis()
    latency.set_xlabel("ms per run (p50 / p99, log scale)")
    latency.legend()
    latency.set_title("(e) three steps, one run at a time: latency")

    curve = report.in_flight_curve(results)
    in_flight.plot(
        [r["in_flight"] for r in curve],
        [r["runs_per_s"] for r in curve],
        "o-",
        color="tab:green",
        label="no limit (default)",
    )
    limited = report.in_flight_curve(results, limited=True)
    if limited:
        limit = limited[0]["extra"]["max_active_runs"]
        in_flight.plot(
            [r["in_flight"] for r in limited],
            [r["runs_per_s"] for r in limited],
            "s--",
            color="tab:blue",
            label=f"max_active_runs={limit}",
        )
    in_flight.legend()
    in_flight.set_xscale("log")
    in_flight.set_xlabel("runs in flight")
    in_flight.set_ylabel("runs/s")
    in_flight.set_ylim(bottom=0)
    in_flight.set_title("cronflow-actors (a) against runs in flight")

    points = report.db_size_curve(results)
    sizes.plot([p[0] for p in points], [p[1] for p in points], "o-", color="tab:green")
    sizes.set_xlabel("finished runs already in the file")
    sizes.set_ylabel("runs/s")
    sizes.set_ylim(bottom=0)
    sizes.set_title("cronflow-actors (a) against database size")

    figure.suptitle("cronflow-actors bench: SQLite synchronous=FULL")
    figure.tight_layout()
    figure.savefig(png, dpi=100)
    plt.close(figure)


def _why(results: list[dict[str, Any]], engine: str) -> str:
    states = sorted({r["status"] for r in results if r["engine"] == engine and r["status"] != "ok"})
    return ", ".join(states) or "—"


if __name__ == "__main__":
    _draw(_load(Path(sys.argv[1])), Path(sys.argv[2]))
