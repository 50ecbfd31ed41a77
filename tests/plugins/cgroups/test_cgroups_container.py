"""Per-container limits in the create body: applied where set, never loosening the client's."""

from __future__ import annotations

from typing import Any

import pytest

from ds01_cgroups.container import apply_container_limits
from ds01_cgroups.devices import BlockDevice
from ds01_cgroups.limits import DeviceIO

GiB = 1024**3
LOOP = BlockDevice(7, 0, "loop0")


def test_limits_fill_an_empty_host_config() -> None:
    host: dict[str, Any] = {}
    changes = apply_container_limits(
        host,
        {
            "max_cpus": 2.0,
            "memory": 16 * GiB,
            "memory_swap": 20 * GiB,
            "shm_size": GiB,
            "pids_limit": 512,
        },
    )
    assert host == {
        "NanoCpus": 2_000_000_000,
        "Memory": 16 * GiB,
        "MemorySwap": 20 * GiB,
        "ShmSize": GiB,
        "PidsLimit": 512,
    }
    assert changes[0] == "NanoCpus=2000000000"


def test_nothing_set_changes_nothing() -> None:
    host = {"Memory": 5}
    assert apply_container_limits(host, {}) == []
    assert host == {"Memory": 5}


@pytest.mark.parametrize(
    ("asked", "kept"),
    [
        (8 * GiB, 8 * GiB),
        (16 * GiB, 16 * GiB),
        (32 * GiB, 16 * GiB),
        (0, 16 * GiB),
        (-1, 16 * GiB),
        (None, 16 * GiB),
    ],
)
def test_a_stricter_client_value_is_kept(asked: int | None, kept: int) -> None:
    host: dict[str, Any] = {"Memory": asked}
    apply_container_limits(host, {"memory": 16 * GiB})
    assert host["Memory"] == kept


def test_unlimited_pids_and_swap_are_replaced() -> None:
    host: dict[str, Any] = {"PidsLimit": -1, "MemorySwap": -1, "Memory": GiB}
    apply_container_limits(host, {"pids_limit": 100, "memory_swap": 2 * GiB})
    assert (host["PidsLimit"], host["MemorySwap"]) == (100, 2 * GiB)


def test_swap_is_left_alone_without_a_memory_limit() -> None:
    host: dict[str, Any] = {}
    apply_container_limits(host, {"memory_swap": 2 * GiB})
    assert "MemorySwap" not in host  # Docker refuses MemorySwap without Memory


def test_nano_cpus_are_capped_by_the_users_aggregate_quota() -> None:
    host: dict[str, Any] = {"NanoCpus": 4_000_000_000}
    apply_container_limits(host, {"max_cpus": 2.0, "cpu_quota": 0.5})
    assert host["NanoCpus"] == 500_000_000
    only_quota: dict[str, Any] = {}
    apply_container_limits(only_quota, {"cpu_quota": 1.5})
    assert only_quota["NanoCpus"] == 1_500_000_000


def test_cpus_are_clamped_to_the_host() -> None:
    """Docker refuses more CPUs than the host has ("Range of CPUs is from 0.01 to 2.00")."""
    host: dict[str, Any] = {}
    assert apply_container_limits(host, {"max_cpus": 64.0}, host_cpus=2) == ["NanoCpus=2000000000"]
    quota_form: dict[str, Any] = {"CpuQuota": 800_000, "CpuPeriod": 100_000}
    apply_container_limits(quota_form, {"cpu_quota": 16.0}, host_cpus=2)
    assert quota_form["CpuQuota"] == 200_000
    unlimited: dict[str, Any] = {}
    assert apply_container_limits(unlimited, {}, host_cpus=2) == []  # no limit: none added


def test_a_client_using_cpu_quota_keeps_that_form() -> None:
    host: dict[str, Any] = {"CpuQuota": 400_000, "CpuPeriod": 200_000}
    apply_container_limits(host, {"max_cpus": 1.0})
    assert host == {"CpuQuota": 200_000, "CpuPeriod": 200_000}
    stricter: dict[str, Any] = {"CpuQuota": 50_000}
    apply_container_limits(stricter, {"max_cpus": 1.0})
    assert stricter == {"CpuQuota": 50_000}


def test_per_container_io_on_v1() -> None:
    host: dict[str, Any] = {
        "BlkioDeviceWriteBps": [
            {"Path": "/dev/loop0", "Rate": 1024},  # stricter: kept
            {"Path": "/dev/sdz", "Rate": 7},  # another device: untouched
        ],
        "BlkioDeviceReadBps": [{"Path": "/dev/loop0", "Rate": 10**12}],  # looser: replaced
    }
    apply_container_limits(
        host,
        {},
        per_container_io=[DeviceIO(LOOP, rbps=2**21, wbps=2**21, wiops=50)],
    )
    assert host["BlkioDeviceWriteBps"] == [
        {"Path": "/dev/loop0", "Rate": 1024},
        {"Path": "/dev/sdz", "Rate": 7},
    ]
    assert host["BlkioDeviceReadBps"] == [{"Path": "/dev/loop0", "Rate": 2**21}]
    assert host["BlkioDeviceWriteIOps"] == [{"Path": "/dev/loop0", "Rate": 50}]
    assert "BlkioDeviceReadIOps" not in host
