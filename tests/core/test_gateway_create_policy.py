"""The create policy a non-admin's request must pass: each way out refused, each legitimate
variant allowed (the gateway of issue #7 will enforce it on every client)."""

from __future__ import annotations

import pytest

from ds01_core.transports.gateway.create_policy import CreateRules, Lookups, refusals


@pytest.fixture
def rules(tmp_path):
    homes = tmp_path / "home"
    (homes / "alice" / "proj").mkdir(parents=True)
    (homes / "bob").mkdir(parents=True)
    (tmp_path / "ws" / "alice").mkdir(parents=True)
    (tmp_path / "datasets").mkdir()
    (homes / "alice" / "sneaky").symlink_to("/etc")
    return CreateRules(
        home=str(homes / "alice"),
        workspace_roots=(str(tmp_path / "ws" / "alice"),),
        read_only_paths=(str(tmp_path / "datasets"),),
        other_homes_root=str(homes),
    )


#: alice's own objects, as the gateway would answer from the engine
MINE = Lookups(
    own_container=lambda ref: ref in ("mine", "mine2"),
    usable_network=lambda name: name == "alice_net",
    usable_volume=lambda name: name == "mydata",
    usable_image=lambda ref: not ref.startswith("ds01/bob/"),
)


def body(host=None, env=None):
    return {"Image": "busybox", "HostConfig": host or {}, "Env": env or []}


