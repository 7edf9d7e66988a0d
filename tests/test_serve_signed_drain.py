"""A signed request whose handling the drain gives up on (SIGTERM, its condition still running
at ``--drain-timeout``) gives its signature back: the same request sent again to the next
``serve`` starts its run, as the README promises for a request refused with a 5xx."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from cronflow_actors.http.auth import sign_request
from tests.serving import ROOT, Served, start

APP = str(ROOT / "tests" / "serve_signed_app.py")
SECRET = "drain-secret"


def _serve(db: Path) -> Served:
    served = start(APP, db, "--drain-timeout", "1", "--lease-seconds", "1", "--wait-for-lease")
    assert served.up(), served.output()
    return served


def test_a_signed_request_the_drain_cut_may_be_sent_again_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNED_SECRET", SECRET)
    monkeypatch.setenv("SIGNED_MARKER", str(tmp_path / "asked"))
    body = b'{"order": 9}'
    moment = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Signature-256": sign_request(SECRET, "POST", "/hooks/order", body, at=moment),
        "Idempotency-Key": "order-9",
    }
    db = tmp_path / "signed.db"
    first = _serve(db)
    answers: list[Any] = []

    def send() -> None:
        try:
            answers.append(httpx.post(f"{first.url}/hooks/order", content=body, headers=headers))
        except httpx.HTTPError as error:  # the connection closed: no answer at all
            answers.append(error)

    client = threading.Thread(target=send)
    client.start()
    deadline = time.monotonic() + 10
    while not (tmp_path / "asked").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    first.process.terminate()  # SIGTERM while the condition runs: the drain gives up on it
    assert first.process.wait(20) == 0, first.output()
    client.join(20)
    [cut] = answers
    assert isinstance(cut, httpx.HTTPError) or cut.status_code >= 500
    second = _serve(db)
    try:
        again = httpx.post(f"{second.url}/hooks/order", content=body, headers=headers)
        assert again.status_code == 202, again.text
        run_id = again.json()["run_id"]
        deadline = time.monotonic() + 10
        while (run := httpx.get(f"{second.url}/runs/{run_id}").json())["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert run["output"] == {"order": 9}
    finally:
        second.stop()
