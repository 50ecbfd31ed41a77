"""Small builders for metric families, so each metric is declared once with its help and labels.

The exporter rebuilds every family from each cycle's snapshot (never long-lived labelled
Gauges), so a series whose subject is gone simply is not built again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric


class Families:
    """The families of one snapshot, in the order they were declared."""

    def __init__(self) -> None:
        self._families: dict[str, Metric] = {}

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> _Adder:
        return self._add(name, GaugeMetricFamily(name, documentation, labels=list(labels)))

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> _Adder:
        family = CounterMetricFamily(name, documentation, labels=list(labels))
        return self._add(name, family)

    def _add(self, name: str, family: GaugeMetricFamily | CounterMetricFamily) -> _Adder:
        self._put(name, family)
        return _Adder(family)

    def _put(self, name: str, family: Metric) -> None:
        if name in self._families:
            raise ValueError(f"metric {name} declared twice")
        self._families[name] = family

    def extend(self, families: Iterable[Metric]) -> None:
        for family in families:
            self._put(family.name, family)

    def build(self) -> tuple[Metric, ...]:
        return tuple(self._families.values())


class _Adder:
    """Adds samples to one family; ``None`` values are left out (absent means unknown)."""

    def __init__(self, family: GaugeMetricFamily | CounterMetricFamily) -> None:
        self.family = family

    def __call__(self, value: float | bool | None, *labels: str) -> None:
        if value is None:
            return
        self.family.add_metric(list(labels), float(value))
