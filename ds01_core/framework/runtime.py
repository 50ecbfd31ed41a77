"""One process's view of ds01: its configuration, plugins, and lazily opened resources.

Hooks receive the :class:`Runtime` rather than globals, so tests build one per test and the
daemon swaps in a new configuration on reload without touching module state.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ds01_core.domain.audit_log import EventLog
from ds01_core.domain.config import (
    DEFAULT_CONFIG_PATH,
    Config,
    ConfigError,
    build_config,
    plugin_selection,
    read_config_file,
    resolve_config_path,
)
from ds01_core.domain.gpu import GpuAccess, open_provider
from ds01_core.domain.model import Event
from ds01_core.domain.state.store import StateStore
from ds01_core.framework.manager import EntryPointSource, PluginHost, make_plugin_host

if TYPE_CHECKING:
    from ds01_core.domain.docker_engine import DockerAdapter
    from ds01_core.domain.gpu.base import GpuProvider

log = logging.getLogger(__name__)
T = TypeVar("T")


class Runtime:
    """Configuration + plugins + state store + event log + GPU provider + Docker, for one process."""

    def __init__(self, config: Config, plugins: PluginHost):
        self.config = config
        self.plugins = plugins
        self.hooks = plugins.hooks
        self._memo: dict[str, Any] = {}

    def memo(self, key: str, factory: Callable[[], T]) -> T:
        """Per-runtime state for a plugin (caches, counters), created on first use.

        Built-in plugins are modules shared by every runtime in a process; keeping their state
        here gives each runtime (each test, each daemon reload) its own.
        """
        if key not in self._memo:
            self._memo[key] = factory()
        return self._memo[key]

    def memoized(self, key: str) -> Any:
        """What :meth:`memo` holds under ``key``, or None; creates nothing."""
        return self._memo.get(key)

    # -- resources, opened on first use -------------------------------------------------------

    @cached_property
    def events(self) -> EventLog:
        return EventLog(self.config.paths.event_log_path)

    @cached_property
    def state(self) -> StateStore:
        return StateStore(self.config.paths.state_db_path)

    @cached_property
    def gpu_access(self) -> GpuAccess:
        """The GPU provider's state: open, unavailable (retried with backoff) or released."""
        return GpuAccess(
            lambda: open_provider(self.config.gpu),
            self.config.paths.runtime_dir,
            report=self._report_gpu,
        )

    @property
    def gpu(self) -> GpuProvider:
        """The open GPU provider.

        :raises GpuUnavailableError: NVML does not answer (tried again after a backoff) or an
            admin released the GPUs; nothing is allocated meanwhile.
        """
        injected: GpuProvider | None = self.__dict__.get("gpu")
        if injected is not None:  # a test's provider, set with use_gpu_provider
            return injected
        return self.gpu_access.provider()

    def use_gpu_provider(self, provider: GpuProvider) -> None:
        """Use ``provider`` as it is, never retried nor released (tests); closed with the runtime."""
        self.__dict__["gpu"] = provider

    def gpu_state(self) -> dict[str, Any]:
        """``available``, ``unavailable`` (the error, since when, the next retry) or
        ``released`` (by whom, until when); opens nothing."""
        if "gpu" in self.__dict__:
            return {"state": "available", "error": None, "since": None, "retry_in": None}
        return self.gpu_access.state()

    def _report_gpu(self, event: Event) -> None:
        try:
            self.events.append(event)
        except OSError as exc:
            log.error("cannot record %s: %s", event.event_type, exc)

    @cached_property
    def docker(self) -> DockerAdapter:
        # lazy: the docker SDK costs ~130 ms at every CLI start-up; only a command that uses it pays
        from ds01_core.domain.docker_engine import DockerAdapter

        return DockerAdapter.from_env()

    def plugin_config(self, name: str) -> Any:
        """A plugin's own configuration section (``plugins.<name>`` in the file)."""
        return self.config.plugins.sections.get(name)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def close(self) -> None:
        for name in ("state", "gpu", "gpu_access", "docker"):
            resource = self.__dict__.pop(name, None)
            if resource is not None and hasattr(resource, "close"):
                resource.close()


def load_runtime(
    config_path: str | None = None,
    *,
    no_plugins: bool = False,
    entry_points: EntryPointSource | None = None,
    extra_plugins: tuple[tuple[str, object], ...] = (),
    configure: bool = True,
    runtime_class: type[Runtime] = Runtime,
) -> Runtime:
    """Read the configuration, build the plugin manager, validate, and call ``configure``.

    A missing file at the *default* path means "no file yet": built-in defaults apply and a
    warning is logged. A missing file named explicitly (``--config``, ``DS01_CONFIG``) is an
    error, since the admin meant a file.
    """
    path = resolve_config_path(config_path)
    explicit = bool(config_path or os.environ.get("DS01_CONFIG"))
    if not explicit and path == DEFAULT_CONFIG_PATH and not Path(path).exists():
        log.warning("no configuration at %s: using built-in defaults", path)
        data: dict[str, Any] = {}
        source = None
    else:
        data = read_config_file(path)
        source = path
    disabled, required, order = plugin_selection(data)
    host = make_plugin_host(
        disabled=disabled,
        required=required,
        order=order,
        entry_points=entry_points,
        extra=extra_plugins,
        load_entry_points=not no_plugins,
    )
    config = build_config(
        data,
        sections=host.config_sections(),
        source=source,
        ignore_sections=host.inactive_names(),
    )
    runtime = runtime_class(config, host)
    if configure:
        runtime.hooks.configure(runtime)
    return runtime


__all__ = ["ConfigError", "Runtime", "load_runtime"]
