"""Two real users over the REST API: tokens made with ``ds01 token create`` through the real
``ds01-api`` (as each user), then containers created, listed and attacked over real HTTP — each
user sees only their own, and another user's container is not theirs to inspect, stop or
remove (the gateway security suite's cross-user cases, over REST)."""

from __future__ import annotations

import json
import os

import pytest

from ds01_core.framework.runtime import load_runtime
from ds01_core.transports.api_socket.server import ThreadedRuntime
from tests.helpers.config import write_config
from tests.helpers.servers import running_api
from tests.helpers.user_cli import run_as
from tests.plugins.web.web_env import events, request, serving

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory, unix_users, user_cli, docker_engine, test_image):
    base = tmp_path_factory.mktemp("webusers")
    base.chmod(0o755)
    config = write_config(base)
    alice, bob = unix_users["ds01ta"], unix_users["ds01tb"]
    tag = os.getpid()
    runtime = load_runtime(str(config), runtime_class=ThreadedRuntime)
    with running_api(config) as sock, serving(runtime) as url:

        def ds01(user, *args):
            return run_as(user, user_cli, list(args), env={"DS01_API_SOCKET": sock})

        tokens = {}
        for user in (alice, bob):
            made = ds01(
                user,
                "token",
                "create",
                "--name",
                "rw",
                "--scope",
                "read",
                "--scope",
                "write",
                "--expires",
                "1d",
            )
            assert made.returncode == 0, made.stderr
            tokens[user.name] = made.stdout.strip()
        world = {
            "runtime": runtime,
            "url": url,
            "ds01": ds01,
            "alice": alice,
            "bob": bob,
            "tokens": tokens,
            "tag": tag,
            "image": test_image,
        }
        for user in (alice, bob):
            box = f"web-{user.name[-1]}-{tag}"
            answer = request(
                url,
                "POST",
                "/api/v1/containers",
                tokens[user.name],
                {"name": box, "image": test_image, "cpu_only": True, "command": ["sleep", "600"]},
            )
            assert answer.status == 200, answer
            world[f"box_{user.name}"] = answer.json.get("name", box)
        yield world
    for summary in docker_engine.list_containers(all=True):
        if any(f"-{tag}" in n and "web-" in n for n in summary.get("Names") or []):
            docker_engine.remove(summary["Id"], force=True)


def names(answer):
    return {c.get("name") for c in answer.json}


def test_the_cli_makes_lists_and_revokes_tokens_through_ds01_api(world):
    alice, url = world["alice"], world["url"]
    made = world["ds01"](
        alice, "token", "create", "--name", "ci", "--scope", "read", "--expires", "30d"
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("ds01_") and "shown only now" in made.stderr
    assert request(url, "GET", "/api/v1/whoami", token).json["name"] == "ds01ta"
    listed = world["ds01"](alice, "token", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert {r["owner"] for r in rows} == {"ds01ta"} and token.split("_", 2)[2] not in listed.stdout
    ci = next(r for r in rows if r["name"] == "ci")
    assert ci["scopes"] == ["read"] and ci["state"] == "active"
    table = world["ds01"](alice, "token", "list")
    assert "ci" in table.stdout and ci["id"] in table.stdout
    # bob cannot revoke alice's token; alice can, and then it is refused
    assert world["ds01"](world["bob"], "token", "revoke", ci["id"]).returncode == 1
    revoked = world["ds01"](alice, "token", "revoke", ci["id"])
    assert revoked.returncode == 0 and f"revoked token {ci['id']}" in revoked.stdout
    assert request(url, "GET", "/api/v1/whoami", token).status == 401


@pytest.mark.parametrize(
    "args, words",
    [
        (["token", "create", "--expires", "1d"], "--name"),
        (["token", "create", "--name", "x", "--expires", "1d", "--scope", "admin"], "admin"),
        (["token", "create", "--name", "x", "--expires", "1000d"], "token_max_lifetime"),
        (["token", "create", "--name", "x", "--expires", "soon"], "--expires"),
        (["token", "create", "--name", "no spaces", "--expires", "1d"], "token name"),
        (["token", "revoke"], "ID"),
    ],
)
def test_token_usage_errors_exit_2(world, args, words):
    result = world["ds01"](world["alice"], *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert words in result.stderr and "Traceback" not in result.stderr


def test_each_user_lists_only_their_own_containers(world):
    for me, other in (("ds01ta", "ds01tb"), ("ds01tb", "ds01ta")):
        answer = request(world["url"], "GET", "/api/v1/containers?all=true", world["tokens"][me])
        assert answer.status == 200, answer
        assert world[f"box_{me}"] in names(answer)
        assert world[f"box_{other}"] not in names(answer)


ATTACKS = [
    ("GET", "/api/v1/containers/{box}/logs?tail=5", None),
    ("POST", "/api/v1/containers/{box}/stop", {}),
    ("POST", "/api/v1/containers/{box}/start", {}),
    ("POST", "/api/v1/containers/{box}/exec", {"command": ["id"]}),
    ("POST", "/api/v1/containers/{box}/keepalive", {"seconds": 60}),
    ("DELETE", "/api/v1/containers/{box}", {"force": True}),
    ("GET", "/api/v1/containers?user=ds01ta", None),
    ("GET", "/api/v1/containers/stats?user=ds01ta", None),
]


@pytest.mark.parametrize("method, path, body", ATTACKS)
def test_another_users_container_is_out_of_reach(world, method, path, body):
    url, alice_box = world["url"], world["box_ds01ta"]
    answer = request(url, method, path.format(box=alice_box), world["tokens"]["ds01tb"], body)
    assert answer.status in (403, 404, 409), answer
    error = answer.json["error"]
    assert error["code"] in ("DS01_FORBIDDEN", "DS01_NOT_FOUND", "DS01_CONFLICT")
    if error["kind"] != "forbidden":  # told apart from "no such container" by nothing
        assert "no container" in error["message"] and "of yours" in error["message"], error
    # alice's container is still there
    mine = request(url, "GET", "/api/v1/containers?all=true", world["tokens"]["ds01ta"])
    assert alice_box in names(mine)
    if error["kind"] == "forbidden":
        denied = events(world["runtime"], "access.denied")
        assert any(e["user"] == "ds01tb" and e["source"] == "web" for e in denied)


def test_the_owner_stops_and_removes_over_rest(world):
    url, token, box = world["url"], world["tokens"]["ds01tb"], world["box_ds01tb"]
    logs = request(url, "GET", f"/api/v1/containers/{box}/logs?tail=5", token)
    assert logs.status == 200 and logs.headers["Content-Type"] == "application/octet-stream"
    stopped = request(url, "POST", f"/api/v1/containers/{box}/stop", token, {"grace": 1})
    assert stopped.status == 200, stopped
    removed = request(url, "DELETE", f"/api/v1/containers/{box}", token, {})
    assert removed.status == 200, removed
    assert box not in names(request(url, "GET", "/api/v1/containers?all=true", token))
    audit = [e for e in events(world["runtime"], "web.request") if e["user"] == "ds01tb"]
    assert {"POST /api/v1/containers/" + box + "/stop", "DELETE /api/v1/containers/" + box} <= {
        e["details"]["endpoint"] for e in audit
    }
