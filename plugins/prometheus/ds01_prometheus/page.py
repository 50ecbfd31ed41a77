"""The ``/metrics`` page: the snapshot's part rendered once per snapshot and encoding, reused.

Rendering ~1,200 samples with prometheus_client takes ~10-20 ms; doing it for every scrape
would miss the exporter's budget (a scrape under 10 ms). The snapshot does not change between
cycles, so its text is rendered once per encoding — ahead of the next scrape by the server's
pre-render thread — and each scrape renders only the few samples that change with every scrape
(its own duration, the process telemetry) and appends them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

EOF_LINE = b"# EOF\n"
#: what Prometheus 2.x asks for first, and the plain text format: rendered ahead of scrapes
PRERENDERED = ("application/openmetrics-text;version=1.0.0", "")

Encoder = Callable[[CollectorRegistry], bytes]


class _Fixed(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = tuple(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def encode(encoder: Encoder, families: Iterable[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))
    return encoder(registry)


def join(content_type: str, fixed: bytes, varying: bytes) -> bytes:
    """Two renderings as one page (OpenMetrics: one ``# EOF``, at the end)."""
    if content_type.startswith("application/openmetrics-text") and fixed.endswith(EOF_LINE):
        fixed = fixed[: -len(EOF_LINE)]
    return fixed + varying


class PageCache:
    """The rendered snapshot per content type, for one snapshot at a time."""

    def __init__(self) -> None:
        self._key: object = None
        self._pages: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def fixed_part(
        self, snapshot: tuple[Metric, ...], encoder: Encoder, content_type: str
    ) -> bytes:
        """The snapshot rendered with ``encoder``: from the cache when this snapshot has been."""
        with self._lock:
            if self._key is snapshot and content_type in self._pages:
                return self._pages[content_type]
        page = encode(encoder, snapshot)  # outside the lock: scrapes never wait on each other
        with self._lock:
            if self._key is not snapshot:
                self._key, self._pages = snapshot, {}
            self._pages[content_type] = page
        return page

    def prerender(self, snapshot: tuple[Metric, ...]) -> None:
        """Render ``snapshot`` in the encodings scrapers ask for most, before they ask."""
        for accept in PRERENDERED:
            encoder, content_type = choose_encoder(accept)
            self.fixed_part(snapshot, encoder, content_type)
