"""``ds01-api``: the local API socket as its own process.

Separate from ``ds01d`` on purpose, like the gateway: every user's ``ds01`` command depends on
it, so it must stay up while the daemon reloads, restarts or runs a slow cycle. Under systemd
it is socket-activated (``ds01-api.socket``), so a restart of this service queues connections
instead of refusing them. SIGHUP re-reads the configuration (a bad file is refused and the last
good one kept); SIGTERM stops accepting and exits.
"""

from __future__ import annotations

import click

from ds01_core.framework import telemetry
from ds01_core.framework.runtime import load_runtime
from ds01_core.framework.startup import require_writable, starting
from ds01_core.transports.api_socket.server import ApiServer, ThreadedRuntime
from ds01_core.transports.socket_service import serve_until_stopped, start_logging


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH", help="Configuration file.")
@click.option("--socket", "socket_path", metavar="PATH", help="Listen here (api.socket).")
@click.option("--debug", is_flag=True, help="Log debug messages.")
def main(config_path: str | None, socket_path: str | None, debug: bool) -> None:
    """Serve ds01's operations to local users, each acting as themselves."""
    start_logging(debug)

    def load() -> ThreadedRuntime:
        return load_runtime(config_path, runtime_class=ThreadedRuntime)  # type: ignore[return-value]

    with starting("ds01-api"):
        runtime = load()
        require_writable(runtime.config)
        server = ApiServer(runtime, socket_path)
    # counts for ds01d's exporter, written while serving and at exit
    with telemetry.writing(runtime.config.paths.runtime_dir, "ds01-api"):
        serve_until_stopped("ds01-api", server, load, "api.started")
