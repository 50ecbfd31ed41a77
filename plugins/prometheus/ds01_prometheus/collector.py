"""The exporter's state in one runtime: the current snapshot, swapped in whole after each cycle.

:meth:`Exporter.update` runs in the daemon's cycle (``cycle_finished``): it reads what it needs
once (:mod:`ds01_prometheus.snapshot`), builds every family and replaces the snapshot with one
assignment, so a scrape on the server's thread sees either the old snapshot or the new one,
never half of each. :meth:`Exporter.collect` (the prometheus_client collector a scrape runs)
only yields what is there: no Docker, NVML or state-store call.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import platform
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

from ds01_core.api import CycleReport, Runtime
from ds01_prometheus.families import Families
from ds01_prometheus.gpu_metrics import add_gpus
from ds01_prometheus.page import PageCache, encode, join
from ds01_prometheus.snapshot import read_facts
from ds01_prometheus.state_metrics import CycleFacts, add_slots, add_users, add_workloads

log = logging.getLogger(__name__)

#: ``ds01_cycle_duration_seconds`` buckets (the catalogue's)
CYCLE_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: the telemetry worker's module: events, notices, gateway, filesystems (optional)
PROCESS_METRICS = "ds01_prometheus.process_metrics"


class ProcessMetricsLike(Protocol):
    def update(self, runtime: Runtime, report: CycleReport) -> None: ...

    def collect(self) -> Iterable[Metric]: ...


class CycleHistogram:
    """Cumulative bucket counts and the sum of cycle durations, one per kind of cycle."""

    def __init__(self) -> None:
        self.counts = [0.0] * len(CYCLE_BUCKETS)
        self.count = 0.0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        for i, bound in enumerate(CYCLE_BUCKETS):
            if seconds <= bound:
                self.counts[i] += 1

    def buckets(self) -> list[tuple[str, float]]:
        return [(_le(b), c) for b, c in zip(CYCLE_BUCKETS, self.counts, strict=True)] + [
            ("+Inf", self.count)
        ]


def _le(bound: float) -> str:
    return repr(float(bound))


def build_info() -> Metric:
    """``ds01_build_info``: the core's version and Python's."""
    try:
        version = importlib.metadata.version("ds01")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    family = GaugeMetricFamily(
        "ds01_build_info",
        "The ds01 version and Python running ds01d.",
        labels=["version", "python"],
    )
    family.add_metric([version, platform.python_version()], 1.0)
    return family


def load_process_metrics() -> ProcessMetricsLike | None:
    """The daemon/gateway telemetry, when this distribution has it (another part of the plugin)."""
    try:
        module = importlib.import_module(PROCESS_METRICS)
    except ModuleNotFoundError as exc:
        if exc.name != PROCESS_METRICS:
            raise
        return None
    try:
        metrics: ProcessMetricsLike = module.ProcessMetrics()
    except Exception:  # the rest of the exporter still works; say why
        log.exception("prometheus: the process metrics cannot start")
        return None
    return metrics


class Exporter(Collector):
    """One runtime's metrics: the snapshot a scrape serves, and the counters kept across cycles."""

    def __init__(self, process_metrics: ProcessMetricsLike | None = None) -> None:
        self._build = build_info()
        self._snapshot: tuple[Metric, ...] = (self._build,)
        self._facts = CycleFacts()
        self._cycles = {"full": CycleHistogram(), "partial": CycleHistogram()}
        self._errors = 0
        self._last_full: float | None = None
        self._update_lock = threading.Lock()  # cycles are serial; a test may call from threads
        self.process_metrics = process_metrics
        #: seconds the previous scrape took to render (``ds01_exporter_scrape_duration_seconds``)
        self.scrape_seconds: float | None = None
        self.updates = 0
        #: set after each update: the server's pre-render thread renders the new snapshot
        self.updated = threading.Event()
        self._pages = PageCache()

    # -- the cycle's side --------------------------------------------------------------------

    def update(self, runtime: Runtime, report: CycleReport) -> None:
        """Build the snapshot from ``report`` and swap it in (``cycle_finished``)."""
        with self._update_lock:
            facts = read_facts(runtime, report, self._facts)
            self._cycles["partial" if report.partial else "full"].observe(report.seconds)
            self._errors += len(report.errors)
            if not report.partial:
                self._last_full = time.time()
            out = Families()
            out.extend([self._build])
            add_gpus(out, facts.gpus, facts.health, facts.gpus_available)
            add_slots(out, facts)
            add_users(out, facts)
            add_workloads(out, facts)
            out.extend(self._daemon_families())
            self._facts = facts
            self._snapshot = out.build()  # one assignment: a scrape sees old or new, whole
            self.updates += 1
        self.updated.set()
        if self.process_metrics is not None:
            self.process_metrics.update(runtime, report)

    def _daemon_families(self) -> list[Metric]:
        duration = HistogramMetricFamily(
            "ds01_cycle_duration_seconds",
            "How long ds01d's cycles take (full: every interval; partial: after a Docker event).",
            labels=["cycle"],
        )
        for kind, hist in self._cycles.items():
            duration.add_metric([kind], hist.buckets(), hist.total)
        errors = CounterMetricFamily(
            "ds01_cycle_errors_total", "Errors listed in ds01d's cycles (steps and plugins)."
        )
        errors.add_metric([], float(self._errors))
        families: list[Metric] = [duration, errors]
        if self._last_full is not None:
            last = GaugeMetricFamily(
                "ds01_last_cycle_timestamp_seconds", "Unix time the last full cycle ended."
            )
            last.add_metric([], self._last_full)
            families.append(last)
        return families

    # -- the scrape's side -------------------------------------------------------------------

    def render(self, accept: str) -> tuple[bytes, str]:
        """The ``/metrics`` page for a scraper's ``Accept`` header, and its content type: the
        snapshot's part from the page cache, the per-scrape part rendered now."""
        encoder, content_type = choose_encoder(accept)
        fixed = self._pages.fixed_part(self._snapshot, encoder, content_type)
        return join(content_type, fixed, encode(encoder, self._varying())), content_type

    def prerender(self) -> None:
        """Render the current snapshot ahead of the next scrape (the server's thread)."""
        self._pages.prerender(self._snapshot)

    def collect(self) -> Iterator[Metric]:
        """The current snapshot, the previous scrape's duration, and the process telemetry."""
        yield from self._snapshot
        yield from self._varying()

    def _varying(self) -> Iterator[Metric]:
        """What changes with every scrape: its duration, and the process telemetry."""
        if self.scrape_seconds is not None:
            scrape = GaugeMetricFamily(
                "ds01_exporter_scrape_duration_seconds",
                "How long the previous scrape of this exporter took to render.",
            )
            scrape.add_metric([], self.scrape_seconds)
            yield scrape
        if self.process_metrics is not None:
            try:
                yield from self.process_metrics.collect()
            except Exception as exc:  # the rest of the page is still worth serving
                log.error("prometheus: process metrics failed: %s", exc)

    def registry(self) -> CollectorRegistry:
        """A registry holding only this exporter (nothing of prometheus_client's defaults)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return registry

    def facts(self) -> CycleFacts:
        """What the current snapshot was built from (for tests and ``ds01`` commands)."""
        return self._facts


#: the runtime memo holding this plugin's state ({"exporter": Exporter} once one is made)
MEMO_KEY = "prometheus.exporter"


def exporter_of(runtime: Runtime) -> Exporter:
    """This runtime's exporter, made on first use (by the listener's start, or a test); a
    daemon reload is a new runtime, so a new exporter."""
    holder: dict[str, Exporter] = runtime.memo(MEMO_KEY, dict)
    if "exporter" not in holder:
        holder["exporter"] = Exporter(load_process_metrics())
    return holder["exporter"]


def running_exporter(runtime: Runtime) -> Exporter | None:
    """The exporter when this process serves one (ds01d), else None: a process that only runs
    a cycle (``ds01d --once``, a command) builds no snapshot nobody would read."""
    holder: dict[str, Exporter] = runtime.memo(MEMO_KEY, dict)
    return holder.get("exporter")
