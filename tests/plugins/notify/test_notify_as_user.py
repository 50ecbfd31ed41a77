"""``ds01 notify prefs|test`` run by real non-root users through a real ``ds01-api``: each
user sees and changes their own channels and tests them, is refused for another user's
(exit 2, one line, no traceback), and a member of the admin group may act for another."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ds01_core.domain.audit_log import EventLog
from ds01_core.framework.runtime import load_runtime
from ds01_notify import chosen_channels
from tests.helpers.servers import running_api
from tests.helpers.user_cli import run_as
from tests.plugins.notify.conftest import quiet_section
from tests.plugins.notify.notify_servers import WebhookServer


@pytest.fixture
def cli_root(user_cli: Path) -> Path:
    """The session's ``ds01`` any user can run (tests/conftest.py)."""
    return user_cli


@pytest.fixture
def served(
    tmp_config: Any, tmp_path: Path, cli_root: Path, webhooks: WebhookServer, unix_users: Any
) -> Iterator[tuple[Path, str]]:
    """(the configuration, the API socket) of a ds01-api with a terminal and a webhook."""
    tmp_path.chmod(0o755)
    config = tmp_config(
        {"plugins": {"notify": quiet_section(webhooks=[{"name": "team", "url": webhooks.url()}])}}
    )
    with running_api(config) as sock:
        yield config, sock


def ds01(user: Any, cli_root: Path, sock: str, *args: str) -> Any:
    return run_as(user, cli_root, args, env={"DS01_API_SOCKET": sock})


def refused(result: Any, message: str) -> None:
    assert result.returncode == 2, result
    assert result.stderr == f"Error: {message}\n"
    assert "Traceback" not in result.stderr + result.stdout


def test_a_user_sees_changes_and_tests_their_own_channels(
    served: tuple[Path, str], cli_root: Path, unix_users: Any, webhooks: WebhookServer
) -> None:
    config, sock = served
    ta = unix_users["ds01ta"]
    shown = ds01(ta, cli_root, sock, "notify", "prefs")
    assert shown.returncode == 0, shown.stderr
    assert "Notification channels for ds01ta:" in shown.stdout

    sent = ds01(ta, cli_root, sock, "notify", "test", "--channel", "webhook", "--json")
    assert sent.returncode == 0, sent.stderr
    data = json.loads(sent.stdout)
    assert data["user"] == "ds01ta"
    assert {"channel": "webhook:team", "delivered": True, "detail": "HTTP 200"} in data["results"]
    [post] = webhooks.posts
    assert (post.body["user"], post.body["subject"]) == ("ds01ta", "Test notice")

    changed = ds01(ta, cli_root, sock, "notify", "prefs", "--disable", "webhook", "--json")
    assert changed.returncode == 0, changed.stderr
    data = json.loads(changed.stdout)
    assert data["user"] == "ds01ta"
    assert {c["channel"]: c["chosen"] for c in data["channels"]}["webhook"] is False
    runtime = load_runtime(str(config))
    try:
        assert chosen_channels(runtime, runtime.plugin_config("notify"), "ds01ta") == []
        [event] = EventLog(runtime.config.paths.event_log_path).query(type_prefix="notify.prefs")
        assert (event["user"], event["details"]["by"]) == ("ds01ta", "ds01ta")
    finally:
        runtime.close()

    off = ds01(ta, cli_root, sock, "notify", "test", "--channel", "webhook")
    refused(off, "you turned webhook off; turn it on with: ds01 notify prefs --enable webhook")
    bad = ds01(ta, cli_root, sock, "notify", "prefs", "--enable", "email")
    assert bad.returncode == 2 and "email is not enabled on this server" in bad.stderr


def test_a_user_is_refused_another_users_channels(
    served: tuple[Path, str], cli_root: Path, unix_users: Any, webhooks: WebhookServer
) -> None:
    _config, sock = served
    ta = unix_users["ds01ta"]
    for args in (("prefs", "--user", "ds01tb"), ("prefs", "--user", "ds01tb", "--disable", "x")):
        refused(
            ds01(ta, cli_root, sock, "notify", *args),
            "only admins may see or change another user's notification channels; you are ds01ta",
        )
    refused(
        ds01(ta, cli_root, sock, "notify", "test", "--user", "ds01tb"),
        "only admins may see or change test notices to another user; you are ds01ta",
    )
    assert webhooks.posts == []


def test_an_admin_group_member_acts_for_another_user(
    served: tuple[Path, str], cli_root: Path, admin_member: Any, webhooks: WebhookServer
) -> None:
    config, sock = served
    tb = admin_member  # ds01tc, in the admin group (tests/conftest.py)
    changed = ds01(
        tb, cli_root, sock, "notify", "prefs", "--user", "ds01ta", "--disable", "terminal"
    )
    assert changed.returncode == 0, changed.stderr
    assert "Notification channels for ds01ta:" in changed.stdout
    sent = ds01(tb, cli_root, sock, "notify", "test", "--user", "ds01ta", "--json")
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["user"] == "ds01ta"
    [post] = webhooks.posts
    assert post.body["user"] == "ds01ta"
    assert "sent by ds01tc with `ds01 notify test`" in post.body["message"]
    runtime = load_runtime(str(config))
    try:
        [event] = EventLog(runtime.config.paths.event_log_path).query(type_prefix="notify.prefs")
        assert (event["user"], event["details"]["by"]) == ("ds01ta", "ds01tc")
    finally:
        runtime.close()
