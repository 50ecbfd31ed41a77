"""``ds01 container logs --tail N`` shows the last N lines, not all of them."""

from __future__ import annotations

import contextlib
import time

from click.testing import CliRunner

from ds01_core.transports.cli import cli


def test_tail_shows_only_the_last_lines(
    tmp_config, container_prefix, cgroup_test_root, docker_engine, test_image, unix_users
):
    config = tmp_config({"plugins": {"disabled": ["mig"], "cgroups": {"root": cgroup_test_root}}})
    user = unix_users["ds01ta"].name
    name = f"{container_prefix}-tail"

    def ds01(command: str, *args: str) -> str:
        argv = ["--config", str(config), "container", command, "--as", user, *args]
        result = CliRunner().invoke(cli, argv)
        assert result.exit_code == 0, result.output
        return result.output

    try:
        ds01("create", name, "--image", test_image, "--cpu-only", "--",
             "sh", "-c", "echo one; echo two; echo three; sleep 600")  # fmt: skip
        ds01("start", name)
        deadline = time.monotonic() + 30
        while "three" not in ds01("logs", name) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ds01("logs", name).split() == ["one", "two", "three"]
        assert ds01("logs", name, "--tail", "2").split() == ["two", "three"]
    finally:
        with contextlib.suppress(Exception):
            docker_engine.remove(name, force=True)
