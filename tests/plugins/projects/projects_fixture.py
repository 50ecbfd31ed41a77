"""A ds01-gateway and a ds01-api serving the projects plugin, for tests as real users.

The catalogue points at the test image (no registry is reachable here): ``busybox`` is
``ds01-test:busybox`` with Python packages "installed" by a command busybox has, so that the
Dockerfiles ds01 writes really build. The configuration's ``gateway.socket`` is the running
gateway's, so ``projects.settings`` sends the user's own process to it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import attrs
import yaml

from tests.helpers.config import deep_merge, write_config
from tests.helpers.gateway import running_gateway
from tests.helpers.servers import running_api
from tests.helpers.user_cli import run_as

TEST_IMAGE_REPO, TEST_IMAGE_TAG = "ds01-test", "busybox"

#: a base whose package installs are shell commands busybox has: each writes what it
#: installed into the image, so a test can see that the right packages went in
CATALOGUE: dict[str, Any] = {
    "busybox": {
        "image": TEST_IMAGE_REPO,
        "tag": TEST_IMAGE_TAG,
        "description": "the test image (busybox)",
        "python": "pip",
        "pip_install": "mkdir -p /ds01-installed && echo {packages} >> /ds01-installed/pip",
        "conda_install": "mkdir -p /ds01-installed && echo {packages} >> /ds01-installed/conda",
        "apt_install": "mkdir -p /ds01-installed && echo {packages} >> /ds01-installed/apt",
    },
}


@attrs.frozen
class ProjectsServer:
    """A running gateway and API over one configuration."""

    directory: Path
    config: Path
    gateway_socket: str
    api_socket: str

    @property
    def events(self) -> Path:
        return self.directory / "log" / "events.jsonl"


@contextmanager
def projects_server(extra: Mapping[str, Any] | None = None) -> Iterator[ProjectsServer]:
    """Start ds01-gateway, then ds01-api, in a directory every user can reach; ``extra`` is
    merged over the test catalogue (``{"plugins": {"projects": {...}}}``, ``limits`` …)."""
    directory = Path(tempfile.mkdtemp(prefix="ds01-projects-"))
    directory.chmod(0o755)
    base: dict[str, Any] = {
        "limits": {"defaults": {"max_gpu_equivalents": 2, "max_containers_per_user": 6}},
        "plugins": {"projects": {"catalogue": CATALOGUE, "default_base": "busybox"}},
    }
    config = write_config(directory, deep_merge(base, extra or {}))
    try:
        with ExitStack() as stack:
            gateway = stack.enter_context(running_gateway(config))
            data = yaml.safe_load(config.read_text())
            data.setdefault("gateway", {})["socket"] = gateway
            config.write_text(yaml.safe_dump(data, sort_keys=False))
            api = stack.enter_context(running_api(config))
            yield ProjectsServer(directory, config, gateway, api)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def ds01_as(
    user: Any,
    cli_root: Path,
    server: ProjectsServer,
    *args: str,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 180,
) -> Any:
    """``ds01 ARGS`` as ``user`` against ``server`` (the API socket; Docker through the
    gateway the server names)."""
    return run_as(
        user,
        cli_root,
        args,
        env={
            "DS01_API_SOCKET": server.api_socket,
            "DOCKER_HOST": f"unix://{server.gateway_socket}",
            **(env or {}),
        },
        input=input,
        timeout=timeout,
    )
