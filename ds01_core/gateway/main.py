"""``ds01-gateway``: the Docker API gateway as its own process.

Separate from ``ds01d`` on purpose: every user's ``docker`` command goes through it, so it must
stay up while the daemon reloads, restarts or runs a slow cycle, and a fault in one must not
take down the other. SIGHUP re-reads the configuration (a bad file is refused and the last good
one kept); SIGTERM stops accepting and exits.

Started by ``ds01-gateway.socket`` (systemd socket activation), it serves the socket systemd
holds, so the socket stays while the gateway restarts; started any other way, it binds
``gateway.socket`` itself.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

import click

from ds01_core.config import ConfigError
from ds01_core.gateway.server import Gateway
from ds01_core.model import Event
from ds01_core.plugins import PluginStartupError
from ds01_core.runtime import load_runtime
from ds01_core.systemd_sockets import SocketActivationError, inherited_unix_socket

log = logging.getLogger("ds01.gateway")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH", help="Configuration file.")
@click.option("--socket", "socket_path", metavar="PATH", help="Listen here (gateway.socket).")
@click.option("--upstream", metavar="PATH", help="The engine's socket (gateway.upstream).")
@click.option("--debug", is_flag=True, help="Log debug messages.")
def main(
    config_path: str | None, socket_path: str | None, upstream: str | None, debug: bool
) -> None:
    """Serve the Docker Engine API to users, each restricted to their own containers."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        runtime = load_runtime(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    except PluginStartupError as exc:
        click.echo(f"ds01-gateway: cannot start: {exc}", err=True)
        sys.exit(1)
    gateway = Gateway(runtime, socket_path=socket_path, upstream=upstream)
    try:
        listening = inherited_unix_socket(gateway.socket_path)
    except SocketActivationError as exc:
        click.echo(f"ds01-gateway: cannot start: {exc}", err=True)
        sys.exit(1)
    try:
        gateway.bind(listening)
    except OSError as exc:
        click.echo(f"ds01-gateway: cannot listen on {gateway.socket_path}: {exc}", err=True)
        sys.exit(1)

    def reload(_signum: int, _frame: FrameType | None) -> None:
        def work() -> None:
            try:
                gateway.reload(load_runtime(config_path))
                log.info("configuration reloaded")
            except (ConfigError, PluginStartupError) as exc:
                log.error("configuration refused, keeping the last good one:\n%s", exc)
                gateway.event("config.reload_refused", None, {"error": str(exc)})

        threading.Thread(target=work, daemon=True).start()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=gateway.shutdown, daemon=True).start()

    signal.signal(signal.SIGHUP, reload)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    runtime.events.append(
        Event(
            "gateway.started",
            None,
            "gateway",
            {"socket": gateway.socket_path, "socket_activated": listening is not None},
        )
    )
    gateway.serve()
