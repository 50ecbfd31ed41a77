"""The ``plugins.ldap`` section as the core loads it: defaults, types, and problems by path."""

from __future__ import annotations

from typing import Any

import pytest

from ds01_core.domain.config import ConfigError, build_config
from ds01_core.domain.units import Duration
from ds01_ldap import LdapConfig, plugin_config_sections
from ds01_ldap.config import advice

GROUPS = {"student": {"members": []}, "researcher": {"members": []}}


def load(section: dict[str, Any] | None) -> LdapConfig:
    data: dict[str, Any] = {"limits": {"groups": GROUPS}}
    if section is not None:
        data["plugins"] = {"ldap": section}
    config = build_config(data, sections=plugin_config_sections(), source="ds01.yaml")
    return config.plugins.sections["ldap"]


def problems(section: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(section)
    return [str(p) for p in info.value.problems]


def valid(**extra: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "servers": ["ldaps://ldap1.example.org", "ldaps://ldap2.example.org:636"],
        "user_base_dn": "ou=people,dc=example,dc=org",
        "group_base_dn": "ou=groups,dc=example,dc=org",
        "groups": {
            "student": {"ldap": "cn=students,ou=groups,dc=example,dc=org", "precedence": 10},
            "researcher": {"ldap": "researchers", "precedence": 20},
        },
    }
    section.update(extra)
    return section


def test_missing_section_is_inert_defaults() -> None:
    cfg = load(None)
    assert cfg == LdapConfig()
    assert not cfg.enabled
    assert cfg.sync_interval == 3600 and cfg.max_removal_share == 0.5
    assert (cfg.connect_timeout, cfg.receive_timeout) == (5, 10)
    assert not cfg.start_tls and cfg.ca_file is None


def test_valid_section_parses_durations_and_mappings() -> None:
    cfg = load(valid(sync_interval="30m", start_tls=False, connect_timeout="2s"))
    assert cfg.enabled
    assert cfg.sync_interval == Duration(1800) and isinstance(cfg.sync_interval, Duration)
    assert cfg.connect_timeout == 2
    assert cfg.groups["researcher"].ldap == "researchers"
    assert cfg.groups["researcher"].precedence == 20
    assert not cfg.groups["researcher"].by_dn and cfg.groups["student"].by_dn
    assert (cfg.username_attribute, cfg.user_class, cfg.expand_nested) == ("uid", None, False)


def test_active_directory_defaults() -> None:
    cfg = load(valid(directory="active_directory"))
    assert (cfg.username_attribute, cfg.user_class, cfg.expand_nested) == (
        "sAMAccountName",
        "user",
        True,
    )
    assert not load(valid(directory="active_directory", nested_groups=False)).expand_nested
    assert load(valid(nested_groups=True)).expand_nested


def test_problems_are_reported_with_their_paths() -> None:
    found = problems(
        valid(
            servers=["ldap://ok.example.org", "http://wrong.example.org", "ldap://x:notaport"],
            bind_dn="cn=reader,dc=example,dc=org",
            max_removal_share=1.5,
            connect_timeout="0s",
            groups={
                "student": {"ldap": "cn=students,,dc=x", "precedence": 10},
                "researcher": {"ldap": "researchers", "precedence": 10},
            },
        )
    )
    assert found == [
        "plugins.ldap.servers[1]: expected ldap://host[:port] or ldaps://host[:port], "
        "got 'http://wrong.example.org'",
        "plugins.ldap.servers[2]: expected ldap://host[:port] or ldaps://host[:port], "
        "got 'ldap://x:notaport'",
        "plugins.ldap.bind_password_file: required with bind_dn: a root-only file holding the "
        "password (never the password itself in this file)",
        "plugins.ldap.connect_timeout: must be greater than 0",
        "plugins.ldap.max_removal_share: must be between 0 and 1, got 1.5",
        "plugins.ldap.groups.student.ldap: not a valid DN (special character , must be "
        "escaped): 'cn=students,,dc=x'",
        "plugins.ldap.groups.researcher.precedence: 10 is also 'student''s precedence; give "
        "each group its own, so that a user in both has a defined group",
    ]


def test_type_errors_and_unknown_keys_use_the_core_paths() -> None:
    found = problems(
        valid(
            servers="ldap://one",
            start_tls="yes",
            sync_interval="hourly",
            bind_password="hunter2",
            groups={"student": {"precedence": 1}},
        )
    )
    assert found == [
        "plugins.ldap.servers: expected a list, got 'ldap://one'",
        "plugins.ldap.start_tls: expected true or false, got 'yes'",
        "plugins.ldap.groups.student.ldap: required but missing",
        "plugins.ldap.sync_interval: expected a duration like '45s', '30m', '1.5h', '2d' or "
        "'1h30m', got 'hourly'",
        # no password inline: there is no such key
        "plugins.ldap.bind_password: unknown key (check the spelling; see docs/config.md)",
    ]


def test_tls_and_base_dn_rules() -> None:
    found = problems(
        valid(
            servers=["ldaps://ldap.example.org"],
            start_tls=True,
            user_base_dn="",
            group_base_dn="",
            bind_password_file="/etc/ds01/ldap.pw",
        )
    )
    assert found == [
        "plugins.ldap.servers[0]: start_tls is for ldap:// URIs; ldaps:// is already TLS",
        "plugins.ldap.bind_dn: required with bind_password_file",
        "plugins.ldap.user_base_dn: required when groups are mapped",
        "plugins.ldap.groups.researcher.ldap: a cn ('researchers') is searched under "
        "group_base_dn, which is not set; set it or give the group's full DN",
    ]
    assert problems(valid(servers=[])) == [
        "plugins.ldap.servers: name at least one server when groups are mapped"
    ]


def test_fingerprint_follows_the_mapping() -> None:
    one = load(valid())
    assert one.mapping_fingerprint() == load(valid(sync_interval="5m")).mapping_fingerprint()
    moved = valid()
    moved["groups"]["researcher"]["precedence"] = 5
    assert one.mapping_fingerprint() != load(moved).mapping_fingerprint()


def test_advice_for_working_but_doubtful_settings() -> None:
    cfg = load(
        valid(
            servers=["ldap://ldap1.example.org", "ldaps://ldap2.example.org"],
            bind_dn="cn=reader,dc=example,dc=org",
            bind_password_file="/etc/ds01/ldap.pw",
            groups={"phd": {"ldap": "phds", "precedence": 1}},
        )
    )
    assert advice(cfg, ["student", "researcher"]) == [
        "plugins.ldap.groups maps phd, not defined in limits.groups: those users get the "
        "configuration file's group instead",
        "plugins.ldap binds as cn=reader,dc=example,dc=org over unencrypted "
        "ldap://ldap1.example.org: use ldaps:// or start_tls: true",
    ]
    assert advice(load(valid(start_tls=True, servers=["ldap://x"])), GROUPS) == []
