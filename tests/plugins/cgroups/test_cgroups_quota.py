"""``ds01 quota`` shows what a user's cgroup really uses, read from the kernel."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ds01_core.cycle.pipeline import run_cycle
from ds01_core.framework.runtime import load_runtime
from ds01_core.services.user_containers import ContainerService, CreateRequest
from ds01_core.transports.cli import cli

pytestmark = pytest.mark.integration


def test_quota_lines_read_the_users_cgroup(
    tmp_config, cgroup_test_root, container_prefix, docker_engine
):
    config = tmp_config(
        {
            "limits": {
                "users": {"quotauser": {"memory_max": "256m", "tasks_max": 64, "cpu_quota": 1.5}}
            },
            "plugins": {"cgroups": {"root": cgroup_test_root}},
        }
    )
    runtime = load_runtime(str(config))
    service = ContainerService(runtime, "quotauser")
    name = f"{container_prefix}-quota"
    created = service.create(
        CreateRequest(
            name=name,
            image="ds01-test:busybox",
            cpu_only=True,
            command=("sh", "-c", "dd if=/dev/zero of=/dev/shm/x bs=1M count=20; sleep 600"),
        )
    )
    try:
        service.start(name)
        run_cycle(runtime)
        result = CliRunner().invoke(
            cli, ["--config", str(config), "quota", "--user", "quotauser", "--json"]
        )
        assert result.exit_code == 0, result.output
        lines = {r["resource"]: r for r in json.loads(result.output)["resources"]}
        assert lines["memory"]["limit"] == 256 * 1024**2
        assert lines["memory"]["used"] and lines["memory"]["used"] >= 10 * 1024**2
        assert lines["memory"]["detail"] == f"cgroup /{cgroup_test_root}/default/quotauser"
        assert lines["processes"]["limit"] == 64 and lines["processes"]["used"] >= 1
        assert lines["cpu"]["limit"] == 1.5
        # the CPU time the cgroup has used (dd wrote 20 MiB): a counter, the exporter's per-user CPU
        assert lines["cpu time"]["unit"] == "seconds" and lines["cpu time"]["used"] > 0
        table = CliRunner().invoke(cli, ["--config", str(config), "quota", "--user", "quotauser"])
        assert "memory" in table.output and "256.0M" in table.output
    finally:
        docker_engine.remove(created.id, force=True)
