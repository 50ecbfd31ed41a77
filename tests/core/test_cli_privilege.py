"""Running through sudo must not let a user choose what ds01 enforces."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from ds01_core.transports.cli import cli

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="simulates sudo: needs root")


def test_sudo_user_cannot_choose_the_configuration(tmp_config, monkeypatch):
    config = tmp_config()
    monkeypatch.setenv("SUDO_USER", "nobody")  # a real account, not in ds01-admin
    result = CliRunner().invoke(cli, ["--config", str(config), "quota", "--json"])
    assert result.exit_code == 2
    assert "nobody runs ds01 through sudo and may not choose the configuration" in result.output
    result = CliRunner().invoke(cli, ["--no-plugins", "quota"])
    assert result.exit_code == 2 and "may not choose --no-plugins" in result.output


def test_root_itself_may(tmp_config, monkeypatch):
    """Root chooses the configuration: the file named is the one read (its limit is shown)."""
    monkeypatch.delenv("SUDO_USER", raising=False)
    config = tmp_config({"limits": {"defaults": {"max_gpu_equivalents": 3.5}}})
    result = CliRunner().invoke(cli, ["--config", str(config), "quota", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["user"] == "root"
    assert answer["gpu_equivalents"]["limit"] == 3.5
