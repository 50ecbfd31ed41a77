"""Disk quotas: measured usage for real (files owned by real users), filesystem quotas where
the kernel has them, and the create path refusing a user over the limit."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ds01_core.cycle.pipeline import run_cycle
from ds01_core.framework.runtime import load_runtime
from ds01_core.services.user_containers import ContainerError, ContainerService, CreateRequest
from ds01_core.transports.cli import cli
from ds01_diskquota import fsquota
from ds01_diskquota.measure import usage_by_uid
from tests.conftest import unavailable

pytestmark = pytest.mark.integration

MiB = 1024**2


def write_file(path: Path, size: int, uid: int, gid: int) -> None:
    with open(path, "wb") as handle:
        handle.write(os.urandom(size))  # real blocks, not a sparse file
    os.chown(path, uid, gid)


def test_measured_usage_per_owner(tmp_path, unix_users):
    a, b = unix_users["ds01ta"], unix_users["ds01tb"]
    (tmp_path / "deep" / "er").mkdir(parents=True)
    write_file(tmp_path / "deep" / "er" / "a.bin", 3 * MiB, a.uid, a.gid)
    write_file(tmp_path / "b.bin", MiB, b.uid, b.gid)
    (tmp_path / "loop").symlink_to(tmp_path)  # a symlink loop is not followed
    usage = usage_by_uid(str(tmp_path))
    assert 3 * MiB <= usage[a.uid] < 3 * MiB + 64 * 1024
    assert MiB <= usage[b.uid] < MiB + 64 * 1024


def test_over_the_limit_the_user_is_told_and_refused(
    tmp_config, tmp_path, unix_users, container_prefix, docker_engine, cgroup_test_root
):
    a, b = unix_users["ds01ta"], unix_users["ds01tb"]
    data = tmp_path / "data"
    data.mkdir()
    write_file(data / "big.bin", 2 * MiB, a.uid, a.gid)
    write_file(data / "small.bin", 100 * 1024, b.uid, b.gid)
    config = tmp_config(
        {
            "limits": {"defaults": {"disk_quota": "1m"}},
            "plugins": {
                "diskquota": {
                    "filesystems": [{"path": str(data), "mode": "measure"}],
                    "scan_interval": "1s",
                },
                "cgroups": {"root": cgroup_test_root},
            },
        }
    )
    runtime = load_runtime(str(config))
    run_cycle(runtime)
    result = CliRunner().invoke(cli, ["--config", str(config), "quota", "--user", a.name, "--json"])
    assert result.exit_code == 0, result.output
    disk = {r["resource"]: r for r in json.loads(result.output)["resources"]}[f"disk {data}"]
    assert disk["over"] is True and disk["limit"] == MiB and disk["used"] >= 2 * MiB
    assert disk["detail"].startswith("measured, ")

    request = CreateRequest(name=f"{container_prefix}-dq", image="ds01-test:busybox", cpu_only=True)
    with pytest.raises(ContainerError) as refused:
        ContainerService(runtime, a.name).create(request)
    assert str(refused.value) == (
        f"disk {data}: 2.0M of 1.0M (disk_quota) used. Free some space, then try again"
    )
    other = ContainerService(runtime, b.name).create(
        CreateRequest(name=f"{container_prefix}-dq-b", image="ds01-test:busybox", cpu_only=True)
    )
    docker_engine.remove(other.id, force=True)

    (data / "big.bin").unlink()
    time.sleep(1.1)  # past scan_interval
    run_cycle(runtime)
    created = ContainerService(runtime, a.name).create(request)
    docker_engine.remove(created.id, force=True)


# What ext4 logs when the kernel has no quota format to offer (CONFIG_QUOTA without
# CONFIG_QFMT_V2, as on this project's CI kernel). XFS (CONFIG_XFS_QUOTA), tmpfs
# (CONFIG_TMPFS_QUOTA) and the vfsold/vfsv0 quota files were tried there too: none is built in.
NO_QUOTA_IN_KERNEL = re.compile(
    r"EXT4-fs \((loop\d+)\): The kernel was not built with CONFIG_QUOTA and CONFIG_QFMT_V2"
)


def kernel_lacks_quotas(new_kernel_lines: list[str]) -> str | None:
    """The kernel's own statement that it cannot do quotas, among the lines it logged during
    the mount attempt; None when the mount failed for any other reason."""
    for line in new_kernel_lines:
        if NO_QUOTA_IN_KERNEL.search(line):
            return "this kernel was built without quota formats (CONFIG_QUOTA + CONFIG_QFMT_V2)"
    return None


def _kernel_lines() -> list[str]:
    return subprocess.run(["dmesg"], capture_output=True, text=True).stdout.splitlines()


def _mount_quota_fs(tmp_path: Path) -> Path:
    """A quota-enabled ext4 on a loop device. Skipped only when the kernel itself says it has
    no quota support; any other failure is a failure under ``CI=true``."""
    image = tmp_path / "fs.img"
    mount = tmp_path / "mnt"
    mount.mkdir()
    subprocess.run(["truncate", "-s", "64M", str(image)], check=True)
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-O", "quota", "-E", "quotatype=usrquota", str(image)],
        check=True,
        capture_output=True,
    )
    before = _kernel_lines()
    result = subprocess.run(
        ["mount", "-o", "loop", str(image), str(mount)], capture_output=True, text=True
    )
    if result.returncode != 0:
        after = _kernel_lines()
        seen = set(before)
        new = [line for line in after if line not in seen]
        why = kernel_lacks_quotas(new)
        if why is None:
            unavailable(  # fails under CI=true: only the kernel's own reason may skip there
                f"the kernel refuses a quota-enabled ext4 mount ({result.stderr.strip()}; "
                f"kernel log: {new[-3:]})"
            )
        pytest.skip(
            f"{why}: no filesystem can have quotas on this machine; the measured-usage path "
            "is tested for real instead"
        )
    return mount


def test_only_the_kernels_own_reason_counts_as_no_quota_support():
    """The skip above is honest: it needs ext4's exact message, not any failed mount."""
    said = "[10062.048642] EXT4-fs (loop0): The kernel was not built with CONFIG_QUOTA and CONFIG_QFMT_V2"
    assert kernel_lacks_quotas(["[1.0] loop0: detected capacity change", said])
    assert kernel_lacks_quotas([]) is None
    assert kernel_lacks_quotas(["[2.0] EXT4-fs (loop0): VFS: Can't find ext4 filesystem"]) is None
    assert kernel_lacks_quotas(["[3.0] XFS (loop0): quota support not available"]) is None
    assert kernel_lacks_quotas(["mount: wrong fs type, bad option, CONFIG_QUOTA"]) is None


def test_filesystem_quotas_where_the_kernel_has_them(tmp_path, unix_users):
    mount = _mount_quota_fs(tmp_path)
    try:
        a = unix_users["ds01ta"]
        assert fsquota.quotas_on(str(mount))
        fsquota.set_quota(a.name, str(mount), 2 * MiB)
        os.chmod(mount, 0o777)
        write = subprocess.run(
            [
                "runuser",
                "-u",
                a.name,
                "--",
                "dd",
                "if=/dev/zero",
                f"of={mount}/x",
                "bs=1M",
                "count=4",
            ],
            capture_output=True,
            text=True,
        )
        assert write.returncode != 0 and "quota" in write.stderr.lower()
        assert fsquota.usage(str(mount))[a.name] <= 2 * MiB
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_setquota_arguments(tmp_path):
    seen = []

    def runner(argv):
        seen.append(list(argv))
        return subprocess.CompletedProcess(argv, 0, "", "")

    fsquota.set_quota("alice", "/home", 10 * 1024**3, runner=runner)
    hard = 10 * 1024**2  # KiB
    assert seen == [["setquota", "-u", "alice", str(hard * 9 // 10), str(hard), "0", "0", "/home"]]
