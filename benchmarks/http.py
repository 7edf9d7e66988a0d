"""Webhook-triggered runs per second over loopback, against a real ``cronflow-actors serve``.

``--clients`` threads, each with a keep-alive connection, post to the webhook as fast as they
can (each waits for its 202);
every accepted run is one durable instance start on SQLite (synchronous=FULL). Latency is the
webhook round trip (the 202 means the run is durable); runs/s counts accepted runs, and the
benchmark then checks that every accepted run completed.

    python benchmarks/http.py [--quick] [--requests N] [--clients K]

The last line is JSON: {"webhook_runs_per_s": ..., "p50_ms": ..., "p99_ms": ...}.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Benchmarks run as scripts; their folder holds http.py, which would shadow the standard library's
# http package, so the folder leaves sys.path and the repository root (for ``benchmarks.*``) joins.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

from benchmarks._report import figures, table

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def drive(port: int, requests: int, clients: int) -> dict[str, float]:
    """``clients`` threads, each with one keep-alive connection, post until ``requests`` ran."""
    latencies: list[float] = []
    run_ids: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"content-type": "application/json"}
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                break
            began = time.perf_counter()
            connection.request("POST", "/hooks/bench", body=json.dumps({"n": n}), headers=headers)
            response = connection.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - began
            assert response.status == 202, body
            with lock:
                latencies.append(elapsed)
                run_ids.append(json.loads(body)["run_id"])
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    completed = 0
    for run_id in run_ids[-50:]:  # the last ones accepted finish last
        for _ in range(400):
            run = json.loads(
                urllib.request.urlopen(f"http://127.0.0.1:{port}/runs/{run_id}").read()
            )
            if run["status"] == "completed":
                completed += 1
                break
            time.sleep(0.05)
    latencies.sort()
    return {
        "webhook_runs_per_s": requests / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "checked": completed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds")
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    requests = args.requests or (2_000 if args.quick else 10_000)
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "cronflow_actors", "serve", "benchmarks/http_app.py"]
        command += ["--db", str(Path(folder) / "http.db"), "--port", str(port)]
        command += ["--log-level", "warning"]
        server = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            for _ in range(400):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz").read()
                    break
                except OSError:
                    time.sleep(0.025)
            result = drive(port, requests, args.clients)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    table(
        f"webhooks: {requests} POSTs from {args.clients} clients over loopback, "
        "serve on SQLite synchronous=FULL",
        [
            ("accepted runs/s", f"{result['webhook_runs_per_s']:,.0f}"),
            ("webhook latency p50 / p99", f"{result['p50_ms']:.1f} ms / {result['p99_ms']:.1f} ms"),
            ("last 50 runs completed", f"{result['checked']:.0f} / 50"),
        ],
    )
    figures(
        {
            "webhook_runs_per_s": round(result["webhook_runs_per_s"], 1),
            "p50_ms": round(result["p50_ms"], 2),
            "p99_ms": round(result["p99_ms"], 2),
        }
    )


if __name__ == "__main__":
    main()
