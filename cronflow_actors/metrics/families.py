"""Counters and histograms with labels that render fast.

prometheus_client's ``Counter`` and ``Histogram`` build a ``Sample`` (with its own label dict)
for every series on every scrape and format it label by label: about 5 µs a line, so a runtime
with 50 workflow types and their per-workflow histograms (~5,000 lines) took 30-50 ms per
scrape. These families keep, for each label set, its label text formatted once (``le`` included,
for every bucket) and render a series as that text plus its number. They are prometheus_client
collectors all the same (``collect()`` gives the usual metric families), so a registry holding
them works with every prometheus_client tool; ``render`` is the fast path ``/metrics`` takes.

Updates come from any thread, without a lock: an update is appended to its series' queue (one
atomic ``deque.append``, where taking a ``threading.Lock`` costs some 2,500 machine instructions
on CPython 3.11: most of a step's metric update, two dozen of them a run). Whoever reads, and a
writer once ``_FOLD_AT`` are queued, folds the queue into the series under the series' lock, in
the order they came; so a render sees every update made before it and a histogram's buckets,
count and sum always agree.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

from mypy_extensions import mypyc_attr
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["CounterFamily", "HistogramFamily", "number"]


def number(value: float) -> str:
    """A sample value as both exposition formats write it (Go's float syntax)."""
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def _label_text(names: Sequence[str], values: Sequence[str]) -> str:
    """``{a="1",b="2"}`` with the names in order and the values escaped; "" without labels."""
    if not names:
        return ""
    pairs = sorted(zip(names, values, strict=True))
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in pairs) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


C = TypeVar("C")


@mypyc_attr(native_class=False)  # its base is not compiled (setup.py)
class _Family(Collector, Generic[C]):
    """What counters and histograms share: label children, created once per label set."""

    _type = ""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry | None,
        unit: str = "",
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.unit = unit
        self._children: dict[tuple[str, ...], C] = {}
        self._lock = threading.Lock()
        self._unlabelled: C | None = None
        if not self.labelnames:
            self._unlabelled = self.labels()
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str, **named: str) -> C:
        """The series of these label values (positional, in the family's label order, or by
        name), created on first use."""
        if named:
            if values or set(named) != set(self.labelnames):
                raise ValueError(f"{self.name}: give the labels {self.labelnames}")
            values = tuple(named[name] for name in self.labelnames)
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: {len(self.labelnames)} label values needed")
        key = tuple(str(value) for value in values)
        child = self._children.get(key)
        if child is None:
            with self._lock:
                child = self._children.get(key)
                if child is None:
                    child = self._children[key] = self._child(key)
        return child

    def _child(self, values: tuple[str, ...]) -> C:
        raise NotImplementedError

    def _series(self) -> list[tuple[tuple[str, ...], C]]:
        with self._lock:
            return list(self._children.items())

    def _header(self, openmetrics: bool, sample_name: str) -> str:
        name = self.name if openmetrics else sample_name
        header = f"# HELP {name} {_help(self.documentation)}\n# TYPE {name} {self._type}\n"
        if openmetrics and self.unit:
            header += f"# UNIT {name} {self.unit}\n"
        return header

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def _family(self) -> Metric:
        raise NotImplementedError


_FOLD_AT = 64
"""Updates a series queues before the writer that queues the next folds them in itself (a read
folds them all): a bound on the queue of a series nobody reads."""


