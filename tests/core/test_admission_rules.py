"""The rules behind admission that need no engine: the ``allocation.foreign_slot_action`` key
and when detection counts a container's GPU access as ds01's doing."""

from __future__ import annotations

import datetime as dt

import pytest

from ds01_core.domain.config import ConfigError, build_config
from ds01_core.domain.container_facts import GpuAccess, gpu_managed

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def test_foreign_slot_action_defaults_to_stop_and_takes_log():
    assert build_config({}, now=NOW).allocation.foreign_slot_action == "stop"
    logging = build_config({"allocation": {"foreign_slot_action": "log"}}, now=NOW)
    assert logging.allocation.foreign_slot_action == "log"


@pytest.mark.parametrize("value", ["kill", "", None, True])
def test_foreign_slot_action_refuses_anything_else(value):
    with pytest.raises(ConfigError) as info:
        build_config({"allocation": {"foreign_slot_action": value}}, now=NOW)
    (problem,) = [str(p) for p in info.value.problems]
    assert problem.startswith("allocation.foreign_slot_action: expected one of 'stop', 'log'")


GIVEN = {"ds01.gpu.uuids": "GPU-a,MIG-b"}


@pytest.mark.parametrize(
    ("origin", "labels", "access", "managed"),
    [
        ("docker", GIVEN, GpuAccess(("GPU-a", "MIG-b")), True),  # the gateway's own
        ("compose", GIVEN, GpuAccess(("MIG-b",)), True),
        ("ds01", {}, GpuAccess(("GPU-a",)), True),  # ds01 container create, aime.mlc
        ("docker", {}, GpuAccess(("GPU-a",)), False),  # made with the real socket
        ("docker", GIVEN, GpuAccess(("GPU-a", "GPU-c")), False),  # reaches more than given
        ("docker", GIVEN, GpuAccess(("GPU-a",), unrestricted=True), False),
        ("devcontainer", {"ds01.gpu.uuids": ""}, GpuAccess(("GPU-a",)), False),
    ],
)
def test_gpu_access_is_managed_only_when_admission_gave_it(origin, labels, access, managed):
    assert gpu_managed(origin, labels, access) is managed
