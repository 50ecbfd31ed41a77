"""The GPU provider's life in a long-running process: opened on use, retried, released, reopened.

A real server must never run on invented GPUs, and must never hand out a GPU while NVML does not
answer. :class:`GpuAccess` holds the one provider of a runtime and its state:

- **available**: the provider is open and answers.
- **unavailable**: NVML did not start (driver not loaded yet, ``/dev/nvidiactl`` closed to this
  process, a driver upgraded without a reboot). Every access raises
  :class:`GpuUnavailableError`; NVML is tried again on access after a backoff (5 s, doubling to
  5 min). The outage is logged at ERROR once, and recorded as one ``gpu.unavailable`` event for
  all ds01 processes together (an ``O_EXCL`` marker file in the runtime directory decides who
  writes it); the process that first sees NVML answer again removes the marker and writes
  ``gpu.available``.
- **released**: an admin asked every ds01 process to let go of NVML and ``/dev/nvidia*``
  (``ds01 admin gpu release``), so that a MIG-mode switch or a GPU reset can run. The release
  file in the runtime directory says until when; each process closes its session on its next
  access and opens a fresh one (new handles: re-initialised after the reset) once it is over.

A provider that suddenly lists none of the GPUs it listed before (all lost, NVML uninitialised
under it) is closed and opened afresh on the next access.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ds01_core.domain.gpu.base import GpuProvider, GpuProviderError
from ds01_core.domain.model import Event, Gpu, GpuProcess, GpuSlot, utc_text, utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_RETRY = 5.0
MAX_RETRY = 300.0
RELEASE_FILE = "gpu-release.json"
OUTAGE_FILE = "gpu-outage.json"
#: seconds between two looks at the release file while NVML is open
RELEASE_POLL = 2.0


class GpuUnavailableError(GpuProviderError):
    """The GPUs cannot be used now: NVML does not answer, or an admin released them.

    Nothing may be allocated while this is raised; the message says why and when ds01 tries again.
    """


class _Watched:
    """The open provider, passed through; notices when every GPU it listed has stopped answering."""

    def __init__(self, provider: GpuProvider, on_all_lost: Callable[[], None]):
        self.provider = provider
        self.name = provider.name
        self.description = provider.description
        self._on_all_lost = on_all_lost
        self._seen = 0

    def _saw(self, count: int) -> None:
        if count == 0 and self._seen > 0:
            self._on_all_lost()
        self._seen = max(self._seen, count)

    def gpus(self) -> list[Gpu]:
        found = self._listed(self.provider.gpus)
        self._saw(len(found))
        return found

    def slots(self) -> list[GpuSlot]:
        found = self._listed(self.provider.slots)
        self._saw(len(found))
        return found

    def _listed(self, listing: Callable[[], list[T]]) -> list[T]:
        try:
            return listing()
        except GpuProviderError:  # the session itself failed: open a new one next time
            self._on_all_lost()
            raise

    def processes(self) -> list[GpuProcess]:
        return self.provider.processes()

    def close(self) -> None:
        self.provider.close()

    def __getattr__(self, name: str) -> Any:
        # the provider's extras (``mig_utilization``, the simulated ``host``) as they are
        return getattr(self.provider, name)


class GpuAccess:
    """One runtime's GPU provider and whether it may be used now (see the module's docstring).

    :param opener: opens the provider; :class:`GpuUnavailableError` means "try again later",
        any other :class:`GpuProviderError` (a broken topology file) is passed on as it is.
    :param runtime_dir: where the release file and the outage marker live (``paths.runtime_dir``,
        shared by every ds01 process, cleared by a reboot).
    :param report: writes an audit event (``gpu.unavailable``, ``gpu.available``).
    """

    def __init__(
        self,
        opener: Callable[[], GpuProvider],
        runtime_dir: str | Path,
        report: Callable[[Event], None] = lambda _event: None,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = utcnow,
    ):
        self._opener = opener
        self.runtime_dir = Path(runtime_dir)
        self._report = report
        self._clock = clock
        self._now = now
        self._lock = threading.RLock()
        self._provider: _Watched | None = None
        self._error: str | None = None
        self._since: dt.datetime | None = None
        self._delay = 0.0
        self._next_try = 0.0
        self._attempts = 0
        self._stale = False
        self._marked = False  # this outage is on record in the marker file
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- the provider ---------------------------------------------------------------------------

    def provider(self) -> GpuProvider:
        """The open provider; :class:`GpuUnavailableError` while unavailable or released."""
        with self._lock:
            release = read_release(self.runtime_dir, self._now())
            if release is not None:
                self._close(f"released by {release.get('by') or 'an admin'}")
                raise GpuUnavailableError(release_message(release))
            if self._stale:
                self._stale = False
                self._close("every GPU stopped answering: re-initialising NVML")
            if self._provider is not None:
                return self._provider
            if (
                self._error is not None
                and self._clock() < self._next_try
                and not self._outage_over()
            ):
                raise GpuUnavailableError(self.message())
            return self._open()

    def _open(self) -> GpuProvider:
        self._attempts += 1
        try:
            opened = self._opener()
        except GpuUnavailableError as exc:
            self._failed(str(exc))
            raise GpuUnavailableError(self.message()) from exc
        self._provider = _Watched(opened, self._all_lost)
        self._recovered()
        if opened.name != "simulated":  # the simulated host holds no device to let go of
            self._watch_releases()
        return self._provider

    def _watch_releases(self) -> None:
        """Let go of NVML within :data:`RELEASE_POLL` seconds of a release, also in a process
        that does not use the GPUs meanwhile (the API server, the gateway between requests)."""
        if self._watcher is not None and self._watcher.is_alive():
            return
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="gpu-release-watch", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        path = self.runtime_dir / RELEASE_FILE
        while not self._stop.wait(RELEASE_POLL):
            if not path.exists():
                continue
            with self._lock:
                release = read_release(self.runtime_dir, self._now())
                if release is None or self._provider is None:
                    continue
                self._close(f"released by {release.get('by') or 'an admin'}")
            return  # the next open starts a new watcher

    def _failed(self, error: str) -> None:
        first = self._error is None
        self._delay = FIRST_RETRY if first else min(self._delay * 2, MAX_RETRY)
        self._next_try = self._clock() + self._delay
        self._error = error
        if first:
            self._since = self._now()
            log.error("%s", self.message())
        else:
            log.debug("%s", self.message())
        if first or self._outage_over():  # (again, when another process had seen NVML back)
            self._mark_outage(error)

    def _recovered(self) -> None:
        if self._error is not None:
            log.warning(
                "GPUs available again after %d attempt(s) since %s: %s",
                self._attempts,
                utc_text(self._since or self._now()),
                self.description(),
            )
        self._error, self._since, self._delay, self._attempts = None, None, 0.0, 0
        self._marked = False
        self._clear_outage()

    def _all_lost(self) -> None:
        log.warning("every GPU stopped answering (lost, or NVML uninitialised): reopening NVML")
        with self._lock:
            self._stale = True

    def _close(self, why: str) -> None:
        if self._provider is None:
            return
        provider, self._provider = self._provider, None
        log.warning("closing the GPU provider: %s", why)
        try:
            provider.close()
        except Exception as exc:
            log.warning("closing the GPU provider failed: %s", exc)

    def close(self) -> None:
        """End the provider's session (a reload, the process's end)."""
        self._stop.set()
        with self._lock:
            if self._provider is not None:
                provider, self._provider = self._provider, None
                provider.close()

    # -- what it says -----------------------------------------------------------------------------

    def description(self) -> str:
        return self._provider.description if self._provider is not None else "not open"

    def message(self) -> str:
        """The refusal while NVML does not answer, with when ds01 tries again."""
        wait = max(0.0, self._next_try - self._clock())
        return (
            f"GPUs unavailable: {self._error}; ds01 retries in {wait:.0f} s "
            f"(every {FIRST_RETRY:.0f} s, doubling up to {MAX_RETRY / 60:.0f} min), "
            "see `ds01 gpu status` and `ds01 admin doctor`"
        )

    def state(self) -> dict[str, Any]:
        """``available``, ``unavailable`` (the error, since when, the next retry), ``released``
        (by whom, until when) or ``not_open`` (not asked for yet); opens nothing."""
        with self._lock:
            release = read_release(self.runtime_dir, self._now())
            if release is not None:
                return {
                    "state": "released",
                    "error": release_message(release),
                    "since": release.get("at"),
                    "retry_in": None,
                    "release": release,
                }
            if self._error is None:
                state = "available" if self._provider is not None else "not_open"
                return {"state": state, "error": None, "since": None, "retry_in": None}
            return {
                "state": "unavailable",
                "error": self._error,
                "since": utc_text(self._since) if self._since else None,
                "retry_in": round(max(0.0, self._next_try - self._clock()), 1),
                "attempts": self._attempts,
            }

    # -- one event per outage for all processes -------------------------------------------------

    def _outage_over(self) -> bool:
        """Another ds01 process reached NVML again (it removed the marker): retry now rather
        than at the end of this process's backoff."""
        return self._marked and not (self.runtime_dir / OUTAGE_FILE).exists()

    def _mark_outage(self, error: str) -> None:
        marker = self.runtime_dir / OUTAGE_FILE
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            self._marked = True
            return  # another ds01 process reported this outage already
        except OSError as exc:
            log.warning("cannot record the GPU outage in %s: %s", marker, exc)
        else:
            self._marked = True
            with os.fdopen(fd, "w") as out:
                json.dump({"since": utc_text(self._now()), "error": error, "pid": os.getpid()}, out)
        self._report(Event("gpu.unavailable", source="gpu", details={"error": error}))

    def _clear_outage(self) -> None:
        marker = self.runtime_dir / OUTAGE_FILE
        try:
            began = json.loads(marker.read_text()).get("since")
        except (OSError, ValueError, AttributeError):
            began = None
        try:
            marker.unlink()
        except FileNotFoundError:
            return  # no outage on record, or another process reported the recovery
        except OSError as exc:
            log.warning("cannot remove the GPU outage marker %s: %s", marker, exc)
            return
        self._report(
            Event(
                "gpu.available",
                source="gpu",
                details={"since": began, "provider": self.description()},
            )
        )


