"""The exporter's metrics of ds01's processes: audit events, the gateway, allocation, filesystems.

What the daemon's cycle does not see itself comes from elsewhere, and each source is read in
:meth:`ProcessMetrics.update` (called after every cycle), never at scrape time:

- the audit log, followed from the exporter's start (:mod:`.audit_follow`): events by type,
  ``plugin.failed`` by plugin, notices by channel and outcome, idle/runtime warnings and stops;
- ``ds01-gateway``'s socket, probed with ``GET /_ping`` in a short-lived thread;
- ``statvfs`` of the configured filesystems (in the same thread: a hung mount stalls neither the
  cycle nor a scrape).

:meth:`ProcessMetrics.collect` (at scrape time) turns those counts into metric families and adds
what ``ds01-gateway`` and ``ds01-api`` counted themselves (gateway requests and denials,
allocation latency), read from the small JSON files they write (``read_process_telemetry``),
and the accounting plugin's energy and CO₂ per user and carbon intensity from its own file.
Every label's values are capped (:data:`MAX_LABEL_VALUES`; the rest count as ``other``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ds01_core.api import read_process_telemetry
from ds01_prometheus.accounting_metrics import accounting_families
from ds01_prometheus.audit_follow import AuditFollower

log = logging.getLogger(__name__)

#: distinct values a label keeps; further ones are counted as ``other``
MAX_LABEL_VALUES = 500
OTHER = "other"
#: seconds the gateway has to answer ``/_ping``
PROBE_TIMEOUT = 1.0
#: ``lifecycle.<action>`` events counted as lifecycle actions
LIFECYCLE_ACTIONS = ("idle_warning", "idle_stop", "runtime_warning", "runtime_stop")
NOTICE_OUTCOMES = {"notify.delivered": "delivered", "notify.failed": "failed"}
#: counted by ``ds01-gateway`` / ``ds01-api`` and summed over them here
PROCESS_COUNTERS = ("ds01_gateway_requests_total", "ds01_gateway_denials_total")
PROCESS_HISTOGRAMS = ("ds01_allocation_duration_seconds",)
DOCKER_ROOT = "/var/lib/docker"
PLUGIN = "prometheus"

Key = tuple[str, ...]


class BoundedCounts:
    """Counts by label values, at most ``limit`` distinct sets (then ``other``)."""

    def __init__(self, labels: Sequence[str], seed: Iterable[Key] = (), limit: int = 0):
        self.labels = tuple(labels)
        self.limit = limit or MAX_LABEL_VALUES
        self.values: dict[Key, float] = {tuple(k): 0.0 for k in seed}

    def inc(self, *key: str) -> None:
        if key not in self.values and len(self.values) >= self.limit:
            key = (OTHER,) * len(self.labels)
        self.values[key] = self.values.get(key, 0.0) + 1

    def family(self, name: str, documentation: str) -> CounterMetricFamily:
        family = CounterMetricFamily(name, documentation, labels=self.labels)
        for key, value in sorted(self.values.items()):
            family.add_metric(list(key), value)
        return family


def probe_gateway(path: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether the gateway's socket answers ``GET /_ping`` with any HTTP answer in time (an
    engine that is down is the gateway's 502: the gateway itself is up)."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(timeout)
    try:
        client.connect(path.removeprefix("unix://"))
        client.sendall(b"GET /_ping HTTP/1.1\r\nHost: ds01\r\nConnection: close\r\n\r\n")
        return client.recv(16).startswith(b"HTTP/1.")
    except OSError:
        return False
    finally:
        client.close()


def filesystem_sizes(paths: Iterable[str]) -> dict[str, tuple[float, float]]:
    """``path: (available bytes, size bytes)`` (for an unprivileged user, as ``df`` shows);
    paths that cannot be read are left out."""
    found = {}
    for path in paths:
        try:
            st = os.statvfs(path)
        except OSError:
            continue
        found[path] = (float(st.f_bavail * st.f_frsize), float(st.f_blocks * st.f_frsize))
    return found


class ProcessMetrics:
    """Counts kept by the exporter across cycles, and the families :meth:`collect` builds.

    :param filesystems: the paths whose filesystems are measured; None: the configuration's
        ``plugins.prometheus.filesystems``, unset there: the state dir, the log dir and
        Docker's root dir (``/var/lib/docker``), each where it exists.
    """

    def __init__(self, filesystems: Sequence[str] | None = None, *, from_start: bool = False):
        self.filesystems = None if filesystems is None else list(filesystems)
        self._from_start = from_start
        self._lock = threading.Lock()
        self._follower: AuditFollower | None = None
        self._events = BoundedCounts(("type",))
        self._plugin_errors = BoundedCounts(("plugin",))
        self._notices = BoundedCounts(("channel", "outcome"))
        self._lifecycle = BoundedCounts(("action",), seed=[(a,) for a in LIFECYCLE_ACTIONS])
        self._runtime_dir: str | None = None
        self._gateway_up: bool | None = None
        self._sizes: dict[str, tuple[float, float]] = {}
        self._probe: threading.Thread | None = None

    # -- after each cycle -----------------------------------------------------------------------

    def update(self, runtime: Any, report: Any = None) -> None:
        """Read what was appended to the audit log, and start the gateway and disk probe."""
        config = runtime.config
        path = Path(config.paths.event_log_path)
        if self._follower is None or self._follower.path != path:
            if self._follower is not None:
                self._follower.close()
            # from the end of the log as it is now: counters count from the exporter's start
            self._follower = AuditFollower(path, from_start=self._from_start)
        records = self._follower.read()
        with self._lock:
            for record in records:
                self._count(record)
            self._runtime_dir = str(config.paths.runtime_dir)
        paths = self.filesystems
        if paths is None:  # the section's list (plugins.prometheus.filesystems), or the defaults
            section = runtime.plugin_config(PLUGIN)
            paths = getattr(section, "filesystems", None)
        if paths is None:
            paths = [str(config.paths.state_dir), str(config.paths.log_dir), DOCKER_ROOT]
        if self._probe is None or not self._probe.is_alive():
            self._probe = threading.Thread(
                target=self._run_probe,
                args=(str(config.gateway.socket), paths),
                name="ds01-exporter-probe",
                daemon=True,
            )
            self._probe.start()

    def wait_for_probe(self, timeout: float = 5.0) -> None:
        """Until the probe started by the last :meth:`update` has finished (tests, shutdown)."""
        if self._probe is not None:
            self._probe.join(timeout)

    def close(self) -> None:
        if self._follower is not None:
            self._follower.close()
            self._follower = None

    def _run_probe(self, gateway_socket: str, paths: Sequence[str]) -> None:
        up = probe_gateway(gateway_socket)
        sizes = filesystem_sizes(paths)
        with self._lock:
            self._gateway_up, self._sizes = up, sizes

    def _count(self, record: dict[str, Any]) -> None:
        event_type = record.get("event_type")
        if not isinstance(event_type, str):
            return
        self._events.inc(event_type)
        details = record.get("details")
        details = details if isinstance(details, dict) else {}
        if event_type == "plugin.failed":
            self._plugin_errors.inc(str(details.get("plugin") or record.get("source") or ""))
        elif event_type in NOTICE_OUTCOMES:
            channel = str(record.get("source") or "")
            self._notices.inc(channel, NOTICE_OUTCOMES[event_type])
        elif event_type.startswith("lifecycle."):
            action = event_type.removeprefix("lifecycle.")
            if action in LIFECYCLE_ACTIONS:
                self._lifecycle.inc(action)

    # -- at scrape time ------------------------------------------------------------------------

    def collect(self) -> Iterable[Metric]:
        """The families, from memory and the processes' telemetry files (no other I/O)."""
        with self._lock:
            families: list[Metric] = [
                self._events.family("ds01_events_total", "Audit events written, by type."),
                self._plugin_errors.family(
                    "ds01_plugin_errors_total", "plugin.failed events, by plugin."
                ),
                self._lifecycle.family(
                    "ds01_lifecycle_actions_total",
                    "Idle and runtime-limit warnings and stops, by action.",
                ),
                self._notices.family(
                    "ds01_notices_total", "Notices to users, by channel and outcome."
                ),
            ]
            runtime_dir, up, sizes = self._runtime_dir, self._gateway_up, dict(self._sizes)
        families += process_families(runtime_dir)
        gateway = GaugeMetricFamily(
            "ds01_gateway_up", "Whether the gateway socket answered the daemon's last probe."
        )
        if up is not None:
            gateway.add_metric([], 1.0 if up else 0.0)
        avail = GaugeMetricFamily(
            "ds01_filesystem_avail_bytes", "Bytes available to users.", labels=["path"]
        )
        size = GaugeMetricFamily("ds01_filesystem_size_bytes", "Filesystem size.", labels=["path"])
        for path, (free, total) in sorted(sizes.items()):
            avail.add_metric([path], free)
            size.add_metric([path], total)
        return [*families, gateway, avail, size]