ATTACKS = {
    "privileged": body({"Privileged": True}),
    "cap SYS_ADMIN": body({"CapAdd": ["SYS_ADMIN"]}),
    "cap ALL": body({"CapAdd": ["ALL"]}),
    "cap_sys_module": body({"CapAdd": ["CAP_SYS_MODULE"]}),
    "device": body({"Devices": [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda"}]}),
    "device cgroup rule": body({"DeviceCgroupRules": ["b *:* rwm"]}),
    "pid host": body({"PidMode": "host"}),
    "ipc host": body({"IpcMode": "host"}),
    "uts host": body({"UTSMode": "host"}),
    "net host": body({"NetworkMode": "host"}),
    "userns host": body({"UsernsMode": "host"}),
    "cgroupns host": body({"CgroupnsMode": "host"}),
    "pid of another container": body({"PidMode": "container:abc"}),
    "net of another container": body({"NetworkMode": "container:abc"}),
    "apparmor unconfined": body({"SecurityOpt": ["apparmor=unconfined"]}),
    "seccomp unconfined": body({"SecurityOpt": ["seccomp:unconfined"]}),
    "selinux disabled": body({"SecurityOpt": ["label=disable"]}),
    "systempaths unconfined": body({"SecurityOpt": ["systempaths=unconfined"]}),
    "sysctl": body({"Sysctls": {"kernel.shm_rmid_forced": "1"}}),
    "cgroup parent": body({"CgroupParent": "/"}),
    "runtime": body({"Runtime": "runsc-privileged"}),
    "bind /": body({"Binds": ["/:/host"]}),
    "bind /etc": body({"Binds": ["/etc:/mnt"]}),
    "bind docker socket": body({"Binds": ["/var/run/docker.sock:/var/run/docker.sock"]}),
    "bind /proc": body({"Binds": ["/proc:/p"]}),
    "bind /sys": body({"Binds": ["/sys:/s"]}),
    "bind /dev": body({"Binds": ["/dev:/d"]}),
    "bind /root": body({"Binds": ["/root:/r"]}),
    "bind docker data": body({"Binds": ["/var/lib/docker:/d"]}),
    "mount type bind /etc": body({"Mounts": [{"Type": "bind", "Source": "/etc", "Target": "/e"}]}),
    "local volume binding /etc": body(
        {
            "Mounts": [
                {
                    "Type": "volume",
                    "Target": "/e",
                    "VolumeOptions": {
                        "DriverConfig": {
                            "Name": "local",
                            "Options": {"type": "none", "o": "bind", "device": "/etc"},
                        }
                    },
                }
            ]
        }
    ),
    "dot-dot escape": None,  # filled in the test (needs the home path)
    "symlink to /etc": None,
    "another user's home": None,
    "outside allowed paths": body({"Binds": ["/tmp:/t"]}),
    "read-only path written": None,
    "all gpus": body(
        {"DeviceRequests": [{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}]}
    ),
    "NVIDIA_VISIBLE_DEVICES=all": body(env=["NVIDIA_VISIBLE_DEVICES=all"]),
    "not an object": ["Image"],
}


def attack(name, rules):
    home = rules.home
    late = {
        "dot-dot escape": body({"Binds": [f"{home}/../../../etc:/e"]}),
        "symlink to /etc": body({"Binds": [f"{home}/sneaky:/e"]}),
        "another user's home": body({"Binds": [f"{rules.other_homes_root}/bob:/b"]}),
        "read-only path written": body({"Binds": [f"{rules.read_only_paths[0]}:/data"]}),
    }
    return late.get(name) or ATTACKS[name]


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_way_out_is_refused(name, rules):
    assert refusals(attack(name, rules), rules), f"{name} was allowed"


@pytest.mark.parametrize(
    "legit",
    [
        body(),
        body({"CapAdd": ["NET_BIND_SERVICE"]}),
        body({"NetworkMode": "bridge"}),
        body({"SecurityOpt": ["no-new-privileges"]}),
        body({"Runtime": "nvidia"}),
        body({"DeviceRequests": [{"Driver": "nvidia", "Count": 1, "Capabilities": [["gpu"]]}]}),
        body(env=["NVIDIA_VISIBLE_DEVICES=GPU-1234"]),
        body({"Mounts": [{"Type": "tmpfs", "Target": "/scratch"}]}),
        body({"Mounts": [{"Type": "volume", "Source": "mydata", "Target": "/d"}]}),
    ],
)
def test_legitimate_requests_pass(legit, rules):
    assert refusals(legit, rules, MINE) == []


def test_legitimate_mounts_pass(rules):
    ok = body(
        {
            "Binds": [
                f"{rules.home}/proj:/work",
                f"{rules.workspace_roots[0]}:/ws",
                f"{rules.read_only_paths[0]}:/data:ro",
            ]
        }
    )
    assert refusals(ok, rules, MINE) == []


def test_messages_name_what_is_wrong(rules):
    assert refusals(body({"Binds": ["/etc:/mnt"]}), rules, MINE) == [
        "mounting /etc would expose the host (/etc); not allowed"
    ]
    assert refusals({"Image": "ds01/bob/x:1"}, rules, MINE) == [
        "image ds01/bob/x:1 belongs to another user"
    ]
    assert refusals(attack("read-only path written", rules), rules, MINE) == [
        f"{rules.read_only_paths[0]} may only be mounted read-only (:ro)"
    ]


REFERENCE_ATTACKS = {
    "pid of another user's container": body({"PidMode": "container:bobs"}),
    "network namespace of another's container": body({"NetworkMode": "container:bobs"}),
    "another user's network": body({"NetworkMode": "bob_net"}),
    "another user's network by endpoint": {
        "Image": "busybox",
        "NetworkingConfig": {"EndpointsConfig": {"bob_net": {}}},
    },
    "volumes from another's container": body({"VolumesFrom": ["bobs:ro"]}),
    "link to another's container": body({"Links": ["/bobs:db"]}),
    "another user's named volume": body({"Binds": ["bobdata:/d"]}),
    "another user's volume by mount": body(
        {"Mounts": [{"Type": "volume", "Source": "bobdata", "Target": "/d"}]}
    ),
    "volume driver options (nfs)": body(
        {
            "Mounts": [
                {
                    "Type": "volume",
                    "Source": "v",
                    "Target": "/d",
                    "VolumeOptions": {
                        "DriverConfig": {"Name": "local", "Options": {"type": "nfs"}}
                    },
                }
            ]
        }
    ),
    "negative oom score": body({"OomScoreAdj": -1000}),
    "oom killer disabled": body({"OomKillDisable": True}),
    "unmasked /proc": body({"MaskedPaths": []}),
    "writable /proc/sys": body({"ReadonlyPaths": []}),
    "syslog log driver": body({"LogConfig": {"Type": "syslog", "Config": {}}}),
    "host port 22": body({"PortBindings": {"22/tcp": [{"HostPort": "22"}]}}),
    "userns private": body({"UsernsMode": "private"}),
    "cgroup namespace option": body({"Cgroup": "container:bobs"}),
    "volume driver": body({"VolumeDriver": "rexray"}),
    "another user's image": {"Image": "ds01/bob/x:1"},
}


@pytest.mark.parametrize("name", sorted(REFERENCE_ATTACKS))
def test_references_to_others_objects_are_refused(name, rules):
    assert refusals(REFERENCE_ATTACKS[name], rules, MINE), f"{name} was allowed"


@pytest.mark.parametrize(
    "legit",
    [
        body({"PidMode": "container:mine"}),
        body({"NetworkMode": "container:mine2"}),
        body({"NetworkMode": "alice_net"}),
        {"Image": "busybox", "NetworkingConfig": {"EndpointsConfig": {"alice_net": {}}}},
        body({"VolumesFrom": ["mine:ro"]}),
        body({"Links": ["mine:db"]}),
        body({"Binds": ["mydata:/d", "/anonymous"]}),
        body({"OomScoreAdj": 500}),
        body({"LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}}}),
        body({"PortBindings": {"8888/tcp": [{"HostPort": "8888"}]}}),
        body({"PortBindings": {"80/tcp": [{"HostPort": ""}]}}),
    ],
)
def test_references_to_own_objects_pass(legit, rules):
    assert refusals(legit, rules, MINE) == []
