"""Docker for the user's own process: always the ds01 gateway's socket, never the engine's.

A command of this plugin builds images, lists them and inspects containers as the user, so
the gateway's rules (the user's image namespace, their containers only) apply to it exactly as
to the user's own ``docker``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ds01_core.api import Unavailable
from ds01_projects.settings import Settings

if TYPE_CHECKING:
    import docker

#: a build may run for many minutes; a listing should not hang for long
BUILD_TIMEOUT = 3600
API_TIMEOUT = 60


def gateway_api(settings: Settings, *, timeout: int = API_TIMEOUT) -> docker.APIClient:
    """A low-level Docker client on the gateway's socket (``DS01_GATEWAY_SOCKET`` overrides
    it, for a user whose gateway lives elsewhere)."""
    # lazy: the docker SDK (with requests, ~50 ms) loads only when Docker is spoken to, not
    # for `ds01 --help`
    import docker
    import docker.errors

    path = os.environ.get("DS01_GATEWAY_SOCKET") or settings.gateway_socket
    if not os.path.exists(path):
        raise Unavailable(
            f"the ds01 Docker gateway socket {path} does not exist: is ds01-gateway running? "
            "(ask an admin; `ds01 doctor` checks your setup)"
        )
    try:
        return docker.APIClient(base_url=f"unix://{path}", timeout=timeout, version="auto")
    except docker.errors.DockerException as exc:
        raise Unavailable(f"cannot reach the ds01 Docker gateway at {path}: {exc}") from None
