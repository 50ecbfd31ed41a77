"""A ``max_cpus`` above the host's CPU count: the engine would refuse every create ("Range of
CPUs is from 0.01 to 2.00"), so the limit is clamped to the host and ``config check`` warns."""

from __future__ import annotations

import contextlib

from click.testing import CliRunner

from ds01_core.domain.config.checks import host_cpu_count
from ds01_core.transports.cli import cli

IMAGE = "ds01-test:busybox"


def test_max_cpus_above_the_host_is_clamped_and_warned(
    tmp_config, container_prefix, cgroup_test_root, docker_engine, unix_users
):
    user = unix_users["ds01ta"].name
    cpus = docker_engine.info()["NCPU"]
    too_many = cpus * 32
    config = tmp_config(
        {
            "limits": {"users": {user: {"max_cpus": too_many}}},
            "plugins": {"disabled": ["mig"], "cgroups": {"root": cgroup_test_root}},
        }
    )
    runner = CliRunner()
    checked = runner.invoke(cli, ["--config", str(config), "config", "check"])
    assert checked.exit_code == 0, checked.output
    assert (
        f"warning: limits.users.{user}.max_cpus: {too_many} is more than this host's "
        f"{host_cpu_count()} CPUs; containers get at most {host_cpu_count()}"
    ) in checked.output

    name = f"{container_prefix}-cpus"
    try:
        create = ["container", "create", name, "--image", IMAGE, "--cpu-only", "--as", user]
        created = runner.invoke(cli, ["--config", str(config), *create])
        assert created.exit_code == 0, created.output
        inspect = docker_engine.inspect_container(name)
        assert inspect is not None
        assert inspect["HostConfig"]["NanoCpus"] == cpus * 1_000_000_000
        started = runner.invoke(
            cli, ["--config", str(config), "container", "start", name, "--as", user]
        )
        assert started.exit_code == 0, started.output
    finally:
        with contextlib.suppress(Exception):
            docker_engine.remove(name, force=True)
