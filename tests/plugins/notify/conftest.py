"""Fixtures for ds01-notify: real peers on loopback (SMTP, HTTP), pseudo-terminals in a utmp
file of the test's own, and runtimes with a ``plugins.notify`` section.

``quiet_section(...)`` starts from every channel off, so that a test turns on exactly the
channels it is about and nothing reaches the machine's real terminals or containers.
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import ds01_notify
from ds01_core.framework.runtime import Runtime, load_runtime
from ds01_notify.utmp import USER_PROCESS, UtmpEntry, write_utmp
from tests.plugins.notify.notify_servers import (
    Pty,
    SilentServer,
    SmtpServer,
    WebhookServer,
    open_pty,
    start_smtp,
)

OFF: dict[str, Any] = {
    "channels": {
        "terminal": {"enabled": False},
        "container_file": {"enabled": False},
        "email": {"enabled": False},
        "webhooks": [],
    },
    "rate_limit": {"max": 0},
}


def quiet_section(**channels: Any) -> dict[str, Any]:
    """A ``plugins.notify`` section with every channel off except those given (merged over
    ``{"enabled": True}``); ``webhooks=[...]`` and ``rate_limit={...}`` replace."""
    section = copy.deepcopy(OFF)
    if "rate_limit" in channels:
        section["rate_limit"] = channels.pop("rate_limit")
    for name, value in channels.items():
        if name == "webhooks":
            section["channels"]["webhooks"] = value
        else:
            section["channels"][name] = {"enabled": True, **value}
    return section


@pytest.fixture
def notify_runtime(tmp_config: Callable[..., Path]) -> Iterator[Callable[..., Runtime]]:
    """``notify_runtime(section, entry_points=False, **config)``: a runtime with the built-in
    plugins and ds01-notify (registered directly, or through its installed entry point)."""
    made: list[Runtime] = []

    def make(
        section: dict[str, Any] | None = None, *, entry_points: bool = False, **config: Any
    ) -> Runtime:
        path = tmp_config({"plugins": {"notify": section or OFF}, **config})
        if entry_points:
            runtime = load_runtime(str(path))
        else:
            runtime = load_runtime(
                str(path), no_plugins=True, extra_plugins=(("notify", ds01_notify),)
            )
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.close()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A plain SMTP server on loopback collecting what it receives."""
    server = start_smtp()
    yield server
    server.controller.stop()


@pytest.fixture
def webhooks() -> Iterator[WebhookServer]:
    server = WebhookServer()
    yield server
    server.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("openssl is missing (CI=true: the STARTTLS test must not be skipped)")
        pytest.skip("openssl is missing; install it with: apt-get install openssl")
    return found


@pytest.fixture
def ptys() -> Iterator[Callable[..., Pty]]:
    """``ptys(uid, gid, mesg=True, cols=80)``: pseudo-terminals, closed after the test."""
    opened: list[Pty] = []

    def make(uid: int, gid: int, *, mesg: bool = True, cols: int = 80) -> Pty:
        pty = open_pty(uid, gid, mesg=mesg, cols=cols)
        opened.append(pty)
        return pty

    yield make
    for pty in opened:
        pty.close()


@pytest.fixture
def utmp_file(tmp_path: Path) -> Callable[..., str]:
    """``utmp_file((user, line), ...)``: a utmp file with a USER_PROCESS record for each."""

    def make(*sessions: tuple[str, str]) -> str:
        path = tmp_path / "utmp"
        entries = [
            UtmpEntry(USER_PROCESS, os.getpid(), line, user, host="10.0.0.1", id=line[-4:])
            for user, line in sessions
        ]
        write_utmp(path, entries)
        return str(path)

    return make
