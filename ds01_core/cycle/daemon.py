"""``ds01d``: the lifecycle cycle on a timer and on Docker events, with live configuration reload.

- A full cycle (its steps in the order ``cycle:`` gives, see docs/cycle.md) runs every
  ``lifecycle.interval``; a Docker container event (create, start, die, destroy, …) triggers a
  partial cycle (the steps marked partial: detect and the reconciling ones) within a second.
- SIGHUP reloads the configuration; a bad file is refused (every problem logged) and the daemon
  carries on with the last good one. SIGTERM/SIGINT finish the current cycle and exit.
- The Docker engine going away is logged and retried; an NVML error is logged and the cycle
  carries on with what it has.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from typing import Any

import click

from ds01_core import __version__
from ds01_core.cycle.detection.inventory import read_snapshot, write_snapshot
from ds01_core.cycle.detection.shared import docker_containers, forget_containers
from ds01_core.cycle.pipeline import CycleReport, cycle_plan, run_cycle
from ds01_core.domain.config import ConfigError
from ds01_core.domain.container_facts import classify_origin, container_name, resolve_owner
from ds01_core.domain.docker_engine import DockerAdapter, DockerError
from ds01_core.domain.model import Event, Workload
from ds01_core.framework.daemon_services import DaemonService, start_services, stop_services
from ds01_core.framework.manager import PluginStartupError
from ds01_core.framework.runtime import Runtime, load_runtime
from ds01_core.framework.startup import require_writable, starting

log = logging.getLogger("ds01d")

#: Docker container actions that change the inventory, and the audit event each one becomes.
CONTAINER_ACTIONS = {
    "create": "container.created",
    "start": "container.started",
    "die": "container.stopped",
    "destroy": "container.removed",
    "pause": "container.paused",
    "unpause": "container.unpaused",
    "rename": "container.renamed",
}
RECONNECT_DELAYS = (0.5, 1, 2, 5, 10)
SETTLE_SECONDS = 1.0


class Daemon:
    """Owns the current runtime, the previous inventory, and the Docker event watcher."""

    def __init__(self, config_path: str | None, no_plugins: bool = False):
        self.config_path = config_path
        self.no_plugins = no_plugins
        self.runtime: Runtime = load_runtime(config_path, no_plugins=no_plugins)
        try:
            cycle_plan(self.runtime)  # a ``cycle:`` section that does not fit is refused now
        except ConfigError:
            self.runtime.close()
            raise
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self.wake = threading.Event()
        self._lock = threading.Lock()
        self._dirty: set[str] = set()  # containers Docker told us about since the last cycle
        self.previous: list[Workload] | None = self._load_previous()
        self.engine_up: bool | None = None
        self.cycles = 0
        self.services: list[DaemonService] = []  # plugins' (daemon_services), while running
        self.serving = False  # run_forever started the services (``--once`` does not)

    def _load_previous(self) -> list[Workload] | None:
        try:
            return read_snapshot(self.runtime.config.paths.snapshot_path)[1]
        except FileNotFoundError:
            return None
        except Exception as exc:
            log.warning("ignoring unreadable inventory snapshot: %s", exc)
            return None

    # -- configuration ----------------------------------------------------------------------

    def reload(self) -> bool:
        """Load the configuration again; keep the running one if the new one is bad."""
        try:
            fresh = load_runtime(self.config_path, no_plugins=self.no_plugins)
        except (ConfigError, PluginStartupError) as exc:
            return self._refused(exc)
        try:
            cycle_plan(fresh)
        except ConfigError as exc:
            fresh.close()
            return self._refused(exc)
        old, self.runtime = self.runtime, fresh
        stop_services(self.services)
        old.close()
        if self.serving:
            self.services = start_services(fresh)
        log.info("configuration reloaded from %s", fresh.config.source)
        fresh.events.append(
            Event("config.reloaded", source="ds01d", details={"source": fresh.config.source})
        )
        return True

    def _refused(self, exc: Exception) -> bool:
        """Log a reload that was refused; the running configuration stays."""
        log.error("configuration reload refused, keeping the last good one:\n%s", exc)
        self.runtime.events.append(
            Event(
                "config.reload_refused",
                source="ds01d",
                details={"source": self.config_path, "error": str(exc)},
            )
        )
        return False

    # -- cycles -----------------------------------------------------------------------------

    def cycle(self, *, partial: bool = False) -> CycleReport:
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        forget_containers(self.runtime, dirty)  # "" (after an engine outage): everything
        report = run_cycle(self.runtime, previous=self.previous, partial=partial)
        self.previous = report.workloads
        try:
            write_snapshot(
                self.runtime.config.paths.snapshot_path, report.workloads, self.runtime.now()
            )
        except OSError as exc:
            log.error("cannot write the inventory snapshot: %s", exc)
        self.cycles += 1
        log.info(
            "%s cycle: %d workloads, %d events, %d actions, %d errors in %.3fs",
            "partial" if partial else "full",
            len(report.workloads),
            len(report.events),
            len(report.actions),
            len(report.errors),
            report.seconds,
        )
        return report

    def run_forever(self) -> None:
        self.runtime.events.append(
            Event("daemon.started", source="ds01d", details={"version": __version__})
        )
        self.serving = True
        self.services = start_services(self.runtime)
        watcher = threading.Thread(target=self.watch_docker, name="docker-events", daemon=True)
        watcher.start()
        next_full = 0.0
        settle_at: float | None = None
        while not self.stop_requested.is_set():
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()
            now = time.monotonic()
            if now >= next_full:
                self.cycle()
                next_full = time.monotonic() + float(self.runtime.config.lifecycle.interval)
                settle_at = None
            elif self._dirty:
                self.cycle(partial=True)
                # one more look a moment later: the engine's listing can lag its own events
                settle_at = time.monotonic() + SETTLE_SECONDS
            elif settle_at is not None and now >= settle_at:
                self.cycle(partial=True)
                settle_at = None
            deadline = min(next_full, settle_at if settle_at is not None else next_full)
            self.wake.wait(max(0.0, deadline - time.monotonic()))
            self.wake.clear()
        stop_services(self.services)
        self.runtime.events.append(Event("daemon.stopped", source="ds01d"))
        self.runtime.close()

    # -- Docker events ----------------------------------------------------------------------

    def _owner_of(self, engine: DockerAdapter, container_id: str) -> tuple[str, str]:
        known = docker_containers(self.runtime).owner_of(container_id)
        if known is not None:
            return known[0], known[1]
        inspect = engine.inspect_container(container_id)
        if inspect is None:
            return "unknown", "unknown"
        labels = dict((inspect.get("Config") or {}).get("Labels") or {})
        name = container_name(inspect)
        owner = resolve_owner(
            name,
            labels,
            inspect.get("Mounts") or [],
            None,
            home_roots=self.runtime.config.detection.home_roots,
        )
        return owner.user, classify_origin(labels, name)

    def handle_docker_event(self, engine: DockerAdapter, event: dict[str, Any]) -> None:
        """Log one container event with its owner and origin, and schedule a partial cycle."""
        if event.get("Type") != "container":
            return
        action = str(event.get("Action") or event.get("status") or "").split(":", 1)[0]
        event_type = CONTAINER_ACTIONS.get(action)
        if event_type is None:
            return
        actor = event.get("Actor") or {}
        container_id = actor.get("ID") or event.get("id") or ""
        attributes = dict(actor.get("Attributes") or {})
        owner, origin = self._owner_of(engine, container_id)
        details = {
            "container": attributes.get("name"),
            "container_id": container_id,
            "image": attributes.get("image"),
            "origin": origin,
            "owner": owner,
        }
        if action == "die":
            details["exit_code"] = attributes.get("exitCode")
        self.runtime.events.append(Event(event_type, owner, "docker", details))
        with self._lock:
            self._dirty.add(container_id)
        self.wake.set()

    def watch_docker(self) -> None:
        """Follow the engine's event stream for as long as the daemon runs, reconnecting."""
        attempt = 0
        while not self.stop_requested.is_set():
            engine = DockerAdapter.from_env()
            try:
                with engine.events(filters={"type": ["container"]}) as stream:
                    if self.engine_up is not True:
                        log.info("following Docker events")
                        if self.engine_up is False:
                            self.runtime.events.append(
                                Event("daemon.docker_reconnected", source="ds01d")
                            )
                            with self._lock:
                                self._dirty.add("")  # refresh everything after an outage
                            self.wake.set()
                    self.engine_up = True
                    attempt = 0
                    for event in stream:
                        if self.stop_requested.is_set():
                            return
                        self.handle_docker_event(engine, event)
                raise DockerError("event stream ended (engine restarting?)")
            except DockerError as exc:
                if self.engine_up is not False:
                    log.error("Docker engine unreachable, retrying: %s", exc)
                    self.runtime.events.append(
                        Event(
                            "daemon.docker_unreachable", source="ds01d", details={"error": str(exc)}
                        )
                    )
                self.engine_up = False
            except Exception:
                log.exception("unexpected error following Docker events")
                self.engine_up = False
            finally:
                engine.close()
            self.stop_requested.wait(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
            attempt += 1

    def install_signal_handlers(self) -> None:
        def on_hup(_signum: int, _frame: object) -> None:
            self.reload_requested.set()
            self.wake.set()

        def on_stop(_signum: int, _frame: object) -> None:
            self.stop_requested.set()
            self.wake.set()

        signal.signal(signal.SIGHUP, on_hup)
        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ds01d")
@click.option("--config", "config_path", envvar="DS01_CONFIG", metavar="FILE")
@click.option("--once", is_flag=True, help="Run one cycle and exit.")
@click.option("--no-plugins", is_flag=True, help="Load only the built-in plugins.")
@click.option("--debug", is_flag=True, help="Log debug messages.")
def main(config_path: str | None, once: bool, no_plugins: bool, debug: bool) -> None:
    """The ds01 daemon: detects workloads, reconciles state, enforces limits."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    with starting("ds01d"):
        daemon = Daemon(config_path, no_plugins=no_plugins)
        require_writable(daemon.runtime.config)
    if once:
        report = daemon.cycle()
        daemon.runtime.close()
        if report.errors:
            for error in report.errors:
                click.echo(f"ds01d: {error}", err=True)
            sys.exit(1)
        return
    daemon.install_signal_handlers()
    daemon.run_forever()
