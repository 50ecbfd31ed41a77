"""Counters a process keeps in memory and writes to a file, for the exporter in another process.

``ds01-gateway`` and ``ds01-api`` answer requests and allocate GPUs, but the Prometheus exporter
runs inside ``ds01d``. So each of them counts in memory here — a lock and a dict update per
event, cheap enough for the gateway's every request (``benchmarks/bench_exporter.py`` measures
it) — and a :func:`writing` thread puts a JSON snapshot in
``<paths.runtime_dir>/telemetry/<process>.json`` every few seconds and at exit (written to a
temporary file and renamed, so a reader never sees half of one). The exporter reads the files
with :func:`read_process_telemetry`. Only counts are written: no user names, no paths, no ids —
the files are world-readable (0644) like the metrics they become.

Label values are bounded by the code that counts; each counter still keeps at most
:data:`MAX_SERIES` label sets and counts any further one as ``other``.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
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
    """A monotonically increasing count per label set (thread-safe)."""

    __slots__ = ("_lock", "_values", "help", "labels", "name")

    def __init__(self, name: str, help: str, labels: Labels = (), seed: Iterable[Labels] = ()):
        self.name, self.help, self.labels = name, help, tuple(labels)
        self._lock = threading.Lock()
        self._values: dict[Labels, float] = {tuple(k): 0.0 for k in seed}

    def inc(self, *values: str, amount: float = 1.0) -> None:
        """Add ``amount`` to the series with these label values (in ``labels``' order)."""
        with self._lock:
            if values in self._values:
                self._values[values] += amount
            elif len(self._values) < MAX_SERIES:
                self._values[values] = amount
            else:
                other = (OTHER,) * len(self.labels)
                self._values[other] = self._values.get(other, 0.0) + amount

    def values(self) -> dict[Labels, float]:
        with self._lock:
            return dict(self._values)


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


class Registry:
    """One process's counters and histograms, by metric name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[str, Counter] = {}
        self.histograms: dict[str, Histogram] = {}

    def counter(
        self, name: str, help: str, labels: Labels = (), seed: Iterable[Labels] = ()
    ) -> Counter:
        """The counter ``name``, made on first use (the same object for every caller)."""
        with self._lock:
            if name not in self.counters:
                self.counters[name] = Counter(name, help, labels, seed)
            return self.counters[name]

    def histogram(self, name: str, help: str, buckets: Sequence[float]) -> Histogram:
        with self._lock:
            if name not in self.histograms:
                self.histograms[name] = Histogram(name, help, buckets)
            return self.histograms[name]

    def snapshot(self, process: str) -> dict[str, Any]:
        """Everything counted so far, as the JSON object a telemetry file holds."""
        with self._lock:
            counters, histograms = list(self.counters.values()), list(self.histograms.values())
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "process": process,
            "pid": os.getpid(),
            "written": time.time(),
            "counters": {},
            "histograms": {},
        }
        for c in counters:
            out["counters"][c.name] = {
                "help": c.help,
                "labels": list(c.labels),
                "values": [[list(k), v] for k, v in sorted(c.values().items())],
            }
        for h in histograms:
            counts, total = h.state()
            out["histograms"][h.name] = {
                "help": h.help,
                "buckets": list(h.buckets),
                "counts": counts,
                "sum": total,
            }
        return out


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


def write_snapshot(path: Path, snapshot: dict[str, Any]) -> None:
    """Write atomically: a temporary file in the same directory, renamed over the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):  # a directory someone else made: leave it
        os.chmod(path.parent, DIR_MODE)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)
            json.dump(snapshot, handle, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
    """What one process (``ds01-gateway``, ``ds01-api``) has counted since it started."""

    process: str
    pid: int
    written: float
    counters: dict[str, CounterSnapshot]
    histograms: dict[str, HistogramSnapshot]


def _parse(data: dict[str, Any]) -> ProcessTelemetry:
    counters = {
        name: CounterSnapshot(
            str(c.get("help", "")),
            tuple(str(x) for x in c["labels"]),
            {tuple(str(x) for x in key): float(value) for key, value in c["values"]},
        )
        for name, c in data.get("counters", {}).items()
    }
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
        str(data["process"]), int(data["pid"]), float(data["written"]), counters, histograms
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
