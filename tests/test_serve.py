"""``cronflow-actors serve`` (what ``make run`` starts) in a real process: it serves the bundled
example's webhook, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_serve_runs_the_bundled_example_and_drains_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cronflow_actors",
            "serve",
            "--db",
            str(tmp_path / "run.db"),
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        order = {"order_id": "o-9", "customer": "ada", "amount": 250, "items": ["book"]}
        response = httpx.post(f"{base}/webhooks/orders", json=order)
        assert response.status_code == 202
        run_id = response.json()["run_id"]
        for _ in range(200):
            run = httpx.get(f"{base}/runs/{run_id}").json()
            if run["status"] == "completed":
                break
            time.sleep(0.05)
        assert run["output"] == {"order_id": "o-9", "status": "shipped", "lane": "standard"}
        invalid = httpx.post(f"{base}/webhooks/orders", json={"order_id": "o-10"})
        assert invalid.status_code == 400
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
