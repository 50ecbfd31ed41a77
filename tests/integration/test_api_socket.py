"""The local API socket against the real engine, called by real Unix users as themselves.

Who the caller is comes from the kernel; each user sees and changes only their own work;
admins (root, or members of the admin group) see everyone's; refusals are clear and audited;
other users' work is shown only as ``privacy`` allows; a missing service is one line.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from ds01_core.domain.audit_log import EventLog
from ds01_core.domain.model import Event
from tests.helpers.config import write_config
from tests.helpers.gateway import http, json_of, raw_as, status_of
from tests.helpers.servers import running_api
from tests.helpers.user_cli import run_as

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(tmp_path_factory, unix_users, docker_engine, test_image):
    base = tmp_path_factory.mktemp("api")
    config = write_config(
        base,
        {
            "limits": {"defaults": {"max_gpu_equivalents": 2}},
            "api": {"max_connections_per_user": 3},
            "bare_metal": {"group": "users"},
        },
    )
    with running_api(config) as sock:
        yield {"sock": sock, "events": base / "log" / "events.jsonl", "config": config}
    for summary in docker_engine.list_containers(all=True):
        names = [n.lstrip("/") for n in summary.get("Names") or ()]
        if any(n.startswith(f"api-alice-{os.getpid()}") for n in names):
            docker_engine.remove(summary["Id"], force=True)


@pytest.fixture(scope="module")
def alice(unix_users):
    return unix_users["ds01ta"]


@pytest.fixture(scope="module")
def bob(unix_users):
    return unix_users["ds01tb"]


def ds01(user, user_cli, api, *args, **kw):
    env = {"DS01_API_SOCKET": api["sock"], **kw.pop("env", {})}
    result = run_as(user, user_cli, args, env=env, **kw)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def ok(result):
    assert result.returncode == 0, (
        f"{result.args}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )
    return result.stdout


def refused(result, text, code=None):
    assert result.returncode != 0, f"{result.args} was allowed: {result.stdout}"
    if code is not None:
        assert result.returncode == code, result.stderr
    assert result.stderr.startswith("Error: "), result.stderr
    assert text in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


@pytest.fixture(scope="module")
def alices_box(api, alice, user_cli, test_image):
    name = f"api-alice-{os.getpid()}"
    out = ok(
        ds01(
            alice,
            user_cli,
            api,
            "container",
            "create",
            name,
            "--image",
            test_image,
            "--gpus",
            "1",
            "sleep",
            "3600",
        )
    )
    assert f"created {name}" in out and "for ds01ta" in out
    ok(ds01(alice, user_cli, api, "container", "start", name))
    return name


def test_the_caller_is_who_the_kernel_says(api, alice):
    forged = http(
        "GET", "/v1/whoami", headers={"X-Remote-User": "root", "X-Forwarded-User": "root"}
    )
    answer = json_of(raw_as(alice.uid, alice.gid, api["sock"], forged))
    assert answer["name"] == "ds01ta" and answer["uid"] == alice.uid and answer["admin"] is False
    root = json_of(raw_as(0, 0, api["sock"], http("GET", "/v1/whoami")))
    assert root["name"] == "root" and root["admin"] is True


def test_a_uid_without_an_account_is_refused_and_logged(api):
    answer = raw_as(54321, 54321, api["sock"], http("GET", "/v1/quota"))
    assert status_of(answer) == 403
    assert "uid 54321 has no account" in json_of(answer)["error"]["message"]
    logged = [json.loads(line) for line in api["events"].read_text().splitlines()]
    assert any(e["event_type"] == "access.denied" and e["user"] == "uid:54321" for e in logged)


def test_bad_requests_get_json_errors(api, alice):
    def ask(request):
        answer = raw_as(alice.uid, alice.gid, api["sock"], request)
        return status_of(answer), json_of(answer)["error"]

    status, error = ask(http("GET", "/v1/nothing-here"))
    assert status == 404 and "no API endpoint GET /v1/nothing-here" in error["message"]
    status, error = ask(http("POST", "/v1/containers", b"{not json"))
    assert status == 400 and "not JSON" in error["message"]
    status, error = ask(http("GET", "/v1/quota?colour=blue"))
    assert status == 400 and "unknown parameter 'colour'" in error["message"]
    status, error = ask(http("POST", "/v1/containers", {"name": "x"}))
    assert status == 400 and "missing parameter 'image'" in error["message"]
    status, error = ask(http("POST", "/v1/containers/x/keepalive", {"seconds": "long"}))
    assert status == 400 and "expected a number" in error["message"]


def test_users_work_with_their_own_containers(api, alice, user_cli, alices_box):
    listing = json.loads(ok(ds01(alice, user_cli, api, "container", "list", "--json")))
    assert {c["owner"] for c in listing} == {"ds01ta"}
    box = next(c for c in listing if c["name"] == alices_box)
    assert len(box["gpu_slots"]) == 1
    out = ok(ds01(alice, user_cli, api, "container", "exec", alices_box, "echo", "hi there"))
    assert out == "hi there\n"
    quota = json.loads(ok(ds01(alice, user_cli, api, "quota", "--json")))
    assert quota["user"] == "ds01ta"
    assert [a["container"] for a in quota["gpu_equivalents"]["allocations"]] == [alices_box]
    out = ok(ds01(alice, user_cli, api, "keepalive", alices_box, "--for", "1h"))
    assert f"{alices_box} will not be stopped for idleness until" in out
    stats = json.loads(ok(ds01(alice, user_cli, api, "container", "stats", "--json")))
    assert {s["name"]: s["pids"] for s in stats}[alices_box] >= 1


def test_another_users_containers_are_out_of_reach(api, alice, bob, user_cli, alices_box):
    bobs = json.loads(ok(ds01(bob, user_cli, api, "container", "list", "-a", "--json")))
    assert all(c["owner"] == "ds01tb" for c in bobs)
    assert alices_box not in {c["name"] for c in bobs}
    for args in (
        ("container", "stop", alices_box),
        ("container", "remove", "--force", alices_box),
        ("container", "logs", alices_box),
        ("container", "exec", alices_box, "id"),
        ("container", "start", alices_box),
        ("keepalive", alices_box),
    ):
        refused(ds01(bob, user_cli, api, *args), f"no container {alices_box!r} of yours", 1)
    refused(
        ds01(bob, user_cli, api, "container", "stop", alices_box, "--as", "ds01ta"),
        "only admins may see or change another user's containers",
        2,
    )
    refused(ds01(bob, user_cli, api, "quota", "--user", "ds01ta"), "only admins", 2)
    refused(ds01(bob, user_cli, api, "events", "--user", "ds01ta"), "only admins", 2)
    running = json.loads(ok(ds01(alice, user_cli, api, "container", "list", "--json")))
    assert {c["name"]: c["status"] for c in running}[alices_box] == "running"


def test_users_see_only_their_own_events(api, alice, bob, user_cli, alices_box):
    mine = json.loads(ok(ds01(alice, user_cli, api, "events", "--limit", "500", "--json")))
    assert mine and {e["user"] for e in mine} == {"ds01ta"}
    assert any(e["event_type"] == "container.created_by_ds01" for e in mine)
    theirs = json.loads(ok(ds01(bob, user_cli, api, "events", "--limit", "500", "--json")))
    assert all(e["user"] == "ds01tb" for e in theirs)


def test_admin_group_members_act_for_others(api, alice, admin_member, user_cli, alices_box):
    quota = json.loads(ok(ds01(admin_member, user_cli, api, "quota", "--user", "ds01ta", "--json")))
    assert quota["user"] == "ds01ta" and quota["gpu_equivalents"]["in_use"] > 0
    listing = json.loads(
        ok(ds01(admin_member, user_cli, api, "container", "list", "--as", "ds01ta", "--json"))
    )
    assert alices_box in {c["name"] for c in listing}
    events = json.loads(ok(ds01(admin_member, user_cli, api, "events", "--limit", "500", "--json")))
    assert "ds01ta" in {e["user"] for e in events}


def test_privacy_defaults_show_owners_not_names(api, bob, user_cli, alices_box):
    seen = json.loads(ok(ds01(bob, user_cli, api, "workloads", "--json")))["workloads"]
    alices = [w for w in seen if w["owner"] == "ds01ta"]
    assert alices and all(w["name"] == "(hidden)" and w["id"] == "" for w in alices)
    assert all(w["image"] is None for w in alices)
    status = json.loads(ok(ds01(bob, user_cli, api, "gpu", "status", "--json")))
    held = [
        s["allocation"]
        for g in status["gpus"]
        for s in g["slots"]
        if s["allocation"] and s["allocation"]["user"] == "ds01ta"
    ]
    assert held and all(a["container"] == "(hidden)" and a["container_id"] is None for a in held)
    table = ok(ds01(bob, user_cli, api, "gpu", "status"))
    assert "ds01ta" in table and alices_box not in table


def test_privacy_can_hide_owners(tmp_path, alice, bob, user_cli, alices_box, docker_engine):
    config = write_config(tmp_path, {"privacy": {"show_other_owners": False}})
    with running_api(config) as sock:
        env = {"DS01_API_SOCKET": sock}
        seen = json.loads(ok(run_as(bob, user_cli, ["workloads", "--json"], env=env)))
        owners = {w["owner"] for w in seen["workloads"]}
        assert "ds01ta" not in owners and "(another user)" in owners
        own = json.loads(ok(run_as(alice, user_cli, ["workloads", "--json"], env=env)))
        assert alices_box in {w["name"] for w in own["workloads"]}
    config = write_config(tmp_path, {"privacy": {"show_other_container_names": True}}, "b.yaml")
    with running_api(config) as sock:
        seen = json.loads(
            ok(run_as(bob, user_cli, ["workloads", "--json"], env={"DS01_API_SOCKET": sock}))
        )
        assert alices_box in {w["name"] for w in seen["workloads"]}


def test_a_missing_service_is_one_clear_line(alice, user_cli, tmp_path):
    result = run_as(alice, user_cli, ["quota"], env={"DS01_API_SOCKET": "/run/ds01-none/api.sock"})
    refused(result, "the ds01 service is not running", 1)
    assert "systemctl start ds01-api.socket" in result.stderr


def test_connections_per_user_are_capped(api, alice, bob):
    """Three held connections (the configured cap) and the fourth is refused with 429, while
    another user still gets in."""
    answer_r, answer_w = os.pipe()
    release_r, release_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # alice: hold three connections, try a fourth, keep holding until released
        try:
            os.close(answer_r)
            os.close(release_w)
            os.setgroups([])
            os.setgid(alice.gid)
            os.setuid(alice.uid)
            held = []
            for _ in range(3):
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.settimeout(10)
                conn.connect(api["sock"])
                conn.sendall(b"GET /v1/whoami HTTP/1.1\r\nHost: ds01\r\nContent-Length: 0\r\n\r\n")
                conn.recv(65536)
                held.append(conn)
            fourth = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            fourth.settimeout(10)
            fourth.connect(api["sock"])
            fourth.sendall(http("GET", "/v1/whoami"))
            answer = b""
            while chunk := fourth.recv(65536):
                answer += chunk
            os.write(answer_w, answer)
            os.close(answer_w)
            os.read(release_r, 1)
        finally:
            os._exit(0)
    os.close(answer_w)
    os.close(release_r)
    refused_answer = b""
    while chunk := os.read(answer_r, 65536):
        refused_answer += chunk
    os.close(answer_r)
    try:
        other = raw_as(bob.uid, bob.gid, api["sock"], http("GET", "/v1/whoami"))
    finally:
        os.close(release_w)
        os.waitpid(pid, 0)
    assert status_of(refused_answer) == 429
    assert b"the limit is 3" in refused_answer
    assert status_of(other) == 200 and json_of(other)["name"] == "ds01tb"


def test_follow_streams_only_the_users_events(api, alice, user_cli):
    process = subprocess.Popen(
        [
            "runuser",
            "-u",
            alice.name,
            "--",
            "env",
            "-i",
            f"DS01_API_SOCKET={api['sock']}",
            f"HOME={alice.home}",
            str(user_cli / "bin" / "ds01"),
            "events",
            "-f",
            "--json",
            "--type",
            "test.",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        log = EventLog(api["events"])
        deadline = time.monotonic() + 30
        got = ""
        import select

        while time.monotonic() < deadline and '"test.mine"' not in got:
            log.append(Event("test.others", "ds01tb", "test", {}))
            log.append(Event("test.mine", "ds01ta", "test", {"n": 1}))
            ready, _, _ = select.select([process.stdout], [], [], 1.0)
            if ready:
                got += process.stdout.readline()
        records = [json.loads(line) for line in got.splitlines() if line.strip()]
        assert records and {r["user"] for r in records} == {"ds01ta"}
        assert {r["event_type"] for r in records} == {"test.mine"}
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
            raise AssertionError("ds01 events -f did not end on Ctrl-C") from None
    assert "Traceback" not in process.stderr.read()


def test_a_refused_reload_keeps_the_last_good_configuration(tmp_path, alice, user_cli):
    """SIGHUP with a broken file: refused (an event says why), and users are still served."""
    from ds01_core.services.caller import peer_credentials

    config = write_config(tmp_path)
    with running_api(config) as sock:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.connect(sock)
        server_pid = peer_credentials(probe)[0]  # the kernel says who serves the socket
        probe.close()
        config.write_text(config.read_text() + "api: {max_connections_per_user: 0}\n")
        os.kill(server_pid, signal.SIGHUP)
        log = EventLog(tmp_path / "log" / "events.jsonl")
        deadline = time.monotonic() + 20
        refused = []
        while not refused and time.monotonic() < deadline:
            refused = log.query(type_prefix="config.reload_refused")
            time.sleep(0.1)
        assert refused and "api.max_connections_per_user" in refused[0]["details"]["error"]
        answer = json.loads(
            ok(run_as(alice, user_cli, ["quota", "--json"], env={"DS01_API_SOCKET": sock}))
        )
        assert answer["user"] == "ds01ta"
