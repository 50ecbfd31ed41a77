"""``ds01 notify prefs`` and ``ds01 notify test`` through click, on a copy of the real ``ds01``
command tree, as root (in-process); the operations' rule for other users."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping

import click
import pytest
from click.testing import CliRunner, Result

import ds01_notify
from ds01_core.domain.audit_log import EventLog
from ds01_core.framework.runtime import Runtime
from ds01_core.services.caller import Caller
from ds01_core.services.catalogue import call
from ds01_core.services.errors import Forbidden
from ds01_core.services.operations import ServiceContext
from tests.plugins.notify.conftest import quiet_section


def fresh_cli() -> click.Group:
    """A copy of the ``ds01`` root group, so a test never changes ``ds01_core.transports.cli.cli``."""
    from ds01_core.transports.cli import cli

    root = copy.copy(cli)
    root.commands = dict(cli.commands)
    return root


@pytest.fixture(scope="module")
def root() -> click.Group:
    cli = fresh_cli()
    ds01_notify.add_cli_commands(cli=cli)
    return cli


@pytest.fixture
def runtime(notify_runtime, webhooks) -> Runtime:
    return notify_runtime(
        quiet_section(terminal={}, webhooks=[{"name": "team", "url": webhooks.url()}]),
        entry_points=True,
    )


def invoke(
    root: click.Group, runtime: Runtime, *args: str, env: Mapping[str, str | None] | None = None
) -> Result:
    return CliRunner(env={"SUDO_USER": None, **(env or {})}).invoke(
        root, ["--config", str(runtime.config.source), "notify", *args]
    )


def test_the_command_is_added_once(root):
    assert set(root.commands["notify"].commands) == {"prefs", "test"}  # type: ignore[attr-defined]
    taken = click.Group("ds01", commands={"notify": click.Command("notify")})
    with pytest.raises(ValueError, match="'notify' is already taken"):
        ds01_notify.add_cli_commands(cli=taken)


def test_prefs_shows_the_callers_channels(root, runtime):
    result = invoke(root, runtime, "prefs", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["user"] == "root"
    assert [(c["channel"], c["used"]) for c in data["channels"]] == [
        ("terminal", True),
        ("container_file", False),
        ("email", False),
        ("webhook", True),
    ]
    table = invoke(root, runtime, "prefs")
    assert table.exit_code == 0
    assert "Notification channels for root:" in table.output
    assert "not enabled by the admin" in table.output


def test_prefs_changes_are_stored_and_logged(root, runtime):
    result = invoke(root, runtime, "prefs", "--disable", "webhook", "--json")
    assert result.exit_code == 0, result.output
    webhook = json.loads(result.output)["channels"][3]
    assert (webhook["chosen"], webhook["used"]) == (False, False)
    again = json.loads(invoke(root, runtime, "prefs", "--json").output)
    assert again["channels"][3]["chosen"] is False
    [event] = EventLog(runtime.config.paths.event_log_path).query(type_prefix="notify.prefs")
    assert (event["event_type"], event["user"]) == ("notify.prefs_changed", "root")
    assert event["details"] == {"enabled": [], "disabled": ["webhook"], "by": "root"}


def test_a_channel_the_admin_did_not_enable_is_refused(root, runtime):
    result = invoke(root, runtime, "prefs", "--enable", "email")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: email is not enabled on this server by the admin, so it cannot be chosen; "
        "you can choose among: terminal, webhook\n"
    )


def test_an_admin_may_act_for_another_user(root, runtime, unix_users):
    result = invoke(root, runtime, "prefs", "--user", "DS01TA", "--disable", "terminal", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["user"] == "ds01ta"
    cfg = runtime.plugin_config("notify")
    assert ds01_notify.chosen_channels(runtime, cfg, "ds01ta") == ["webhook"]
    assert ds01_notify.chosen_channels(runtime, cfg, "root") == ["terminal", "webhook"]


@pytest.mark.parametrize(
    ("operation", "what"),
    [
        ("notify.prefs", "another user's notification channels"),
        ("notify.test", "test notices to another user"),
    ],
)
def test_a_user_may_not_act_for_another(runtime, unix_users, operation, what):
    """The rule is the operation's, whoever calls it (as users, see test_notify_as_user.py)."""
    caller = Caller("ds01ta", unix_users["ds01ta"].uid, admin=False)
    with pytest.raises(Forbidden) as refused:
        call(ServiceContext(runtime, caller), operation, user="ds01tb")
    assert refused.value.message == f"only admins may see or change {what}; you are ds01ta"


def test_test_sends_a_notice_to_yourself(root, runtime, webhooks):
    result = invoke(root, runtime, "test", "--channel", "webhook", "--json")
    assert result.exit_code == 0, result.output
    results = json.loads(result.output)["results"]
    assert {"channel": "webhook:team", "delivered": True, "detail": "HTTP 200"} in results
    assert "terminal" not in {r["channel"] for r in results}  # only the channel asked for
    [post] = webhooks.posts
    assert (post.body["user"], post.body["subject"]) == ("root", "Test notice")
    assert post.body["event_type"] == "notify.test"
    logged = EventLog(runtime.config.paths.event_log_path).query(type_prefix="notify.delivered")
    assert [r["source"] for r in logged] == ["webhook:team", "audit-log"]


def test_test_reports_a_failing_channel(root, notify_runtime, webhooks):
    runtime = notify_runtime(
        quiet_section(webhooks=[{"name": "broken", "url": webhooks.url("/status/500")}]),
        entry_points=True,
    )
    result = invoke(root, runtime, "test")
    assert result.exit_code == 1
    assert "webhook:broken  NO" in result.output
    assert "HTTP 500 Internal Server Error" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--channel", "email"],
            "Error: email is not enabled on this server by the admin; enabled: terminal, webhook",
        ),
        (
            ["--channel", "container_file"],
            "Error: container_file is not enabled on this server by the admin; "
            "enabled: terminal, webhook",
        ),
    ],
)
def test_test_refuses_channels_that_are_off(root, runtime, args, message):
    result = invoke(root, runtime, "test", *args)
    assert result.exit_code == 2
    assert result.stderr.strip() == message


def test_test_says_how_to_turn_your_channel_back_on(root, runtime):
    assert invoke(root, runtime, "prefs", "--disable", "webhook").exit_code == 0
    result = invoke(root, runtime, "test", "--channel", "webhook")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: you turned webhook off; turn it on with: ds01 notify prefs --enable webhook\n"
    )