class _CounterSeries:
    __slots__ = ("_lock", "_queued", "_value", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._value = 0.0
        self._queued: deque[float] = deque()
        """Amounts not yet added (appended by any thread, taken only under ``_lock``)."""
        self._lock = threading.Lock()

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        queued = self._queued
        queued.append(float(amount))  # (a value that is no number fails here, not in a fold)
        if len(queued) >= _FOLD_AT:
            with self._lock:
                self._fold()

    def _fold(self) -> None:
        """Add the queued amounts, in order (under ``_lock``: the only place they are taken,
        so the ``len`` queued now are there to take)."""
        queued, value = self._queued, self._value
        for _ in range(len(queued)):
            value += queued.popleft()
        self._value = value

    def get(self) -> float:
        with self._lock:
            self._fold()
            return self._value


@mypyc_attr(native_class=False)  # its base is not compiled (setup.py)
class CounterFamily(_Family[_CounterSeries]):
    """A counter; ``name`` ends in ``_total`` (the family's name is without it)."""

    _type = "counter"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if not name.endswith("_total"):
            raise ValueError(f"counter {name!r}: a counter's name ends in _total")
        super().__init__(name.removesuffix("_total"), documentation, labelnames, registry)

    def _child(self, values: tuple[str, ...]) -> _CounterSeries:
        return _CounterSeries(f"{self.name}_total{_label_text(self.labelnames, values)} ")

    def inc(self, amount: float = 1) -> None:
        """For a counter without labels."""
        if self._unlabelled is None:
            raise ValueError(f"{self.name} has labels: use .labels(...).inc()")
        self._unlabelled.inc(amount)

    def _family(self) -> Metric:
        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, series in self._series():
            family.add_metric(list(values), series.get())
        yield family

    def render(self, out: list[str], openmetrics: bool) -> None:
        out.append(self._header(openmetrics, f"{self.name}_total"))
        out.extend(f"{series.text}{number(series.get())}\n" for _, series in self._series())


class _HistogramSeries:
    __slots__ = (
        "_buckets",
        "_lock",
        "_queued",
        "_sum",
        "bounds",
        "bucket_texts",
        "count_text",
        "sum_text",
    )

    def __init__(
        self, bounds: list[float], bucket_texts: list[str], count_text: str, sum_text: str
    ) -> None:
        self.bounds = bounds
        self.bucket_texts = bucket_texts
        self.count_text = count_text
        self.sum_text = sum_text
        self._buckets = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self._sum = 0.0
        self._queued: deque[float] = deque()
        """Values not yet counted (appended by any thread, taken only under ``_lock``)."""
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        queued = self._queued
        queued.append(float(value))  # (a value that is no number fails here, not in a fold)
        if len(queued) >= _FOLD_AT:
            with self._lock:
                self._fold()

    def _fold(self) -> None:
        """Count the queued values, in order (under ``_lock``, as ``_CounterSeries._fold``)."""
        queued, bounds, buckets, total = self._queued, self.bounds, self._buckets, self._sum
        for _ in range(len(queued)):
            value = queued.popleft()
            buckets[bisect.bisect_left(bounds, value)] += 1  # the first bound >= value ("le")
            total += value
        self._sum = total

    def get(self) -> tuple[list[int], float]:
        """Cumulative bucket counts (the last one is the count) and the sum, as one reading."""
        with self._lock:
            self._fold()
            buckets, total = list(self._buckets), self._sum
        running = 0
        for index, count in enumerate(buckets):
            running += count
            buckets[index] = running
        return buckets, total


@mypyc_attr(native_class=False)  # its base is not compiled (setup.py)
class HistogramFamily(_Family[_HistogramSeries]):
    """A histogram with fixed bucket bounds (``le`` is inclusive, ``+Inf`` is added)."""

    _type = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
        unit: str = "",
        registry: CollectorRegistry | None = None,
    ) -> None:
        bounds = [float(b) for b in buckets]
        if bounds != sorted(set(bounds)) or not bounds or math.inf in bounds:
            raise ValueError(f"histogram {name!r}: bounds must rise, finite, at least one")
        if unit and not name.endswith(f"_{unit}"):
            raise ValueError(f"histogram {name!r}: a name with a unit ends in _{unit}")
        self.bounds = bounds
        self._le = [number(b) for b in bounds] + ["+Inf"]
        super().__init__(name, documentation, labelnames, registry, unit)

    def _child(self, values: tuple[str, ...]) -> _HistogramSeries:
        names = (*self.labelnames, "le")
        buckets = [f"{self.name}_bucket{_label_text(names, (*values, le))} " for le in self._le]
        labels = _label_text(self.labelnames, values)
        return _HistogramSeries(
            self.bounds, buckets, f"{self.name}_count{labels} ", f"{self.name}_sum{labels} "
        )

    def observe(self, value: float) -> None:
        """For a histogram without labels."""
        if self._unlabelled is None:
            raise ValueError(f"{self.name} has labels: use .labels(...).observe()")
        self._unlabelled.observe(value)

    def _family(self) -> Metric:
        return HistogramMetricFamily(
            self.name, self.documentation, labels=self.labelnames, unit=self.unit
        )

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            self.name, self.documentation, labels=self.labelnames, unit=self.unit
        )
        for values, series in self._series():
            cumulative, total = series.get()
            family.add_metric(list(values), list(zip(self._le, cumulative, strict=True)), total)
        yield family

    def render(self, out: list[str], openmetrics: bool) -> None:
        out.append(self._header(openmetrics, self.name))
        for _, series in self._series():
            cumulative, total = series.get()
            # counts are whole numbers: written as floats, as prometheus_client writes them
            out.extend(
                f"{text}{count}.0\n"
                for text, count in zip(series.bucket_texts, cumulative, strict=True)
            )
            out.append(f"{series.count_text}{cumulative[-1]}.0\n{series.sum_text}{number(total)}\n")
