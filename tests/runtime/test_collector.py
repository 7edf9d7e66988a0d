"""``serve``'s garbage collector setting: the youngest generation's threshold, from the
settings (file, environment, ``--gc-threshold``), and refused when it makes no sense."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from cronflow_actors.cli.main import _settings, build_parser
from cronflow_actors.errors import ConfigurationError
from cronflow_actors.runtime.collector import DEFAULT_GC_THRESHOLD, tune_collector
from cronflow_actors.runtime.config import load_config


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    """The process's thresholds, put back after the test."""
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


def test_the_youngest_generation_is_collected_less_often(
    thresholds: tuple[int, int, int],
) -> None:
    assert tune_collector() == thresholds  # what it was, to put back
    assert gc.get_threshold() == (DEFAULT_GC_THRESHOLD, *thresholds[1:])
    assert tune_collector(0) == (DEFAULT_GC_THRESHOLD, *thresholds[1:])  # 0: left alone
    assert gc.get_threshold() == (DEFAULT_GC_THRESHOLD, *thresholds[1:])
    with pytest.raises(ValueError, match="gc threshold must be >= 0"):
        tune_collector(-1)
    assert gc.get_threshold() == (DEFAULT_GC_THRESHOLD, *thresholds[1:])


def test_serve_takes_the_threshold_from_its_settings() -> None:
    assert load_config(None, environ={}).gc_threshold == DEFAULT_GC_THRESHOLD
    assert load_config(None, environ={"CRONFLOW_GC_THRESHOLD": "0"}).gc_threshold == 0
    args = build_parser().parse_args(["serve", "--gc-threshold", "5000"])
    assert _settings(args).gc_threshold == 5000
    with pytest.raises(ConfigurationError, match="gc_threshold") as bad:
        load_config(None, environ={"CRONFLOW_GC_THRESHOLD": "-5"})
    assert "CRONFLOW_GC_THRESHOLD" in str(bad.value)
