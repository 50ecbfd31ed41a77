"""The rules that turn Docker's JSON and /proc into origin, owner and GPU access."""

from __future__ import annotations

import os
import pwd

import pytest

from ds01_core.cycle.detection.procfs import (
    container_id_from_cgroup,
    read_proc,
    real_uid_from_status,
)
from ds01_core.domain.container_facts import (
    classify_origin,
    gpu_access,
    home_user_of,
    resolve_gpu_ids,
    resolve_owner,
)
from ds01_core.domain.gpu.simulated import SimulatedProvider

CID = "4f1c" + "ab" * 30


@pytest.fixture(scope="module")
def slots():
    return SimulatedProvider().slots()


@pytest.mark.parametrize(
    ("labels", "name", "origin"),
    [
        ({"ds01.origin": "ds01", "devcontainer.local_folder": "/x"}, "a", "ds01"),
        ({"devcontainer.config_file": "/x/.devcontainer.json"}, "eager_turing", "devcontainer"),
        ({}, "vsc-project-1a2b3c", "devcontainer"),
        ({"com.docker.compose.project": "web"}, "web-db-1", "compose"),
        ({"aime.mlc.USER": "alice"}, "train", "ds01"),  # the legacy tooling ds01 replaces
        ({"ds01.origin": "something-else"}, "x", "docker"),
    ],
)
def test_origin(labels, name, origin):
    assert classify_origin(labels, name) == origin


def test_home_user_of():
    assert home_user_of("/home/alice/proj/../data", ["/home"]) == "alice"
    assert home_user_of("/home", ["/home"]) is None
    assert home_user_of("/srv/home/bob/x", ["/home", "/srv/home"]) == "bob"
    assert home_user_of("/etc/passwd", ["/home"]) is None


def _someone() -> pwd.struct_passwd:
    return next(p for p in pwd.getpwall() if p.pw_uid not in (0,) and p.pw_name != "root")


def test_owner_order_labels_first():
    owner = resolve_owner("x", {"ds01.user": "Alice@EXAMPLE.org", "aime.mlc.USER": "bob"}, [], 0)
    assert (owner.user, owner.source) == ("alice", "label:ds01.user")
    owner = resolve_owner("x", {"aime.mlc.USER": "bob"}, [], 0)
    assert (owner.user, owner.source) == ("bob", "label:aime.mlc.USER")


def test_owner_from_home_only_when_the_user_owns_it():
    user = _someone()
    uid = user.pw_uid
    stat = {f"/home/{user.pw_name}/proj": uid, f"/home/{user.pw_name}": uid, "/home": 0}.get
    labels = {"devcontainer.local_folder": f"/home/{user.pw_name}/proj"}
    owner = resolve_owner("x", labels, [], None, stat_uid=stat)
    assert (owner.user, owner.source) == (user.pw_name, "devcontainer.local_folder")
    # the same claim on a path someone else owns is not believed
    owned_by_root = {f"/home/{user.pw_name}/proj": 0}.get
    owner = resolve_owner("x", labels, [], None, stat_uid=owned_by_root)
    assert (owner.user, owner.source) == ("unknown", "none")
    # a path that does not exist: its nearest existing parent decides
    stat_parent = {f"/home/{user.pw_name}": uid}.get
    mounts = [{"Type": "bind", "Source": f"/home/{user.pw_name}/new/dir"}]
    owner = resolve_owner("x", {}, mounts, None, stat_uid=stat_parent)
    assert (owner.user, owner.source) == (user.pw_name, "bind_mount")
    # volumes are not bind mounts
    volume = [{"Type": "volume", "Source": f"/home/{user.pw_name}/x"}]
    assert resolve_owner("x", {}, volume, None, stat_uid=stat).source == "none"


def test_owner_from_name_pattern_and_process_uid():
    user = _someone()
    owner = resolve_owner(f"train._.{user.pw_uid}", {}, [], None)
    assert (owner.user, owner.source) == (user.pw_name, "name_pattern")
    owner = resolve_owner("train", {}, [], user.pw_uid)
    assert (owner.user, owner.source) == (user.pw_name, "process_uid")
    assert resolve_owner("train", {}, [], 0).source == "none"  # root says nothing
    assert resolve_owner("train", {}, [], 987654).user == "uid:987654"


