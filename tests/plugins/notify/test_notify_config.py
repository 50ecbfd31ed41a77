"""ds01-notify as a distribution and its ``plugins.notify`` section: defaults, and every
problem reported by its full path."""

from __future__ import annotations

import importlib.metadata as md
import tomllib
from pathlib import Path

import pytest

import ds01_notify
from ds01_core.domain.config import ConfigError, build_config
from ds01_core.domain.units import Duration
from ds01_core.framework.manager import EntryPointSource, make_plugin_host
from ds01_notify.config import NotifyConfig, RateLimitConfig, bad_address, check_pattern

PLUGIN_DIR = Path(__file__).resolve().parents[3] / "plugins" / "notify"


def problems_of(section: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build_config({"plugins": {"notify": section}}, sections={"notify": NotifyConfig})
    return [str(p) for p in info.value.problems]


def test_distribution_declares_its_entry_point():
    project = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text())["project"]
    assert project["name"] == "ds01-notify"
    assert project["dependencies"] == ["ds01>=0.1,<0.2"]
    assert project["entry-points"]["ds01"] == {"notify": "ds01_notify"}


def test_installed_plugin_is_found_by_entry_point():
    found = [ep for ep in md.entry_points(group="ds01") if ep.name == "notify"]
    host = make_plugin_host(entry_points=EntryPointSource(lambda: found))
    record = host.record("notify")
    assert record is not None, "pip install -e plugins/notify --no-deps --no-build-isolation"
    assert (record.status, record.distribution) == ("active", "ds01-notify")
    assert {"notify", "plugin_config_sections", "add_cli_commands"} <= set(record.hooks)


def test_defaults_when_the_section_is_absent():
    config = build_config({}, sections=ds01_notify.plugin_config_sections())
    cfg = config.plugins.sections["notify"]
    assert cfg.enabled_channels() == ["terminal", "container_file"]
    assert cfg.channels.terminal.utmp_path == "/var/run/utmp"
    assert cfg.channels.container_file.path == "/workspace/.ds01-alerts"
    assert cfg.rate_limit == RateLimitConfig(max=10, per=Duration(3600))


def test_a_full_section_is_read():
    cfg = build_config(
        {
            "plugins": {
                "notify": {
                    "channels": {
                        "terminal": {"enabled": False},
                        "email": {
                            "enabled": True,
                            "host": "smtp.example.org",
                            "port": 587,
                            "starttls": True,
                            "username": "ds01",
                            "password_file": "/etc/ds01/smtp-password",
                            "sender": "ds01@example.org",
                            "address_pattern": "{user}@example.org",
                            "addresses": {"alice": "alice.smith@example.org"},
                            "timeout": "15s",
                        },
                        "webhooks": [
                            {"name": "slack", "url_file": "/etc/ds01/slack-url", "format": "slack"},
                            {
                                "name": "ops",
                                "url": "https://ops.example.org/hook",
                                "enabled": False,
                            },
                        ],
                    },
                    "rate_limit": {"max": 5, "per": "30m"},
                }
            }
        },
        sections={"notify": NotifyConfig},
    ).plugins.sections["notify"]
    assert cfg.enabled_channels() == ["container_file", "email", "webhook"]
    assert cfg.channels.email.timeout == 15
    assert cfg.rate_limit.per == 1800


def test_problems_are_named_by_path():
    problems = problems_of(
        {
            "channels": {
                "container_file": {"path": "workspace/../alerts"},
                "email": {
                    "port": 0,
                    "username": "ds01",
                    "address_pattern": "@example.org",
                    "addresses": {"bob": "bob at example"},
                },
                "webhooks": [
                    {"name": "slack", "url": "ftp://example.org"},
                    {"name": "slack", "url": "https://a.example", "url_file": "/f"},
                    {"name": "Bad Name", "url": "https://b.example", "headers": {"X": "a\r\nb"}},
                ],
            },
            "rate_limit": {"max": -1, "per": 0},
        }
    )
    expected = {
        "plugins.notify.channels.container_file.path",
        "plugins.notify.channels.email.port",
        "plugins.notify.channels.email.password_file",
        "plugins.notify.channels.email.address_pattern",
        "plugins.notify.channels.email.addresses.bob",
        "plugins.notify.channels.webhooks[0].url",
        "plugins.notify.channels.webhooks[1].name",
        "plugins.notify.channels.webhooks[1].url",
        "plugins.notify.channels.webhooks[2].name",
        "plugins.notify.channels.webhooks[2].headers.X",
        "plugins.notify.rate_limit.max",
        "plugins.notify.rate_limit.per",
    }
    assert {p.split(":", 1)[0] for p in problems} == expected
    assert "plugins.notify.channels.webhooks[1].name: 'slack' names two webhooks" in problems, (
        problems
    )


def test_an_inline_password_is_not_a_key():
    problems = problems_of({"channels": {"email": {"password": "hunter2"}}})
    assert problems[0].startswith("plugins.notify.channels.email.password: unknown key")


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("alice@example.org", True),
        ("ds01@localhost", True),
        ("alice", False),
        ("alice@example.org\r\nBcc: eve@example.org", False),
        ("Alice <alice@example.org>", False),
        ("a@example.org, b@example.org", False),
    ],
)
def test_addresses_that_could_smuggle_headers_are_refused(address, ok):
    assert (bad_address(address) is None) is ok


def test_address_pattern_must_name_the_user_only():
    assert check_pattern("{user}@example.org") is None
    assert "must contain {user}" in (check_pattern("ops@example.org") or "")
    assert "only {user}" in (check_pattern("{user}.{group}@example.org") or "")


def test_the_readme_example_is_a_valid_section():
    import re

    import yaml

    text = (PLUGIN_DIR / "README.md").read_text()
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))
    config = build_config(example, sections={"notify": NotifyConfig})
    cfg = config.plugins.sections["notify"]
    assert cfg.enabled_channels() == ["terminal", "container_file", "email", "webhook"]
    assert [w.name for w in cfg.channels.webhooks if w.enabled] == ["slack", "ops"]
