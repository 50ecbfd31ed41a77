"""The provider's last answer, kept in memory and in a file shared by every process.

A provider is asked at most once per ``cache_ttl`` by every process together (the daemon's
cycles, ``ds01-api``, a root ``ds01 carbon status``), and an outage is reported once.

The file (``<state_dir>/carbon-intensity.json``) holds the last good reading, when the
provider was last asked, and the current outage's error and start. A process whose own copy
is due reads the file first (another process may have asked meanwhile) and asks the provider
only when that is due too. A failure keeps the last good reading; its first failure after a
success (or ever) logs a warning and writes an ``accounting.carbon_unavailable`` event, the
first success after it ``accounting.carbon_recovered``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ds01_accounting.carbon.config import CarbonConfig
from ds01_accounting.carbon.http_json import ProviderError
from ds01_accounting.carbon.model import Intensity, parse_time
from ds01_accounting.carbon.providers import FETCHERS, Reading
from ds01_core.api import Event, utc_text

if TYPE_CHECKING:
    from ds01_core.api import Runtime

log = logging.getLogger(__name__)

FILE_NAME = "carbon-intensity.json"
_VERSION = 1
_MEMO_KEY = "ds01_accounting.carbon.cache"
_CREATE = threading.Lock()


@attrs.frozen
class Entry:
    """What is known of one source: the last good reading, and how the last attempt went."""

    key: str
    attempted_at: dt.datetime | None = None
    fetched_at: dt.datetime | None = None
    now: Intensity | None = None
    forecast: tuple[Intensity, ...] = ()
    forecast_error: str | None = None
    error: str | None = None
    failing_since: dt.datetime | None = None

    def due(self, now: dt.datetime, ttl: float) -> bool:
        """True when the source should be asked again (never asked, or the TTL has passed;
        a clock that went back counts as passed)."""
        if self.attempted_at is None:
            return True
        age = (now - self.attempted_at).total_seconds()
        return not 0 <= age < ttl

    def to_json(self) -> dict[str, Any]:
        def when(moment: dt.datetime | None) -> str | None:
            return None if moment is None else utc_text(moment)

        return {
            "version": _VERSION,
            "key": self.key,
            "attempted_at": when(self.attempted_at),
            "fetched_at": when(self.fetched_at),
            "now": None if self.now is None else self.now.to_json(),
            "forecast": [p.to_json() for p in self.forecast],
            "forecast_error": self.forecast_error,
            "error": self.error,
            "failing_since": when(self.failing_since),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        def when(name: str) -> dt.datetime | None:
            value = data.get(name)
            return None if value is None else parse_time(str(value))

        now = data.get("now")
        return cls(
            key=str(data["key"]),
            attempted_at=when("attempted_at"),
            fetched_at=when("fetched_at"),
            now=None if now is None else Intensity.from_json(now),
            forecast=tuple(Intensity.from_json(p) for p in data.get("forecast") or ()),
            forecast_error=data.get("forecast_error"),
            error=data.get("error"),
            failing_since=when("failing_since"),
        )


class _State:
    """One runtime's copy of the entry, and the lock that makes one thread at a time ask."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entry: Entry | None = None


def source_key(cfg: CarbonConfig) -> str:
    """What identifies a source: a changed zone, region or address starts afresh."""
    where = {"electricitymaps": cfg.electricitymaps.zone, "watttime": cfg.watttime.region}.get(
        cfg.source, ""
    )
    extra: str = cfg.watttime.signal_type if cfg.source == "watttime" else ""
    if cfg.source == "electricitymaps":
        extra = cfg.electricitymaps.emission_factor_type
    return "|".join((cfg.source, where, extra, cfg.url()))


def cache_path(runtime: Runtime) -> Path:
    return Path(runtime.config.paths.state_dir) / FILE_NAME


def read_entry(path: Path) -> Entry | None:
    """The file's entry, or None when there is none or it cannot be used (it is only a cache)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != _VERSION:
            return None
        return Entry.from_json(data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("ignoring the carbon-intensity cache %s: %s", path, exc)
        return None


def write_entry(path: Path, entry: Entry) -> None:
    """Replace the file atomically (readers never see half of it); a failure only costs the
    sharing between processes."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".carbon-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(entry.to_json(), handle)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("cannot write the carbon-intensity cache %s: %s", path, exc)


