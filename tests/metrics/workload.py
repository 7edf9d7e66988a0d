"""Drives ``workload_app`` over HTTP the way its users would: webhooks, resumes, events, and a
few requests that go wrong (unknown routes, wrong methods, bad signatures, duplicates)."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from cronflow_actors.http.auth import sign
from tests.metrics.workload_app import SECRET

__all__ = ["Workload"]

_FINAL = frozenset({"completed", "failed", "canceled"})


class Workload:
    """An HTTP client of one serve (``url``), with the calls the tests script."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, trust_env=False, timeout=10)
        self._ids = itertools.count()

    def close(self) -> None:
        self.client.close()

    def order(self, amount: float = 50, *, delivery: str | None = None, **flags: Any) -> str | None:
        """Post an order; its run id (None for a duplicate delivery)."""
        # a delivery sent again is the same request: the same body under its key
        body = {"order_id": f"o-{delivery or next(self._ids)}", "amount": amount, **flags}
        headers = {"x-delivery": delivery} if delivery else {}
        response = self.client.post("/webhooks/orders", json=body, headers=headers)
        if response.status_code == 200 and response.json().get("duplicate"):
            return None
        assert response.status_code == 202, response.text
        run_id: str = response.json()["run_id"]
        return run_id

    def start(self, hook: str, body: Any = None) -> str:
        response = self.client.post(f"/webhooks/{hook}", json=body or {})
        assert response.status_code == 202, response.text
        run_id: str = response.json()["run_id"]
        return run_id

    def signed(self, *, good: bool) -> int:
        body = json.dumps({"n": next(self._ids)}).encode()
        now = int(time.time())
        signature = sign(SECRET, now, body, "POST /webhooks/signed") if good else "0" * 64
        headers = {"x-signature-256": f"t={now},v2={signature}"}
        headers["content-type"] = "application/json"
        response = self.client.post("/webhooks/signed", content=body, headers=headers)
        return response.status_code

    def paused(self) -> list[dict[str, Any]]:
        paused: list[dict[str, Any]] = self.client.get("/paused").json()["paused"]
        return paused

    def resume(self, token: str) -> None:
        response = self.client.post(f"/resume/{token}", json={"approved": True})
        assert response.status_code == 200, response.text

    def publish(self, event: str, payload: Any = None) -> None:
        response = self.client.post(f"/events/{event}", json=payload or {})
        assert response.status_code == 202, response.text

    def run(self, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.client.get(f"/runs/{run_id}").json()
        return run

    def wrong_requests(self) -> None:
        assert self.client.get("/no/such/page").status_code == 404
        assert self.client.delete("/runs").status_code == 405

    def wait_until(self, what: str, done: Callable[[], bool], timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout} s: {what}")
            time.sleep(0.05)

    def wait_for_status(self, run_id: str, *statuses: str, timeout: float = 15) -> dict[str, Any]:
        """The run once its status is one of ``statuses``."""
        found: dict[str, Any] = {}

        def reached() -> bool:
            found.update(self.run(run_id))
            return found["status"] in statuses

        self.wait_until(f"run {run_id} {statuses}", reached, timeout)
        return found

    def wait_settled(self, run_id: str, timeout: float = 15) -> dict[str, Any]:
        """The run once it is finished and none of its actions is still out."""
        found: dict[str, Any] = {}

        def settled() -> bool:
            found.update(self.run(run_id))
            actions_out = any(s["status"] == "dispatched" for s in found["steps"])
            return found["status"] in _FINAL and not actions_out

        self.wait_until(f"run {run_id} settled", settled, timeout)
        return found


class BackgroundLoad:
    """Keeps a mixed workload going on a thread (for dashboards that show rates) until
    stopped; bounded by ``limit`` seconds in any case."""

    def __init__(self, url: str, limit: float = 120) -> None:
        self._workload = Workload(url)
        self._stop = threading.Event()
        self._limit = limit
        self._thread = threading.Thread(target=self._run, name="metrics load", daemon=True)
        self._rounds = threading.Condition()
        self.rounds = 0
        self.errors: list[BaseException] = []

    def __enter__(self) -> BackgroundLoad:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._workload.close()

    def wait(self, rounds: int, timeout: float = 30) -> None:
        """Return once ``rounds`` rounds of the mix were sent (or the load ended)."""
        with self._rounds:
            done = self._rounds.wait_for(
                lambda: self.rounds >= rounds or not self._thread.is_alive(), timeout
            )
        assert done, f"the load did not do {rounds} rounds in {timeout} s"

    def _run(self) -> None:
        w = self._workload
        deadline = time.monotonic() + self._limit
        try:
            for n in itertools.count():
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                w.order(50, flaky=n % 3 == 0, notify_fails=n % 4 == 0)
                w.order(0 if n % 5 == 0 else 80)
                if n % 3 == 0:
                    w.order(5000)  # pauses for a person
                    for pause in w.paused()[:2]:
                        w.resume(pause["token"])
                    w.start("paid")
                    w.publish("payment.confirmed")
                    w.start("limited", {"hold": 0.05})
                    w.start("limited", {"hold": 0.05})
                w.order(50, delivery=f"dup-{n // 2}")  # every other one is a duplicate
                w.signed(good=n % 2 == 0)
                w.wrong_requests()
                with self._rounds:
                    self.rounds += 1
                    self._rounds.notify_all()
                self._stop.wait(0.1)
        except BaseException as error:  # reported by the test that used the load
            self.errors.append(error)
        finally:
            with self._rounds:
                self._rounds.notify_all()
