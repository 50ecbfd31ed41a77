"""``ds01-web``: the REST API served by uvicorn, as ``plugins.web`` configures it.

Run it as root (like ``ds01-api``: operations act for any user) under its systemd unit, on
loopback behind the admin's TLS reverse proxy (``trusted_proxies`` lets the proxy name the
client), or with its own certificate (``tls_cert``/``tls_key``).
"""

from __future__ import annotations

import logging
import os
import sys

import click

from ds01_core.api import ThreadedRuntime, load_runtime
from ds01_web.app import create_app, settings_of


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH", help="Configuration file.")
@click.option("--listen", metavar="ADDRESS", help="Listen here (plugins.web.listen).")
@click.option("--port", type=int, help="TCP port (plugins.web.port).")
@click.option("--debug", is_flag=True, help="Log debug messages.")
def main(config_path: str | None, listen: str | None, port: int | None, debug: bool) -> None:
    """Serve ds01's REST API (/api/v1) to holders of personal API tokens."""
    import uvicorn

    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        runtime = load_runtime(config_path, runtime_class=ThreadedRuntime)
        settings = settings_of(runtime)
        for path in (settings.tls_cert, settings.tls_key):
            if path is not None and not os.access(path, os.R_OK):
                raise OSError(f"cannot read {path} (plugins.web.tls_cert/tls_key)")
    except Exception as exc:  # one line for the journal: what is wrong, then exit
        click.echo(f"ds01-web: cannot start: {exc}", err=True)
        sys.exit(1)
    uvicorn.run(
        create_app(runtime),
        host=listen or settings.listen,
        port=port if port is not None else settings.port,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
        server_header=False,
        log_level="debug" if debug else "info",
    )


if __name__ == "__main__":
    main()
