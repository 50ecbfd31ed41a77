"""Counters a process keeps in memory and writes to a file, for the exporter in another process.

``ds01-gateway`` and ``ds01-api`` answer requests and allocate GPUs, but the Prometheus exporter
runs inside ``ds01d``. So each of them counts in memory here — a lock and a dict update per
event, cheap enough for the gateway's every request (``benchmarks/bench_exporter.py`` measures
it) — and a :func:`writing` thread puts a JSON snapshot in
``<paths.runtime_dir>/telemetry/<process>.json`` every few seconds and at exit (written to a
temporary file and renamed, so a reader never sees half of one). The exporter reads the files
with :func:`read_process_telemetry`. Only counts are written: no user names, no paths, no ids —
the files are world-readable (0644) like the metrics they become. A snapshot that a plugin
writes once per cycle (:func:`write_telemetry`: gauges too, e.g. the accounting plugin's totals
per user) may name users: it is written 0600 unless the caller says otherwise.

Label values are bounded by the code that counts; each counter still keeps at most
:data:`MAX_SERIES` label sets and counts any further one as ``other``.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
#: distinct label sets one counter keeps; any further one is counted under ``other``
MAX_SERIES = 500
OTHER = "other"
#: seconds between two snapshots a process writes
WRITE_INTERVAL = 5.0
FILE_MODE = 0o644
DIR_MODE = 0o755
SUBDIR = "telemetry"

Labels = tuple[str, ...]


class Counter:
    """A monotonically increasing count per label set (thread-safe, and cheap to add one to).

    A step of one is ``next()`` on an :class:`itertools.count` per label set: a single C call
    the interpreter never interrupts, so no lock is taken on the hot path (the gateway counts
    every request). Other amounts go to a float under a lock.
    """

    __slots__ = ("_cells", "_extra", "_lock", "help", "labels", "name")

    def __init__(self, name: str, help: str, labels: Labels = (), seed: Iterable[Labels] = ()):
        self.name, self.help, self.labels = name, help, tuple(labels)
        self._lock = threading.Lock()
        self._cells: dict[Labels, itertools.count[int]] = {}
        self._extra: dict[Labels, float] = {}
        for key in seed:
            self._add(tuple(key))

    def _add(self, key: Labels) -> tuple[Labels, itertools.count[int]]:
        """The series for ``key`` (made now; ``other`` once :data:`MAX_SERIES` are kept)."""
        with self._lock:
            if key not in self._cells and len(self._cells) >= MAX_SERIES:
                key = (OTHER,) * len(self.labels)
            return key, self._cells.setdefault(key, itertools.count())

    def incrementer(self, *values: str) -> Callable[[], object]:
        """A function adding one to the series with these label values: the cheapest way to
        count the same series again and again (one C call)."""
        return self._add(values)[1].__next__

    def inc(self, *values: str, amount: float = 1.0) -> None:
        """Add ``amount`` to the series with these label values (in ``labels``' order)."""
        cell = self._cells.get(values)
        if cell is None:
            values, cell = self._add(values)
        if amount == 1.0:
            next(cell)
            return
        with self._lock:
            self._extra[values] = self._extra.get(values, 0.0) + amount

    def values(self) -> dict[Labels, float]:
        with self._lock:
            cells, extra = dict(self._cells), dict(self._extra)
        # a count's repr is ``count(N)``: its next value, i.e. how often next() was called
        return {k: int(repr(c)[6:-1]) + extra.get(k, 0.0) for k, c in cells.items()}


class Histogram:
    """Observations counted into fixed buckets (``le`` upper bounds), with their sum."""

    __slots__ = ("_counts", "_lock", "_sum", "buckets", "help", "name")

    def __init__(self, name: str, help: str, buckets: Sequence[float]):
        self.name, self.help = name, help
        self.buckets = tuple(sorted(float(b) for b in buckets))
        self._lock = threading.Lock()
        self._counts = [0] * (len(self.buckets) + 1)  # the last one: above every bound (+Inf)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)  # value <= bound: that bucket
        with self._lock:
            self._counts[index] += 1
            self._sum += value

    @contextlib.contextmanager
    def time(self) -> Iterator[None]:
        """Observe how long the ``with`` block took (also when it raises)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe(time.perf_counter() - start)

    def state(self) -> tuple[list[int], float]:
        with self._lock:
            return list(self._counts), self._sum


class Gauge:
    """A value per label set that is set, not added to (at most :data:`MAX_SERIES` sets;
    any further one is dropped: a gauge's ``other`` would mean nothing)."""

    __slots__ = ("_lock", "_values", "help", "labels", "name")

    def __init__(self, name: str, help: str, labels: Labels = ()):
        self.name, self.help, self.labels = name, help, tuple(labels)
        self._lock = threading.Lock()
        self._values: dict[Labels, float] = {}

    def set(self, *values: str, value: float) -> None:
        """Set the series with these label values (in ``labels``' order) to ``value``."""
        with self._lock:
            if values in self._values or len(self._values) < MAX_SERIES:
                self._values[values] = float(value)

    def values(self) -> dict[Labels, float]:
        with self._lock:
            return dict(self._values)


class Registry:
    """One process's counters, gauges and histograms, by metric name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[str, Counter] = {}
        self.gauges: dict[str, Gauge] = {}
        self.histograms: dict[str, Histogram] = {}

    def counter(
        self, name: str, help: str, labels: Labels = (), seed: Iterable[Labels] = ()
    ) -> Counter:
        """The counter ``name``, made on first use (the same object for every caller)."""
        with self._lock:
            if name not in self.counters:
                self.counters[name] = Counter(name, help, labels, seed)
            return self.counters[name]

    def gauge(self, name: str, help: str, labels: Labels = ()) -> Gauge:
        """The gauge ``name``, made on first use (the same object for every caller)."""
        with self._lock:
            if name not in self.gauges:
                self.gauges[name] = Gauge(name, help, labels)
            return self.gauges[name]

    def histogram(self, name: str, help: str, buckets: Sequence[float]) -> Histogram:
        with self._lock:
            if name not in self.histograms:
                self.histograms[name] = Histogram(name, help, buckets)
            return self.histograms[name]

    def snapshot(self, process: str) -> dict[str, Any]:
        """Everything counted so far, as the JSON object a telemetry file holds."""
        with self._lock:
            counters, histograms = list(self.counters.values()), list(self.histograms.values())
            gauges = list(self.gauges.values())
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "process": process,
            "pid": os.getpid(),
            "written": time.time(),
            "counters": {},
            "histograms": {},
        }
        for c in counters:
            out["counters"][c.name] = _series(c)
        if gauges:  # absent when none: the files of the gateway and the API stay as they were
            out["gauges"] = {g.name: _series(g) for g in gauges}
        for h in histograms:
            counts, total = h.state()
            out["histograms"][h.name] = {
                "help": h.help,
                "buckets": list(h.buckets),
                "counts": counts,
                "sum": total,
            }
        return out


def _series(metric: Counter | Gauge) -> dict[str, Any]:
    values = sorted(metric.values().items())
    return {
        "help": metric.help,
        "labels": list(metric.labels),
        "values": [[list(k), v] for k, v in values],
    }


#: the name :mod:`ds01_core.api` gives the registry (a plugin builds one per snapshot it writes)
TelemetryRegistry = Registry

#: this process's own telemetry: what :func:`writing` writes
TELEMETRY = Registry()

ALLOCATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: from asking for GPUs to the answer (granted or refused), in the process that asked
ALLOCATION_SECONDS = TELEMETRY.histogram(
    "ds01_allocation_duration_seconds",
    "Seconds from asking for GPUs to the answer (granted or refused).",
    ALLOCATION_BUCKETS,
)


def telemetry_path(runtime_dir: str | Path, process: str) -> Path:
    return Path(runtime_dir) / SUBDIR / f"{process}.json"


def write_snapshot(path: Path, snapshot: dict[str, Any], mode: int = FILE_MODE) -> None:
    """Write atomically: a temporary file in the same directory, renamed over the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):  # a directory someone else made: leave it
        os.chmod(path.parent, DIR_MODE)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), mode)
            json.dump(snapshot, handle, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_telemetry(
    runtime_dir: str | Path, process: str, registry: Registry, *, mode: int = 0o600
) -> Path:
    """Write ``registry``'s snapshot once, atomically, to
    ``<runtime_dir>/telemetry/<process>.json`` (what :func:`read_process_telemetry` reads): for
    numbers a plugin computes once per cycle rather than counts as they happen. ``mode`` 0600 by
    default, since such a snapshot may name users; the path written."""
    path = telemetry_path(runtime_dir, process)
    write_snapshot(path, registry.snapshot(process), mode)
    return path


class TelemetryWriter:
    """A daemon thread writing ``registry``'s snapshot to ``path`` every ``interval`` seconds,
    and once more when stopped."""

    def __init__(self, registry: Registry, process: str, path: Path, interval: float):
        self.registry, self.process, self.path, self.interval = registry, process, path, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"ds01-telemetry-{process}", daemon=True
        )

    def write(self) -> None:
        try:
            write_snapshot(self.path, self.registry.snapshot(self.process))
        except OSError as exc:  # never take the process down over its own counters
            log.warning("could not write telemetry to %s: %s", self.path, exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.write()

    def start(self) -> None:
        self.write()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.write()


@contextlib.contextmanager
def writing(
    runtime_dir: str | Path,
    process: str,
    *,
    interval: float = WRITE_INTERVAL,
    registry: Registry = TELEMETRY,
) -> Iterator[TelemetryWriter]:
    """Write ``process``'s telemetry file while the ``with`` block runs, and at its end."""
    writer = TelemetryWriter(registry, process, telemetry_path(runtime_dir, process), interval)
    writer.start()
    try:
        yield writer
    finally:
        writer.stop()


# -- reading (the exporter) ---------------------------------------------------------------------


@attrs.frozen
class CounterSnapshot:
    """One counter as a process last wrote it: its help, label names and values."""

    help: str
    labels: Labels
    values: dict[Labels, float]


@attrs.frozen
class HistogramSnapshot:
    """One histogram: ``counts[i]`` observations were ``<= buckets[i]`` and above the bound
    before it (not cumulative); the last count is above every bound."""

    help: str
    buckets: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float


@attrs.frozen
class ProcessTelemetry:
    """What one process (``ds01-gateway``, ``ds01-api``) has counted since it started; a
    gauge is kept as a :class:`CounterSnapshot` too (help, labels, values)."""

    process: str
    pid: int
    written: float
    counters: dict[str, CounterSnapshot]
    histograms: dict[str, HistogramSnapshot]
    gauges: dict[str, CounterSnapshot] = attrs.field(factory=dict)


def _values(c: dict[str, Any]) -> CounterSnapshot:
    return CounterSnapshot(
        str(c.get("help", "")),
        tuple(str(x) for x in c["labels"]),
        {tuple(str(x) for x in key): float(value) for key, value in c["values"]},
    )


def _parse(data: dict[str, Any]) -> ProcessTelemetry:
    counters = {name: _values(c) for name, c in data.get("counters", {}).items()}
    gauges = {name: _values(g) for name, g in data.get("gauges", {}).items()}
    histograms = {
        name: HistogramSnapshot(
            str(h.get("help", "")),
            tuple(float(b) for b in h["buckets"]),
            tuple(int(n) for n in h["counts"]),
            float(h["sum"]),
        )
        for name, h in data.get("histograms", {}).items()
    }
    for name, hist in histograms.items():
        if len(hist.counts) != len(hist.buckets) + 1:
            raise ValueError(f"histogram {name}: {len(hist.counts)} counts for {hist.buckets}")
    return ProcessTelemetry(
        str(data["process"]),
        int(data["pid"]),
        float(data["written"]),
        counters,
        histograms,
        gauges,
    )


def read_process_telemetry(runtime_dir: str | Path) -> list[ProcessTelemetry]:
    """Every process's last telemetry snapshot under ``<runtime_dir>/telemetry/``, by process
    name; a file that cannot be read or parsed is skipped with a warning."""
    found = []
    for path in sorted((Path(runtime_dir) / SUBDIR).glob("*.json")):
        try:
            found.append(_parse(json.loads(path.read_text())))
        except FileNotFoundError:  # removed since the listing
            continue
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("telemetry file %s skipped: %s", path, exc)
    return found
