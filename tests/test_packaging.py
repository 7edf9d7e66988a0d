"""The package as a user gets it: a wheel built from this tree, installed into a fresh virtual
environment outside the repository, whose ``cronflow-actors serve`` with no APP serves the
bundled examples and the web console (every asset from the wheel)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx

from tests.serving import ROOT, free_port


def _run(*command: str | Path, cwd: Path, timeout: float = 120) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_a_wheel_installed_elsewhere_serves_the_examples_and_the_console(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, ROOT, cwd=tmp_path)
    [wheel] = wheels.glob("cronflow_actors-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "cronflow_actors/examples/order_processing.py" in names
    assert "cronflow_actors/http/console/static/app.js" in names
    assert "cronflow_actors/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), sorted(names)
    assert not any(n.startswith(("tests/", "examples/")) for n in names)

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    _run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel, cwd=tmp_path, timeout=300)
    version = _run(venv / "bin" / "cronflow-actors", "--version", cwd=tmp_path)
    assert version.startswith("cronflow-actors ")

    elsewhere = tmp_path / "elsewhere"  # no examples/ here, nor the repository on any path
    elsewhere.mkdir()
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [venv / "bin" / "cronflow-actors", "serve", "--port", str(port), "--db", "x.db"],
            cwd=elsewhere,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert process.poll() is None, log.read_text(errors="replace")
        flows = httpx.get(f"{url}/flows").json()["flows"]
        assert [flow["id"] for flow in flows] == ["order-processing"]
        order = {"order_id": "o-1", "customer": "ada", "amount": 250, "items": ["book"]}
        assert httpx.post(f"{url}/webhooks/orders", json=order).status_code == 202
        page = httpx.get(f"{url}/", follow_redirects=True)
        assert page.status_code == 200
        assert str(page.url).endswith("/ui/")
        assert '<script src="/ui/app.js"' in page.text
        script = httpx.get(f"{url}/ui/app.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    assert code == 0, log.read_text(errors="replace")
