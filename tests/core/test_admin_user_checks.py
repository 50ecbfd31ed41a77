"""Admin commands refuse what would silently do nothing: an expiry already past, and a user name
that no account source (passwd/NSS, a directory plugin) knows — unless --allow-unknown-user."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ds01_core.domain.config import build_config
from ds01_core.domain.users import UnknownUserError, require_known_user
from ds01_core.framework.hookspecs import hookimpl
from ds01_core.framework.manager import make_plugin_host
from ds01_core.framework.runtime import Runtime
from ds01_core.transports.cli import cli

NOBODY = "nosuchuser-ds01x"


def run(config, *args):
    return CliRunner().invoke(cli, ["--config", str(config), "admin", *args])


def exemptions(config) -> list[dict]:
    return json.loads(run(config, "exempt", "list", "--json").output)


def overrides(config) -> list[dict]:
    return json.loads(run(config, "override", "list", "--all", "--json").output)


def test_exempt_set_refuses_an_expiry_in_the_past(tmp_config, unix_users):
    config = tmp_config()
    user = unix_users["ds01ta"].name
    past = run(
        config, "exempt", "set", "--user", user, "--expires", "2020-01-01", "--reason", "thesis"
    )
    assert past.exit_code == 2, past.output
    assert "--expires 2020-01-01T00:00:00Z is in the past" in past.output
    assert exemptions(config) == []
    future = run(config, "exempt", "set", "--user", user, "--expires", "2h", "--reason", "thesis")
    assert future.exit_code == 0, future.output
    assert {g["target"] for g in exemptions(config)} == {f"user:{user}"}


@pytest.mark.parametrize(
    "command",
    [
        ("override", "set", "{user}", "max_gpu_equivalents=2", "--expires", "3d", "--reason", "x"),
        ("exempt", "set", "--user", "{user}", "--expires", "3d", "--reason", "x"),
    ],
    ids=["override", "exempt"],
)
def test_a_user_nobody_knows_is_refused_unless_allowed(tmp_config, unix_users, command):
    config = tmp_config()
    listed = overrides if command[0] == "override" else exemptions

    def with_user(name: str) -> list[str]:
        return [part.format(user=name) for part in command]

    refused = run(config, *with_user(NOBODY))
    assert refused.exit_code == 2, refused.output
    assert f"no user {NOBODY!r} in this host's accounts (passwd/NSS)" in refused.output
    assert "--allow-unknown-user" in refused.output
    assert listed(config) == []

    real = unix_users["ds01tb"].name
    accepted = run(config, *with_user(real.upper()))  # names are normalised before the look-up
    assert accepted.exit_code == 0, accepted.output

    allowed = run(config, *with_user(NOBODY), "--allow-unknown-user")
    assert allowed.exit_code == 0, allowed.output
    users = {o["user"] for o in listed(config)} if command[0] == "override" else None
    targets = {g["target"] for g in listed(config)} if command[0] == "exempt" else None
    assert users in (None, {real, NOBODY})
    assert targets in (None, {f"user:{real}", f"user:{NOBODY}"})


def test_bare_metal_grant_refuses_an_unknown_user(tmp_config):
    config = tmp_config()
    result = run(config, "bare-metal", "grant", NOBODY, "1h")
    assert result.exit_code != 0
    assert f"there is no user {NOBODY!r} on this host" in result.output


def _runtime(tmp_path, *plugins: tuple[str, object]) -> Runtime:
    host = make_plugin_host(
        extra=plugins, disabled=["docker-detector", "gpu-process-detector"], load_entry_points=False
    )
    data = {
        "paths": {k: str(tmp_path / k) for k in ("state_dir", "log_dir", "runtime_dir")},
        "gpu": {"backend": "simulated"},
    }
    return Runtime(build_config(data, sections=host.config_sections()), host)


def test_hook_user_known(tmp_path):
    """Any plugin's True makes a name known; False from a directory is said in the refusal."""

    class Directory:
        @hookimpl
        def user_known(self, user):
            return {"zelda": True, "ghost": False}.get(user)

    class Elsewhere:
        @hookimpl
        def user_known(self, user):
            return False

    runtime = _runtime(tmp_path, ("dir", Directory()), ("other", Elsewhere()))
    assert sorted(runtime.hooks.user_known(runtime, "zelda")) == [False, True]
    assert require_known_user(runtime, "Zelda@EXAMPLE.ORG") == "zelda"
    assert list(runtime.hooks.user_known(runtime, "ghost")) == [False, False]
    with pytest.raises(UnknownUserError, match=r"passwd/NSS\) or the directory"):
        require_known_user(runtime, "ghost")
    assert require_known_user(runtime, "ghost", allow_unknown=True) == "ghost"

    silent = _runtime(tmp_path / "silent")
    assert list(silent.hooks.user_known(silent, "zelda")) == []
    with pytest.raises(UnknownUserError) as info:
        require_known_user(silent, "zelda")
    assert "directory" not in str(info.value)
    assert require_known_user(silent, "root") == "root"  # passwd first, no plugin asked