def _record(runtime: Runtime, event: Event) -> None:
    try:
        runtime.events.append(event)
    except OSError as exc:
        log.debug("cannot record %s: %s", event.event_type, exc)


def _succeeded(runtime: Runtime, entry: Entry, reading: Reading, now: dt.datetime) -> Entry:
    if entry.error is not None:
        log.info("carbon intensity: %s answers again", entry.key.split("|")[0])
        _record(
            runtime,
            Event(
                "accounting.carbon_recovered",
                source="accounting",
                details={
                    "source": reading.now.source,
                    "since": utc_text(entry.failing_since or now),
                },
            ),
        )
    if reading.forecast_error and reading.forecast_error != entry.forecast_error:
        log.warning("carbon intensity: no forecast: %s", reading.forecast_error)
    return Entry(
        key=entry.key,
        attempted_at=now,
        fetched_at=now,
        now=reading.now,
        forecast=reading.forecast,
        forecast_error=reading.forecast_error,
    )


def _failed(runtime: Runtime, entry: Entry, error: str, now: dt.datetime, fallback: str) -> Entry:
    if entry.error is None:  # the first failure of this outage: said once
        kept = (
            f"keeping {entry.now.grams_per_kwh:g} g/kWh from {utc_text(entry.fetched_at or now)}"
            if entry.now is not None
            else fallback
        )
        log.warning("carbon intensity unavailable: %s; %s (marked stale)", error, kept)
        _record(
            runtime,
            Event(
                "accounting.carbon_unavailable",
                source="accounting",
                details={"source": entry.key.split("|")[0], "error": error, "kept": kept},
            ),
        )
    return attrs.evolve(
        entry, attempted_at=now, error=error, failing_since=entry.failing_since or now
    )


def current_entry(runtime: Runtime, cfg: CarbonConfig) -> Entry:
    """The entry for the configured provider, asking it when (and only when) it is due.

    Never raises; blocks at most for the provider's requests, each bounded by ``timeout``.
    """
    with _CREATE:
        state = runtime.memo(_MEMO_KEY, _State)
    ttl = float(cfg.cache_ttl)
    key = source_key(cfg)
    with state.lock:
        now = runtime.now()
        entry = state.entry if state.entry is not None and state.entry.key == key else None
        if entry is not None and not entry.due(now, ttl):
            return entry
        path = cache_path(runtime)
        with _across_processes(path):
            return _refresh(runtime, cfg, state, entry, key, path)


@contextlib.contextmanager
def _across_processes(path: Path) -> Iterator[None]:
    """Hold ``<file>.lock`` while checking and asking, so that two processes due at once ask
    once; a process that cannot open it (not root) goes on without."""
    try:
        handle = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115 (held across the yield)
    except OSError:
        yield
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()


def _refresh(
    runtime: Runtime, cfg: CarbonConfig, state: _State, entry: Entry | None, key: str, path: Path
) -> Entry:
    now = runtime.now()
    ttl = float(cfg.cache_ttl)
    stored = read_entry(path)
    newer = entry is None or (
        stored is not None and (stored.attempted_at or now) >= (entry.attempted_at or now)
    )
    if stored is not None and stored.key == key and newer:
        entry = stored
    entry = entry or Entry(key)
    if not entry.due(now, ttl):
        state.entry = entry
        return entry
    if cfg.grams_per_kwh is None:
        fallback = "no figure until it answers (no grams_per_kwh configured)"
    else:
        fallback = f"using the configured {cfg.grams_per_kwh:g} g/kWh"
    try:
        reading = FETCHERS[cfg.source](cfg, now)
    except ProviderError as exc:
        entry = _failed(runtime, entry, str(exc), now, fallback)
    except Exception as exc:  # a bug or an unforeseen answer: still only a stale value
        log.debug("carbon intensity provider failed", exc_info=True)
        entry = _failed(runtime, entry, f"{type(exc).__name__}: {exc}", now, fallback)
    else:
        entry = _succeeded(runtime, entry, reading, now)
    write_entry(path, entry)
    state.entry = entry
    return entry
