"""``user_known`` against a real slapd: admin commands accept directory users the host does not
have, and refuse names the directory does not have either."""

from __future__ import annotations

from collections.abc import Callable

from click.testing import CliRunner

import ds01_ldap
from ds01_core.framework.runtime import Runtime
from ds01_core.transports.cli import cli
from ds01_ldap import run_sync
from tests.plugins.ldap.slapd import Slapd

RuntimeFactory = Callable[..., Runtime]


def override_set(runtime: Runtime, user: str):
    args = ["override", "set", user, "max_gpu_equivalents=2", "--expires", "3d"]
    return CliRunner().invoke(
        cli, ["--config", str(runtime.config.source), "admin", *args, "--reason", "deadline"]
    )


def test_the_directory_answers_for_names_the_host_does_not_know(
    slapd: Slapd, ldap_runtime: RuntimeFactory
) -> None:
    runtime = ldap_runtime(slapd)
    # frank is in no mapped group, so only the directory itself knows him (no account here)
    assert ds01_ldap.user_known(runtime, "frank") is True
    assert ds01_ldap.user_known(runtime, "FRANK@example.org") is True
    assert ds01_ldap.user_known(runtime, "ghost") is False  # listed in a group, no entry
    assert ds01_ldap.user_known(runtime, "fr*") is False  # escaped: no wildcard search

    accepted = override_set(runtime, "frank")
    assert accepted.exit_code == 0, accepted.output
    refused = override_set(runtime, "frnak")
    assert refused.exit_code == 2, refused.output
    assert "no user 'frnak' in this host's accounts (passwd/NSS) or the directory" in (
        refused.output
    )


def test_directory_down_the_cache_still_answers(
    own_slapd: Slapd, ldap_runtime: RuntimeFactory
) -> None:
    runtime = ldap_runtime(own_slapd)
    run_sync(runtime)  # alice is cached (in mapped groups); frank is not
    own_slapd.stop()
    assert ds01_ldap.user_known(runtime, "alice") is True
    assert ds01_ldap.user_known(runtime, "frank") is None  # cannot tell: not "unknown"
    refused = override_set(runtime, "frank")
    assert refused.exit_code == 2
    assert "no user 'frank' in this host's accounts (passwd/NSS):" in refused.output


def test_an_unconfigured_plugin_says_nothing(ldap_runtime: RuntimeFactory) -> None:
    runtime = ldap_runtime(None, groups={}, user_base_dn="")
    assert ds01_ldap.user_known(runtime, "frank") is None
