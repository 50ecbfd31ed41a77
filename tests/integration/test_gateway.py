"""The gateway against the real engine, called by two real Unix users as themselves: each sees
and touches only their own containers, and their everyday tools work through it."""

from __future__ import annotations

import grp
import importlib.util
import json
import os
import subprocess
import time

import pytest

from tests.conftest import unavailable
from tests.helpers.config import write_config
from tests.helpers.gateway import (
    COMPOSE,
    as_user,
    docker,
    http,
    in_pty,
    json_of,
    ok,
    raw_as,
    refused,
    running_gateway,
    status_of,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, unix_users, docker_engine, test_image):
    base = tmp_path_factory.mktemp("gateway")
    config = write_config(
        base,
        {
            "limits": {"defaults": {"max_gpu_equivalents": 2}},
            # an existing group stands in for ds01-gpu-direct (GPU containers join it)
            "bare_metal": {"group": "users"},
        },
    )
    with running_gateway(config) as sock:
        yield {"sock": sock, "events": base / "log" / "events.jsonl", "config": config}
    for summary in docker_engine.list_containers(all=True):
        labels = summary.get("Labels") or {}
        if labels.get("ds01.user") in unix_users:
            docker_engine.remove(summary["Id"], force=True)


@pytest.fixture(scope="module")
def alice(unix_users):
    return unix_users["ds01ta"]


@pytest.fixture(scope="module")
def bob(unix_users):
    return unix_users["ds01tb"]


@pytest.fixture(scope="module")
def alices_box(gateway, alice, test_image):
    sock = gateway["sock"]
    name = f"gw-alice-{os.getpid()}"
    ok(
        docker(
            alice,
            sock,
            "run",
            "-d",
            "--name",
            name,
            "--label",
            "ds01.user=ds01tb",
            test_image,
            "sh",
            "-c",
            "echo started; sleep 600",
        )
    )
    yield name
    docker(alice, sock, "rm", "-f", name)


def test_each_user_sees_only_their_own_containers(gateway, alice, bob, alices_box, test_image):
    sock = gateway["sock"]
    bobs = f"gw-bob-{os.getpid()}"
    ok(docker(bob, sock, "run", "-d", "--name", bobs, test_image, "sleep", "600"))
    try:
        alice_sees = ok(docker(alice, sock, "ps", "-a", "--format", "{{.Names}}")).split()
        bob_sees = ok(docker(bob, sock, "ps", "-a", "--format", "{{.Names}}")).split()
        assert alices_box in alice_sees and bobs not in alice_sees
        assert bobs in bob_sees and alices_box not in bob_sees
    finally:
        ok(docker(bob, sock, "rm", "-f", bobs))


def test_client_labels_cannot_claim_another_owner(gateway, alices_box, docker_engine):
    labels = docker_engine.inspect_container(alices_box)["Config"]["Labels"]
    assert labels["ds01.user"] == "ds01ta"  # the --label ds01.user=ds01tb was dropped
    assert labels["ds01.created_at"]


def test_the_cgroups_plugin_places_gateway_containers(alices_box, docker_engine):
    if importlib.util.find_spec("ds01_cgroups") is None:
        unavailable("the ds01-cgroups plugin is not installed (tox -e test installs it)")
    host = docker_engine.inspect_container(alices_box)["HostConfig"]
    assert host["CgroupParent"].rstrip("/").endswith("ds01ta")


OTHER_USERS_OPERATIONS = [
    ("inspect", "{c}"),
    ("logs", "{c}"),
    ("stats", "--no-stream", "{c}"),
    ("top", "{c}"),
    ("exec", "{c}", "true"),
    ("start", "{c}"),
    ("stop", "-t", "1", "{c}"),
    ("restart", "-t", "1", "{c}"),
    ("kill", "{c}"),
    ("pause", "{c}"),
    ("unpause", "{c}"),
    ("rename", "{c}", "stolen"),
    ("update", "--restart", "no", "{c}"),
    ("wait", "{c}"),
    ("cp", "{c}:/etc/hostname", "/tmp/ds01-gw-stolen"),
    ("cp", "/etc/hostname", "{c}:/tmp/planted"),
    ("export", "-o", "/tmp/ds01-gw-export.tar", "{c}"),
    ("diff", "{c}"),
    ("commit", "{c}", "stolen:latest"),
    ("attach", "--no-stdin", "{c}"),
    ("port", "{c}"),
    ("rm", "-f", "{c}"),
]


