"""What a plugin may run inside ``ds01d`` beside the cycle: a listener, a watcher, a sender."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ds01_core.domain.model import Event
from ds01_core.framework.hooks import PLUGIN_FAILED

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

log = logging.getLogger(__name__)


@runtime_checkable
class DaemonService(Protocol):
    """Something ``ds01d`` starts after loading its runtime and stops before it exits or reloads.

    ``start`` must return promptly (run the work in a thread of the service's own) and raise if
    the service cannot run (an address in use); ``stop`` must end that work within a few seconds
    and may be called on a service whose ``start`` failed. ``name`` is for logs and events.
    """

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


def start_services(runtime: Runtime) -> list[DaemonService]:
    """Start every plugin's daemon services; one that cannot start is logged, written to the
    audit log as ``plugin.failed`` and left out, and the others run."""
    collected = runtime.hooks.daemon_services(runtime)
    for failure in collected.failures:
        runtime.events.append(failure.event())
    running: list[DaemonService] = []
    for service in collected:
        name = getattr(service, "name", type(service).__name__)
        try:
            service.start()
        except Exception as exc:
            log.error("daemon service %s cannot start: %s", name, exc)
            runtime.events.append(
                Event(
                    PLUGIN_FAILED,
                    None,
                    "ds01d",
                    {"plugin": name, "hook": "daemon_services", "error": f"cannot start: {exc}"},
                )
            )
            _stop(service)
            continue
        log.info("daemon service %s started", name)
        running.append(service)
    return running


def stop_services(services: list[DaemonService]) -> None:
    """Stop the services ``start_services`` started, the last started first."""
    for service in reversed(services):
        _stop(service)
    services.clear()


def _stop(service: DaemonService) -> None:
    try:
        service.stop()
    except Exception as exc:
        log.error("daemon service %s did not stop cleanly: %s", getattr(service, "name", "?"), exc)
