"""``ds01-api``: the local API socket as its own process.

Separate from ``ds01d`` on purpose, like the gateway: every user's ``ds01`` command depends on
it, so it must stay up while the daemon reloads, restarts or runs a slow cycle. Under systemd
it is socket-activated (``ds01-api.socket``), so a restart of this service queues connections
instead of refusing them. SIGHUP re-reads the configuration (a bad file is refused and the last
good one kept); SIGTERM stops accepting and exits.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

import click

from ds01_core.api_socket.server import ApiServer, ThreadedRuntime
from ds01_core.config import ConfigError
from ds01_core.plugins import PluginStartupError
from ds01_core.runtime import load_runtime
from ds01_core.systemd_sockets import SocketActivationError, inherited_unix_socket

log = logging.getLogger("ds01.api")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH", help="Configuration file.")
@click.option("--socket", "socket_path", metavar="PATH", help="Listen here (api.socket).")
@click.option("--debug", is_flag=True, help="Log debug messages.")
def main(config_path: str | None, socket_path: str | None, debug: bool) -> None:
    """Serve ds01's operations to local users, each acting as themselves."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        runtime = load_runtime(config_path, runtime_class=ThreadedRuntime)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    except PluginStartupError as exc:
        click.echo(f"ds01-api: cannot start: {exc}", err=True)
        sys.exit(1)
    server = ApiServer(runtime, socket_path)
    try:
        listening = inherited_unix_socket(server.socket_path)
    except SocketActivationError as exc:
        click.echo(f"ds01-api: {exc}", err=True)
        sys.exit(1)
    try:
        server.bind(listening)
    except OSError as exc:
        click.echo(f"ds01-api: cannot listen on {server.socket_path}: {exc}", err=True)
        sys.exit(1)

    def reload(_signum: int, _frame: FrameType | None) -> None:
        def work() -> None:
            try:
                server.reload(load_runtime(config_path, runtime_class=ThreadedRuntime))
                log.info("configuration reloaded")
            except (ConfigError, PluginStartupError) as exc:
                log.error("configuration refused, keeping the last good one:\n%s", exc)
                server.event("config.reload_refused", None, {"error": str(exc)})

        threading.Thread(target=work, daemon=True).start()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGHUP, reload)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.event(
        "api.started", None, {"socket": server.socket_path, "inherited": listening is not None}
    )
    server.serve()