@pytest.mark.parametrize("operation", OTHER_USERS_OPERATIONS, ids=lambda op: " ".join(op[:2]))
def test_every_operation_on_another_users_container_is_refused(
    gateway, bob, alices_box, operation, docker_engine
):
    args = [part.format(c=alices_box) for part in operation]
    refused(docker(bob, gateway["sock"], *args, timeout=30))
    state = docker_engine.inspect_container(alices_box)["State"]
    assert state["Running"] and not state["Paused"]


def test_refusals_are_audited(gateway, bob, alices_box):
    refused(docker(bob, gateway["sock"], "stop", alices_box))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        events = [json.loads(line) for line in gateway["events"].read_text().splitlines()]
        denied = [
            e
            for e in events
            if e["event_type"] == "access.denied"
            and e["user"] == "ds01tb"
            and alices_box in e["details"]["endpoint"]
        ]
        if denied:
            break
        time.sleep(0.1)
    assert denied and "another user" in denied[-1]["details"]["reason"]


def test_own_work_goes_through_the_docker_cli(gateway, alice, test_image, tmp_path):
    sock = gateway["sock"]
    name = f"gw-cli-{os.getpid()}"
    ok(
        docker(
            alice,
            sock,
            "run",
            "-d",
            "--name",
            name,
            test_image,
            "sh",
            "-c",
            "for i in 1 2 3; do echo line$i; sleep 0.3; done; sleep 600",
        )
    )
    try:
        # logs -f streams: read until line3 arrives, then stop following
        proc = subprocess.Popen(
            [
                "runuser",
                "-u",
                alice.name,
                "--",
                "env",
                f"HOME={alice.home}",
                f"DOCKER_HOST=unix://{sock}",
                "docker",
                "logs",
                "-f",
                name,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "line3" not in seen:
            seen.append(proc.stdout.readline().strip())
        proc.terminate()
        proc.wait(5)
        assert seen[:3] == ["line1", "line2", "line3"]

        assert ok(docker(alice, sock, "exec", name, "echo", "exec-ok")) == "exec-ok\n"
        piped = ok(
            docker(
                alice, sock, "exec", "-i", name, "sh", "-c", "cat; echo done", input="from stdin\n"
            )
        )
        assert piped == "from stdin\ndone\n"

        source = os.path.join(alice.home, "gw-upload.txt")
        with open(source, "w") as handle:
            handle.write("uploaded by alice\n")
        os.chown(source, alice.uid, alice.gid)
        ok(docker(alice, sock, "cp", source, f"{name}:/tmp/up.txt"))
        assert ok(docker(alice, sock, "exec", name, "cat", "/tmp/up.txt")) == "uploaded by alice\n"
        ok(docker(alice, sock, "cp", f"{name}:/tmp/up.txt", os.path.join(alice.home, "down.txt")))
        with open(os.path.join(alice.home, "down.txt")) as handle:
            assert handle.read() == "uploaded by alice\n"

        ok(docker(alice, sock, "stop", "-t", "1", name))
        assert "Exited" in ok(
            docker(alice, sock, "ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}")
        )
        ok(docker(alice, sock, "rm", name))
        assert name not in ok(docker(alice, sock, "ps", "-a", "--format", "{{.Names}}"))
    finally:
        docker(alice, sock, "rm", "-f", name)


def test_exec_it_through_a_pseudo_terminal(gateway, alice, alices_box):
    output = in_pty(
        alice,
        gateway["sock"],
        ["docker", "exec", "-it", alices_box, "sh"],
        ["echo answer=$((6*7))", "exit"],
        expect="answer=42",
    )
    assert "answer=42" in output


def test_run_it_through_a_pseudo_terminal(gateway, alice, test_image):
    output = in_pty(
        alice,
        gateway["sock"],
        ["docker", "run", "--rm", "-it", test_image, "sh"],
        ["echo tty=$(tty)", "exit"],
        expect="tty=/dev/pts",
    )
    assert "tty=/dev/pts/" in output


#: the services end on SIGTERM (as PID 1, sh and sleep ignore it): ``down`` stops them at once
#: instead of waiting out compose's 10 s stop timeout
COMPOSE_FILE = """\
version: "3"
services:
  web:
    image: {image}
    command: ["sh", "-c", "trap 'exit 0' TERM; echo compose-up; sleep 600 & wait"]
    volumes: ["data:/data"]
  worker:
    image: {image}
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]
volumes:
  data: {{}}
"""


def test_docker_compose_up_and_down(gateway, alice, bob, test_image, docker_engine):
    sock = gateway["sock"]
    project = os.path.join(alice.home, "gwproj")
    os.makedirs(project, exist_ok=True)
    with open(os.path.join(project, "docker-compose.yml"), "w") as handle:
        handle.write(COMPOSE_FILE.format(image=test_image))
    os.chown(project, alice.uid, alice.gid)
    name = f"gwp{os.getpid()}"
    try:
        ok(as_compose(alice, sock, project, name, "up", "-d"))
        running = ok(docker(alice, sock, "ps", "--format", "{{.Names}}")).split()
        assert {f"{name}_web_1", f"{name}_worker_1"} <= set(running)
        assert not {f"{name}_web_1"} & set(
            ok(docker(bob, sock, "ps", "-a", "--format", "{{.Names}}")).split()
        )
        volumes = ok(docker(alice, sock, "volume", "ls", "--format", "{{.Name}}")).split()
        assert f"{name}_data" in volumes
        assert (
            f"{name}_data"
            not in ok(docker(bob, sock, "volume", "ls", "--format", "{{.Name}}")).split()
        )
        networks = ok(docker(alice, sock, "network", "ls", "--format", "{{.Name}}")).split()
        assert f"{name}_default" in networks
        refused(docker(bob, sock, "network", "rm", f"{name}_default"))
        refused(docker(bob, sock, "volume", "rm", f"{name}_data"))
        ok(as_compose(alice, sock, project, name, "down", "-v"))
        assert not [
            s
            for s in docker_engine.list_containers(all=True)
            if (s.get("Labels") or {}).get("com.docker.compose.project") == name
        ]
    finally:
        as_compose(alice, sock, project, name, "down", "-v")


def as_compose(user, sock, project, name, *args):
    return as_user(user, sock, COMPOSE, "-p", name, *args, cwd=project, timeout=120)


def test_devcontainer_style_create(gateway, alice, test_image, docker_engine):
    sock = gateway["sock"]
    folder = os.path.join(alice.home, "devproj")
    os.makedirs(folder, exist_ok=True)
    os.chown(folder, alice.uid, alice.gid)
    name = f"vsc-devproj-{os.getpid()}"
    ok(
        docker(
            alice,
            sock,
            "run",
            "-d",
            "--name",
            name,
            "--label",
            f"devcontainer.local_folder={folder}",
            "--label",
            f"devcontainer.config_file={folder}/.devcontainer/devcontainer.json",
            "--mount",
            f"type=bind,source={folder},target=/workspaces/devproj",
            "--entrypoint",
            "/bin/sh",
            test_image,
            "-c",
            "echo Container started; trap 'exit 0' TERM; while sleep 1 & wait $!; do :; done",
        )
    )
    try:
        labels = docker_engine.inspect_container(name)["Config"]["Labels"]
        assert labels["ds01.user"] == "ds01ta"
        assert labels["devcontainer.local_folder"] == folder
        found = ok(
            docker(
                alice,
                sock,
                "ps",
                "--filter",
                f"label=devcontainer.local_folder={folder}",
                "--format",
                "{{.Names}}",
            )
        ).split()
        assert found == [name]
        assert ok(docker(alice, sock, "exec", name, "ls", "/workspaces")).split() == ["devproj"]
    finally:
        docker(alice, sock, "rm", "-f", name)


def test_gpu_request_is_allocated_and_rewritten(gateway, alice, test_image, docker_engine):
    sock = gateway["sock"]
    name = f"gw-gpu-{os.getpid()}"
    ok(
        docker(
            alice,
            sock,
            "create",
            "--name",
            name,
            "-e",
            "NVIDIA_VISIBLE_DEVICES=0",
            test_image,
            "true",
        )
    )
    try:
        inspect = docker_engine.inspect_container(name)
        labels = inspect["Config"]["Labels"]
        uuids = labels["ds01.gpu.uuids"].split(",")
        assert len(uuids) == 1 and uuids[0].startswith(("GPU-", "MIG-"))
        assert f"NVIDIA_VISIBLE_DEVICES={uuids[0]}" in inspect["Config"]["Env"]
        assert inspect["HostConfig"]["GroupAdd"] == [str(grp.getgrnam("users").gr_gid)]
        over = docker(
            alice,
            sock,
            "create",
            "-e",
            "NVIDIA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7",
            test_image,
            "true",
        )
        assert over.returncode != 0 and "GPU" in over.stderr
        everything = docker(alice, sock, "create", "--gpus", "all", test_image, "true")
        refused(everything, "all GPUs")
    finally:
        ok(docker(alice, sock, "rm", "-f", name))
    by_flag = f"gw-gpus-{os.getpid()}"
    ok(docker(alice, sock, "create", "--name", by_flag, "--gpus", "1", test_image, "true"))
    try:
        labels = docker_engine.inspect_container(by_flag)["Config"]["Labels"]
        assert len(labels["ds01.gpu.uuids"].split(",")) == 1
        two = docker(alice, sock, "create", "--gpus", "2", test_image, "true")
        refused(two, "GPU slots per container: 2 requested, at most 1 allowed")
    finally:
        ok(docker(alice, sock, "rm", "-f", by_flag))
    cpu_only = f"gw-cpu-{os.getpid()}"
    ok(docker(alice, sock, "create", "--name", cpu_only, test_image, "true"))
    try:
        env = docker_engine.inspect_container(cpu_only)["Config"]["Env"]
        assert "NVIDIA_VISIBLE_DEVICES=void" in env
    finally:
        ok(docker(alice, sock, "rm", cpu_only))


def test_admin_only_and_unknown_endpoints(gateway, bob):
    sock = gateway["sock"]
    refused(docker(bob, sock, "system", "prune", "-f"), "admins only")
    refused(docker(bob, sock, "swarm", "init"), "admins only")
    refused(docker(bob, sock, "plugin", "ls"), "admins only")
    answer = raw_as(bob.uid, bob.gid, sock, http("GET", "/v1.41/no/such/endpoint"))
    assert status_of(answer) == 403 and b"not an endpoint" in answer


def test_admins_pass_through(gateway, bob, alices_box):
    answer = raw_as(0, 0, gateway["sock"], http("GET", f"/v1.41/containers/{alices_box}/json"))
    assert status_of(answer) == 200 and json_of(answer)["Name"] == f"/{alices_box}"
    listing = json_of(raw_as(0, 0, gateway["sock"], http("GET", "/containers/json")))
    assert alices_box in {n.lstrip("/") for c in listing for n in c["Names"]}
    paused = raw_as(0, 0, gateway["sock"], http("POST", f"/v1.41/containers/{alices_box}/pause"))
    assert status_of(paused) == 204
    raw_as(0, 0, gateway["sock"], http("POST", f"/v1.41/containers/{alices_box}/unpause"))
    logged = [json.loads(line) for line in gateway["events"].read_text().splitlines()]
    assert any(
        e["event_type"] == "access.admin"
        and e["user"] == "root"
        and "pause" in e["details"]["endpoint"]
        for e in logged
    )
