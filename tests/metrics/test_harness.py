"""The harness itself: what it starts it stops, by pid, also when the test fails; Prometheus
cannot outlive its lifetime; its config names loopback targets only."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.metrics.prom import running_prometheus, scrape_config
from tests.metrics.serve import running_serve


def alive(pid: int) -> bool:
    # a process that exited and was reaped has no /proc entry; a zombie would count as alive here
    return Path(f"/proc/{pid}").exists()


def fail_inside_the_harness(directory: Path, pids: list[int | None]) -> None:
    (directory / "serve").mkdir()
    (directory / "prometheus").mkdir()
    with (
        running_serve(directory / "serve") as serve,
        running_prometheus(directory / "prometheus", [f"127.0.0.1:{serve.port}"]) as prometheus,
    ):
        pids += [serve.pid, prometheus.pid, prometheus.prometheus_pid()]
        raise RuntimeError("the test failed")


def test_serve_and_prometheus_are_stopped_by_pid_when_the_block_raises(
    prometheus_binaries: None, tmp_path: Path
) -> None:
    pids: list[int | None] = []
    with pytest.raises(RuntimeError, match="the test failed"):
        fail_inside_the_harness(tmp_path, pids)
    assert len(pids) == 3
    assert None not in pids
    assert [pid for pid in pids if pid is not None and alive(pid)] == []
    assert "See you next time!" in (tmp_path / "prometheus" / "prometheus.log").read_text()


def test_prometheus_ends_by_itself_after_its_lifetime(
    prometheus_binaries: None, tmp_path: Path
) -> None:
    # what bounds it when the test process dies before its teardown could run
    with running_prometheus(tmp_path, ["127.0.0.1:9"], lifetime=2) as prometheus:
        assert prometheus.query("vector(1)")[0].value == 1
        assert prometheus.wait_exited(timeout=15) == 124  # coreutils timeout: "timed out"
        assert not alive(prometheus.pid)


def test_the_scrape_config_names_only_loopback_targets() -> None:
    config = scrape_config(["127.0.0.1:8000"], interval=1.0)
    assert set(config) == {"global", "scrape_configs"}  # no alerting, remote write or rules
    assert config["global"]["scrape_interval"] == "1000ms"
    for target in ("localhost:8000", "10.0.0.1:9100", "example.org:80", "127.0.0.1"):
        with pytest.raises(ValueError, match=r"only 127\.0\.0\.1:PORT"):
            scrape_config([target], interval=1.0)
