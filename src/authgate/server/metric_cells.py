"""Counters and histograms whose children are plain cells, exposed through `prometheus_client`.

`prometheus_client`'s own `Counter`/`Histogram` take a lock on every increment (they may be
counted from any thread): ~0.6 µs an increment, ~0.7 µs an observation here, ~5.5 µs of metrics
for each request to /mcp. Every count of server/metrics.py happens on the event loop's
thread, and so does every scrape (both listeners serve on that loop), so a child can be a
cell incremented in place (~0.05 µs); the families are custom collectors (prometheus_client's
"custom collectors") that turn the cells into metric families when scraped. Children are
bound at start (`labels`), and looked up in dicts by the sites.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["Count", "CounterFamily", "HistogramFamily", "Timing"]

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


class Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1


class Timing:
    """A histogram's child: counts per bucket (not cumulative; the last is +Inf) and the sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1  # le: a value on a bound is in its bucket
        self.sum += seconds


class _Family:
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)

    def describe(self) -> list[Any]:
        return []


class CounterFamily(_Family):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        super().__init__(name, documentation, labelnames)
        self.children: dict[tuple[str, ...], Count] = {}

    def labels(self, *values: str) -> Count:
        return self.children.setdefault(values, Count())

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self.children.items()):
            family.add_metric(list(values), child.value)
        yield family


class HistogramFamily(_Family):
    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float] = DEFAULT_BUCKETS
    ) -> None:
        super().__init__(name, documentation, labelnames)
        self.bounds = tuple(sorted(buckets))
        self.children: dict[tuple[str, ...], Timing] = {}

    def labels(self, *values: str) -> Timing:
        return self.children.setdefault(values, Timing(self.bounds))

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import HistogramMetricFamily

        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        les = [repr(float(b)) for b in self.bounds] + ["+Inf"]  # as prometheus_client writes them
        for values, child in list(self.children.items()):
            total, cumulative = 0, []
            for le, n in zip(les, child.counts, strict=True):
                total += n
                cumulative.append((le, total))
            family.add_metric(list(values), cumulative, child.sum)
        yield family