# -- the admin's release ----------------------------------------------------------------------------


def read_release(runtime_dir: Path, now: dt.datetime) -> dict[str, Any] | None:
    """The release in force (``ds01 admin gpu release``), or None when there is none or it ran out."""
    try:
        data = json.loads((runtime_dir / RELEASE_FILE).read_text())
        until = dt.datetime.fromisoformat(str(data["until"]).replace("Z", "+00:00"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # an unreadable release file keeps the GPUs released: the admin meant to release them
        log.warning("unreadable GPU release file: %s", exc)
        return {"until": None, "by": None, "reason": f"unreadable release file: {exc}"}
    if not isinstance(data, dict) or until <= now:
        return None
    return data


def release_message(release: dict[str, Any]) -> str:
    until = release.get("until") or "`ds01 admin gpu resume`"
    reason = f" ({release['reason']})" if release.get("reason") else ""
    return (
        f"GPUs unavailable: released by {release.get('by') or 'an admin'}{reason} until {until}, "
        "for a MIG change or a GPU reset; `ds01 admin gpu resume` ends it"
    )


def write_release(runtime_dir: Path, until: dt.datetime, by: str, reason: str) -> dict[str, Any]:
    """Record a release (atomically: a reader sees the old file or the new one)."""
    data = {"until": utc_text(until), "by": by, "reason": reason, "at": utc_text(utcnow())}
    runtime_dir.mkdir(parents=True, exist_ok=True)
    path = runtime_dir / RELEASE_FILE
    tmp = path.with_name(f".{RELEASE_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
    return data


def end_release(runtime_dir: Path) -> bool:
    """Remove the release file; False when there was none."""
    try:
        (runtime_dir / RELEASE_FILE).unlink()
    except FileNotFoundError:
        return False
    return True
