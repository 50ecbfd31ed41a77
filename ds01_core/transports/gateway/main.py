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

import click

from ds01_core.framework import telemetry
from ds01_core.framework.runtime import load_runtime
from ds01_core.framework.startup import require_writable, starting
from ds01_core.transports.gateway.server import Gateway
from ds01_core.transports.socket_service import serve_until_stopped, start_logging


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH", help="Configuration file.")
@click.option("--socket", "socket_path", metavar="PATH", help="Listen here (gateway.socket).")
@click.option("--upstream", metavar="PATH", help="The engine's socket (gateway.upstream).")
@click.option("--debug", is_flag=True, help="Log debug messages.")
def main(
    config_path: str | None, socket_path: str | None, upstream: str | None, debug: bool
) -> None:
    """Serve the Docker Engine API to users, each restricted to their own containers."""
    start_logging(debug)
    with starting("ds01-gateway"):
        runtime = load_runtime(config_path)
        require_writable(runtime.config)
        gateway = Gateway(runtime, socket_path=socket_path, upstream=upstream)
    # counts for ds01d's exporter, written while serving and at exit
    with telemetry.writing(runtime.config.paths.runtime_dir, "ds01-gateway"):
        serve_until_stopped(
            "ds01-gateway", gateway, lambda: load_runtime(config_path), "gateway.started"
        )
