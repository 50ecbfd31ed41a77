"""``ds01d``: the lifecycle cycle on a timer, with live configuration reload.

SIGHUP reloads the configuration; a bad file is refused (every problem logged) and the daemon
carries on with the last good one. SIGTERM/SIGINT finish the current cycle and exit.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

import click

from ds01_core import __version__
from ds01_core.config import ConfigError
from ds01_core.model import Event
from ds01_core.pipeline import run_cycle
from ds01_core.plugins import PluginStartupError
from ds01_core.runtime import Runtime, load_runtime

log = logging.getLogger("ds01d")


class Daemon:
    """Owns the current runtime and swaps it for a new one on a successful reload."""

    def __init__(self, config_path: str | None, no_plugins: bool = False):
        self.config_path = config_path
        self.no_plugins = no_plugins
        self.runtime: Runtime = load_runtime(config_path, no_plugins=no_plugins)
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self.wake = threading.Event()

    def reload(self) -> bool:
        """Load the configuration again; keep the running one if the new one is bad."""
        try:
            fresh = load_runtime(self.config_path, no_plugins=self.no_plugins)
        except (ConfigError, PluginStartupError) as exc:
            log.error("configuration reload refused, keeping the last good one:\n%s", exc)
            self.runtime.events.append(
                Event(
                    "config.reload_refused",
                    source="ds01d",
                    details={"source": self.config_path, "error": str(exc)},
                )
            )
            return False
        old, self.runtime = self.runtime, fresh
        old.close()
        log.info("configuration reloaded from %s", fresh.config.source)
        fresh.events.append(
            Event("config.reloaded", source="ds01d", details={"source": fresh.config.source})
        )
        return True

    def cycle(self) -> None:
        report = run_cycle(self.runtime)
        log.info(
            "cycle: %d workloads, %d events, %d actions, %d errors in %.3fs",
            len(report.workloads),
            len(report.events),
            len(report.actions),
            len(report.errors),
            report.seconds,
        )

    def run_forever(self) -> None:
        self.runtime.events.append(
            Event("daemon.started", source="ds01d", details={"version": __version__})
        )
        while not self.stop_requested.is_set():
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()
            self.cycle()
            self.wake.wait(float(self.runtime.config.lifecycle.interval))
            self.wake.clear()
        self.runtime.events.append(Event("daemon.stopped", source="ds01d"))
        self.runtime.close()

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
    try:
        daemon = Daemon(config_path, no_plugins=no_plugins)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    except PluginStartupError as exc:
        click.echo(f"ds01d: cannot start: {exc}", err=True)
        sys.exit(1)
    if once:
        daemon.cycle()
        daemon.runtime.close()
        return
    daemon.install_signal_handlers()
    daemon.run_forever()
