"""One real world for the user pages' browser tests: real users ds01ta and ds01tb, the real
app on loopback (uvicorn), the real Docker engine, containers made through the real
``containers.create`` as each user, sessions in the app's real store, and Chromium."""

from __future__ import annotations

import contextlib
import os
import pwd
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ds01_core.framework.runtime import load_runtime
from ds01_core.services.caller import Caller
from ds01_core.services.catalogue import call
from ds01_core.services.operations import ServiceContext
from ds01_core.transports.api_socket.server import ThreadedRuntime
from tests.helpers.config import write_config
from tests.plugins.web.web_env import serving, session_for, signed_in_context

SCHEDULE = "timezone: UTC\ndefault: 230\nhourly:\n  0-6: 150\n  7-17: 260\n  18-23: 210\n"


class World:
    """The app, its runtime, the users' sessions and a way to act as them."""

    def __init__(self, runtime: Any, url: str, tag: str, image: str):
        self.runtime = runtime
        self.url = url
        self.tag = tag
        self.image = image
        self.secrets: dict[str, str] = {}

    def ctx(self, user: str) -> ServiceContext:
        caller = Caller.from_uid(pwd.getpwnam(user).pw_uid, self.runtime.config.gateway.admin_group)
        assert caller is not None
        return ServiceContext(self.runtime, caller)

    def op(self, user: str, operation: str, **params: Any) -> Any:
        """``operation`` as ``user``, through the real service layer."""
        return call(self.ctx(user), operation, **params)

    def box(self, user: str, suffix: str, start: bool = True, **gpu: Any) -> str:
        """A container of ``user``'s, made by ``containers.create`` as them (and started)."""
        name = f"wp{self.tag}-{user[-1]}-{suffix}"
        params = gpu or {"cpu_only": True}
        self.op(
            user,
            "containers.create",
            name=name,
            image=self.image,
            command=["sleep", "3600"],
            **params,
        )
        if start:
            self.op(user, "containers.start", name=name)
        return name

    def context(self, browser: Any, user: str, **options: Any) -> Any:
        if user not in self.secrets:
            self.secrets[user] = session_for(self.runtime, user, pwd.getpwnam(user).pw_uid)
        return signed_in_context(browser, self.url, self.secrets[user], **options)


@contextlib.contextmanager
def user_world(base: Path, image: str, docker_engine: Any) -> Iterator[World]:
    schedule = base / "carbon.yaml"
    schedule.write_text(SCHEDULE)
    config = write_config(
        base,
        {
            "limits": {
                "defaults": {
                    "max_gpu_equivalents": 2,
                    "max_gpu_slots_per_container": 2,
                    "max_containers_per_user": 20,
                }
            },
            "allocation": {"gpu_hold_after_stop": "0s", "stop_timeout": "2s"},
            "plugins": {
                "projects": {
                    "catalogue": {
                        "busybox": {
                            "image": image.rsplit(":", 1)[0],
                            "tag": image.rsplit(":", 1)[1],
                            "description": "a small shell image for tests",
                        }
                    }
                },
                "accounting": {"carbon": {"source": "schedule", "schedule_file": str(schedule)}},
            },
        },
    )
    tag = str(os.getpid())
    runtime = load_runtime(str(config), runtime_class=ThreadedRuntime)
    try:
        with serving(runtime) as url:
            yield World(runtime, url, tag, image)
    finally:
        for summary in docker_engine.list_containers(all=True):
            if any(n.lstrip("/").startswith(f"wp{tag}-") for n in summary.get("Names") or []):
                with contextlib.suppress(Exception):
                    docker_engine.remove(summary["Id"], force=True)
