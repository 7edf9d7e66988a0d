"""Fixtures for the metrics tests: one real ``serve`` and one real Prometheus scraping it every
second, per test module (starting both takes about a second; each test asks them fresh
questions). Tests that need ``prometheus`` or ``promtool`` skip, saying why, where Debian's
prometheus package is not installed (``make test`` installs it when run as root)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.metrics.prom import JOB, PrometheusServer, missing_binaries, running_prometheus
from tests.metrics.serve import ServeProcess, running_serve


@pytest.fixture(scope="session")
def prometheus_binaries() -> None:
    """Skips the test when ``prometheus`` or ``promtool`` is missing."""
    reason = missing_binaries()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """``cronflow-actors serve`` with the bundled example app, on a free loopback port."""
    with running_serve(tmp_path_factory.mktemp("serve")) as process:
        yield process


@pytest.fixture(scope="module")
def prometheus(
    prometheus_binaries: None, serve: ServeProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """Prometheus on a free loopback port scraping ``serve``'s /metrics every second (job
    ``cronflow``), its TSDB in a temporary directory, once it has scraped ``serve`` at least once
    (Prometheus 2.42 hands new targets to its scrapers every 5 s, so that takes up to ~6 s)."""
    with running_prometheus(
        tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{serve.port}"]
    ) as server:
        server.wait_for(f'up{{job="{JOB}"}} == 1', timeout=20)
        yield server
