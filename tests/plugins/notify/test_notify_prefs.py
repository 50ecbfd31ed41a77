"""Users' choices among the channels the admin enabled: turning one off stops its deliveries,
and a channel the admin did not enable cannot be chosen."""

from __future__ import annotations

import pytest

from ds01_core.domain.model import Notice
from ds01_notify import PrefsError, change_prefs, chosen_channels, deliver
from ds01_notify.prefs import describe
from tests.plugins.notify.conftest import quiet_section


@pytest.fixture
def runtime(notify_runtime, webhooks, unix_users, utmp_file, ptys):
    alice = unix_users["ds01ta"]
    pty = ptys(alice.uid, alice.gid)
    section = quiet_section(
        terminal={"utmp_path": utmp_file((alice.name, pty.line))},
        webhooks=[{"name": "team", "url": webhooks.url()}],
    )
    return notify_runtime(section)


def test_defaults_are_every_channel_the_admin_enabled(runtime):
    cfg = runtime.plugin_config("notify")
    assert chosen_channels(runtime, cfg, "ds01ta") == ["terminal", "webhook"]


def test_disabling_a_channel_stops_its_deliveries(runtime, webhooks):
    cfg = runtime.plugin_config("notify")
    before = deliver(runtime, Notice("ds01ta", "one", "…"))
    assert [(r.channel, r.delivered) for r in before] == [
        ("terminal", True),
        ("webhook:team", True),
    ]
    assert change_prefs(runtime, cfg, "ds01ta", disable=["webhook"], by="ds01ta") == {
        "webhook": False
    }
    after = deliver(runtime, Notice("ds01ta", "two", "…"))
    assert [r.channel for r in after] == ["terminal"]
    assert len(webhooks.posts) == 1
    # someone else's choices are their own
    assert [r.channel for r in deliver(runtime, Notice("ds01tb", "x", "…"))] == [
        "terminal",
        "webhook:team",
    ]
    change_prefs(runtime, cfg, "ds01ta", enable=["webhook"])
    assert [r.channel for r in deliver(runtime, Notice("ds01ta", "three", "…"))] == [
        "terminal",
        "webhook:team",
    ]


def test_a_channel_the_admin_did_not_enable_cannot_be_chosen(runtime):
    cfg = runtime.plugin_config("notify")
    with pytest.raises(PrefsError) as info:
        change_prefs(runtime, cfg, "ds01ta", enable=["email", "terminal"])
    assert str(info.value) == (
        "email is not enabled on this server by the admin, so it cannot be chosen; "
        "you can choose among: terminal, webhook"
    )
    assert "email" not in chosen_channels(runtime, cfg, "ds01ta")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            {"enable": ["sms"]},
            "unknown channel sms; the channels are terminal, container_file, email, webhook",
        ),
        ({"enable": ["terminal"], "disable": ["terminal"]}, "terminal is both enabled and"),
    ],
)
def test_nonsense_choices_are_refused(runtime, kw, message):
    with pytest.raises(PrefsError, match=message):
        change_prefs(runtime, runtime.plugin_config("notify"), "ds01ta", **kw)


def test_comma_lists_and_a_refusal_changes_nothing(runtime):
    cfg = runtime.plugin_config("notify")
    with pytest.raises(PrefsError):
        change_prefs(runtime, cfg, "ds01ta", disable=["terminal,webhook"], enable=["email"])
    assert chosen_channels(runtime, cfg, "ds01ta") == ["terminal", "webhook"]
    change_prefs(runtime, cfg, "ds01ta", disable=["terminal,webhook"])
    assert chosen_channels(runtime, cfg, "ds01ta") == []


def test_describe_says_where_each_channel_goes(runtime):
    rows = {row.channel: row for row in describe(runtime, runtime.plugin_config("notify"), "x")}
    assert rows["terminal"].used
    assert rows["email"].detail == "not enabled by the admin"
    assert not rows["email"].used and rows["email"].chosen
    assert rows["webhook"].detail == "to team (generic)"
    assert rows["container_file"].to_json() == {
        "channel": "container_file",
        "available": False,
        "chosen": True,
        "detail": "not enabled by the admin",
        "used": False,
    }