def test_gpu_ids_in_every_form(slots):
    mig = next(s for s in slots if s.kind == "mig")
    whole = next(s for s in slots if s.kind == "gpu")
    found, unknown = resolve_gpu_ids(
        [str(whole.gpu_index), mig.uuid, mig.legacy_uuid, "nonsense"], slots
    )
    assert found == [whole.uuid, mig.uuid]
    assert unknown == ["nonsense"]
    first_mig_on_gpu = [s for s in slots if s.gpu_index == mig.gpu_index and s.kind == "mig"]
    found, _ = resolve_gpu_ids([f"{mig.gpu_index}:1"], slots)
    assert found == [first_mig_on_gpu[1].uuid]
    found, _ = resolve_gpu_ids([str(mig.gpu_index)], slots)  # a MIG GPU by index: all of it
    assert found == [s.uuid for s in first_mig_on_gpu]


def _inspect(host=None, env=None):
    return {"HostConfig": host or {}, "Config": {"Env": env or []}}


def test_gpu_access_sources(slots):
    whole = [s for s in slots if s.kind == "gpu"]
    mig = next(s for s in slots if s.kind == "mig")
    request = {"Driver": "nvidia", "DeviceIDs": [whole[1].uuid], "Capabilities": [["gpu"]]}
    access = gpu_access(_inspect({"DeviceRequests": [request]}), slots)
    assert access.slot_uuids == (whole[1].uuid,) and not access.unrestricted
    assert access.via == ("device_request",)

    access = gpu_access(
        _inspect({"DeviceRequests": [{"Driver": "", "Count": -1, "Capabilities": [["gpu"]]}]}),
        slots,
    )
    assert access.unrestricted and len(access.slot_uuids) == len(slots)

    access = gpu_access(
        _inspect({"Runtime": "nvidia"}, [f"NVIDIA_VISIBLE_DEVICES={mig.uuid}"]), slots
    )
    assert access.slot_uuids == (mig.uuid,) and access.via == ("env", "runtime")
    assert gpu_access(_inspect(env=["NVIDIA_VISIBLE_DEVICES=all"]), slots).unrestricted
    assert not gpu_access(_inspect(env=["NVIDIA_VISIBLE_DEVICES=void"]), slots).any

    # /dev/nvidia<minor>: the GPU with that device minor, not the one with that index
    devices = [{"PathOnHost": f"/dev/nvidia{whole[2].minor_number}"}]
    devices.append({"PathOnHost": "/dev/nvidiactl"})
    access = gpu_access(_inspect({"Devices": devices}), slots)
    assert access.slot_uuids == (whole[2].uuid,) and not access.unrestricted
    every = [{"PathOnHost": f"/dev/nvidia{i}"} for i in range(8)]
    assert gpu_access(_inspect({"Devices": every}), slots).unrestricted
    assert gpu_access(_inspect({"DeviceCgroupRules": ["c 195:* rmw"]}), slots).unrestricted
    assert gpu_access(_inspect({"Privileged": True}), slots).unrestricted
    assert not gpu_access(_inspect({"Memory": 1}), slots).any


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"12:memory:/docker/{CID}\n11:cpu:/docker/{CID}\n", CID),
        (f"0::/ds01/student/alice/{CID}\n", CID),
        (f"1:name=systemd:/system.slice/docker-{CID}.scope\n", CID),
        ("0::/user.slice/user-1000.slice/session-3.scope\n", None),
        ("garbage", None),
    ],
)
def test_container_id_from_cgroup(text, expected):
    assert container_id_from_cgroup(text) == expected


def test_read_proc_of_this_process():
    info = read_proc(os.getpid())
    assert info is not None
    assert info.uid == os.getuid()
    assert info.pid == os.getpid()
    assert "python" in info.cmdline
    assert info.start_ticks > 0
    assert read_proc(4_999_999) is None  # above PID_MAX_LIMIT: never exists
    assert real_uid_from_status("Name:\tx\nUid:\t1001\t1001\t1001\t1001\n") == 1001