def process_families(runtime_dir: str | None) -> list[Metric]:
    """Gateway requests and denials and allocation latency, summed over the processes'
    telemetry files (each counts since its own start, so a restart is a counter reset), and
    the accounting plugin's energy and CO₂ per user (:mod:`.accounting_metrics`)."""
    snapshots = read_process_telemetry(runtime_dir) if runtime_dir else []
    families: list[Metric] = []
    for name in PROCESS_COUNTERS:
        sums: dict[Key, float] = {}
        labels: Key | None = None
        doc = name
        for snap in snapshots:
            counter = snap.counters.get(name)
            if counter is None or (labels is not None and counter.labels != labels):
                continue
            labels, doc = counter.labels, counter.help or doc
            for key, value in counter.values.items():
                sums[key] = sums.get(key, 0.0) + value
        family = CounterMetricFamily(name, doc, labels=labels or ())
        for key, value in sorted(sums.items())[:MAX_LABEL_VALUES]:
            family.add_metric(list(key), value)
        families.append(family)
    for name in PROCESS_HISTOGRAMS:
        families.append(
            _histogram(name, [s.histograms[name] for s in snapshots if name in s.histograms])
        )
    return families + accounting_families(snapshots)


def _histogram(name: str, parts: Sequence[Any]) -> Metric:
    """One histogram family from the processes' parts with the same buckets as the first."""
    family = HistogramMetricFamily(name, parts[0].help if parts else name)
    if not parts:
        return family
    bounds = parts[0].buckets
    counts = [0] * (len(bounds) + 1)
    total = 0.0
    for part in parts:
        if part.buckets != bounds:
            continue
        counts = [a + b for a, b in zip(counts, part.counts, strict=True)]
        total += part.sum
    cumulative, running = [], 0
    for bound, count in zip([*(repr(float(b)) for b in bounds), "+Inf"], counts, strict=True):
        running += count
        cumulative.append((bound, float(running)))
    family.add_metric([], cumulative, total)
    return family
