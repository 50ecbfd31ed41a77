"""A REST world for the API tests: ``ds01-web`` on real uvicorn over a real runtime, two real
users (alice ``ds01ta``, bob ``ds01tb``) with read+write tokens, and alice's things for bob to
go after — a running container whose output holds a secret, her own image, her token."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ds01_core.framework.runtime import load_runtime
from ds01_core.transports.api_socket.server import ThreadedRuntime
from tests.helpers.config import write_config
from tests.plugins.web.web_env import request, serving, token_for


@contextmanager
def api_world(
    directory: Path,
    unix_users: dict[str, Any],
    docker_engine: Any,
    test_image: str,
    extra: dict[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """The running world as a dict: ``url``, ``runtime``, ``tokens`` (by user name), ``box``,
    ``box_id``, ``secret`` (in the box's output), ``alice_image``, ``alice_token_id``."""
    directory.chmod(0o755)
    config = write_config(
        directory,
        {
            "limits": {"defaults": {"max_containers_per_user": 20}},
            "plugins": {"web": {"rate_limit": 100_000}},
            **(extra or {}),
        },
    )
    runtime = load_runtime(str(config), runtime_class=ThreadedRuntime)
    alice, bob = unix_users["ds01ta"], unix_users["ds01tb"]
    tag = os.getpid()
    secret = f"alice-secret-{tag}"
    alice_image = f"ds01/ds01ta/private-{tag}:latest"
    tokens = {
        u.name: token_for(runtime, u.uid, "api", ["read", "write"])["token"] for u in (alice, bob)
    }
    alice_token_id = token_for(runtime, alice.uid, "other", ["read"])["id"]
    dockerfile = f"FROM {test_image}\nLABEL ds01.owner=ds01ta\n".encode()
    for _ in docker_engine.api.build(fileobj=io.BytesIO(dockerfile), tag=alice_image, rm=True):
        pass
    try:
        with serving(runtime) as url:
            box = f"api-a-{tag}"
            made = request(
                url,
                "POST",
                "/api/v1/containers",
                tokens["ds01ta"],
                {
                    "name": box,
                    "image": test_image,
                    "cpu_only": True,
                    "command": ["sh", "-c", f"echo {secret}; sleep 900"],
                },
            )
            assert made.status == 200, made
            started = request(url, "POST", f"/api/v1/containers/{box}/start", tokens["ds01ta"], {})
            assert started.status == 200, started
            yield {
                "url": url,
                "runtime": runtime,
                "config": config,
                "tokens": tokens,
                "alice": alice,
                "bob": bob,
                "tag": tag,
                "box": box,
                "box_id": made.json["id"],
                "secret": secret,
                "image": test_image,
                "alice_image": alice_image,
                "alice_token_id": alice_token_id,
            }
    finally:
        for summary in docker_engine.list_containers(all=True):
            if any(f"-{tag}" in n for n in summary.get("Names") or []):
                docker_engine.remove(summary["Id"], force=True)
        with contextlib.suppress(Exception):  # already gone
            docker_engine.api.remove_image(alice_image)
        runtime.close()
