"""Personal tokens over real HTTP: who a token is, what its scope allows, expiry, revocation,
the rate limit, JSON errors with codes, and the OpenAPI document against the checked-in one."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from ds01_core.framework.runtime import load_runtime
from ds01_core.services.errors import Forbidden
from ds01_core.transports.api_socket.server import ThreadedRuntime
from ds01_web.openapi import openapi_document
from tests.helpers.config import write_config
from tests.plugins.web.web_env import events, request, serving, token_for

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def web(tmp_path_factory, unix_users):
    config = write_config(tmp_path_factory.mktemp("web"))
    runtime = load_runtime(str(config), runtime_class=ThreadedRuntime)
    with serving(runtime) as base:
        yield runtime, base, unix_users["ds01ta"], unix_users["ds01tb"]


def test_a_token_is_its_owner(web):
    runtime, base, alice, bob = web
    made = token_for(runtime, alice.uid, "who", ["read"])
    answer = request(base, "GET", "/api/v1/whoami", made["token"])
    assert answer.status == 200, answer
    assert answer.json["name"] == "ds01ta" and answer.json["admin"] is False
    other = token_for(runtime, bob.uid, "who", ["read"])
    assert request(base, "GET", "/api/v1/whoami", other["token"]).json["name"] == "ds01tb"


def test_the_secret_is_stored_hashed_in_a_private_file(web):
    runtime, _, alice, _ = web
    made = token_for(runtime, alice.uid, "hashed", ["read"])
    db = Path(runtime.config.paths.state_dir) / "web.db"
    assert db.stat().st_mode & 0o777 == 0o600
    secret = made["token"].split("_", 2)[2]
    assert secret.encode() not in db.read_bytes()
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute(
            "SELECT secret_sha256 FROM tokens WHERE id = ?", (made["id"],)
        ).fetchone()
    assert len(stored) == 64 and stored != secret


def test_a_list_shows_only_the_callers_tokens_and_never_a_secret(web):
    runtime, base, alice, bob = web
    token_for(runtime, bob.uid, "bobs", ["read"])
    mine = token_for(runtime, alice.uid, "lister", ["read"])
    answer = request(base, "GET", "/api/v1/tokens", mine["token"])
    assert answer.status == 200, answer
    assert {t["owner"] for t in answer.json} == {"ds01ta"}
    assert "lister" in {t["name"] for t in answer.json}
    assert "token" not in answer.body.decode() or all("token" not in t for t in answer.json)
    assert mine["token"].split("_", 2)[2] not in answer.body.decode()


def test_a_read_token_cannot_change_anything(web):
    runtime, base, alice, _ = web
    read = token_for(runtime, alice.uid, "ro", ["read"])
    answer = request(base, "POST", "/api/v1/containers/anything/stop", read["token"], {})
    assert answer.status == 403, answer
    assert answer.json["error"]["code"] == "DS01_INSUFFICIENT_SCOPE"
    assert "--scope write" in answer.json["error"]["message"]
    denied = events(runtime, "access.denied")
    assert any(e["user"] == "ds01ta" and "read scope" in e["details"]["reason"] for e in denied)


def test_no_token_can_make_a_token(web):
    runtime, base, alice, _ = web
    write = token_for(runtime, alice.uid, "rw", ["read", "write"])
    answer = request(
        base, "POST", "/api/v1/tokens", write["token"], {"name": "child", "expires": "1d"}
    )
    assert answer.status == 403, answer
    assert answer.json["error"]["kind"] == "forbidden"
    assert "logged in" in answer.json["error"]["message"]
    names = [t["name"] for t in request(base, "GET", "/api/v1/tokens", write["token"]).json]
    assert "child" not in names


@pytest.mark.parametrize("case", ["expired", "revoked", "unknown", "malformed", "missing"])
def test_a_bad_token_is_refused_as_401_and_logged(web, case):
    runtime, base, alice, _ = web
    made = token_for(runtime, alice.uid, f"bad-{case}", ["read"], expires="1m")
    presented: str | None = made["token"]
    db = Path(runtime.config.paths.state_dir) / "web.db"
    if case == "expired":
        with sqlite3.connect(db) as conn:
            conn.execute(
                "UPDATE tokens SET expires = '2020-01-01T00:00:00+00:00' WHERE id = ?",
                (made["id"],),
            )
    elif case == "revoked":
        revoke = request(base, "DELETE", f"/api/v1/tokens/{made['id']}", None)
        assert revoke.status == 401  # revoking needs a token too
        listed = token_for(runtime, alice.uid, f"revoker-{case}", ["read", "write"])
        answer = request(base, "DELETE", f"/api/v1/tokens/{made['id']}", listed["token"])
        assert answer.status == 200 and answer.json["state"] == "revoked", answer
    elif case == "unknown":
        presented = made["token"][:-4] + ("AAAA" if not made["token"].endswith("AAAA") else "BBBB")
    elif case == "malformed":
        presented = "not-a-ds01-token"
    else:
        presented = None
    before = len(events(runtime, "access.denied"))
    answer = request(base, "GET", "/api/v1/whoami", presented)
    assert answer.status == 401, answer
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    error = answer.json["error"]
    assert error["code"] == "DS01_UNAUTHENTICATED" and "ds01 token create" in error["message"]
    if case != "missing":  # the same words whatever was wrong
        assert "unknown, expired, revoked or malformed" in error["message"]
    denied = events(runtime, "access.denied")[before:]
    assert len(denied) == 1 and denied[0]["source"] == "web"
    assert denied[0]["details"]["endpoint"] == "GET /api/v1/whoami"


def test_another_users_token_cannot_be_revoked(web):
    runtime, base, alice, bob = web
    alices = token_for(runtime, alice.uid, "keep", ["read"])
    bobs = token_for(runtime, bob.uid, "revoker", ["read", "write"])
    answer = request(base, "DELETE", f"/api/v1/tokens/{alices['id']}", bobs["token"])
    assert answer.status == 404 and answer.json["error"]["code"] == "DS01_NOT_FOUND", answer
    assert request(base, "GET", "/api/v1/whoami", alices["token"]).status == 200


def test_errors_are_json_with_stable_codes(web):
    runtime, base, alice, _ = web
    token = token_for(runtime, alice.uid, "errors", ["read", "write"])["token"]
    cases = [
        ("GET", "/api/v1/no-such-thing", None, 404, "DS01_NOT_FOUND"),
        ("GET", "/api/elsewhere", None, 404, "DS01_NOT_FOUND"),
        ("GET", "/api/v1/containers?all=maybe", None, 400, "DS01_INVALID"),
        ("POST", "/api/v1/containers", {"image": "x"}, 400, "DS01_INVALID"),
        ("PUT", "/api/v1/containers", None, 405, "DS01_METHOD_NOT_ALLOWED"),
        ("GET", "/api/v1/admin/overrides", None, 403, "DS01_FORBIDDEN"),
    ]
    for method, path, body, status, code in cases:
        answer = request(base, method, path, token, body)
        assert answer.status == status, (method, path, answer)
        assert answer.headers["Content-Type"] == "application/json", (method, path)
        assert answer.json["error"]["code"] == code, (method, path, answer)
        assert answer.json["error"]["message"], (method, path)
    garbage = request(base, "POST", "/api/v1/containers", token, None, {"Content-Type": "x"})
    assert garbage.status == 400
    page = request(base, "GET", "/elsewhere")  # outside /api: a page for people, not JSON
    assert page.status == 404 and page.headers["Content-Type"].startswith("text/html"), page
    assert b"there is no page /elsewhere here" in page.body
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_state_changing_calls_are_audited_with_user_and_address(web):
    runtime, base, alice, _ = web
    token = token_for(runtime, alice.uid, "audited", ["read", "write"])["token"]
    answer = request(base, "POST", "/api/v1/containers/nonexistent-web/stop", token, {})
    assert answer.status in (404, 409), answer  # the service says "no container of yours"
    audit = [e for e in events(runtime, "web.request") if e["user"] == "ds01ta"]
    assert (
        audit and audit[-1]["details"]["endpoint"] == "POST /api/v1/containers/nonexistent-web/stop"
    )
    assert (
        audit[-1]["details"]["address"] == "127.0.0.1"
        and audit[-1]["details"]["status"] == answer.status
    )


def test_the_rate_limit_answers_429_with_retry_after(tmp_path, unix_users):
    config = write_config(tmp_path, {"plugins": {"web": {"rate_limit": 3}}})
    runtime = load_runtime(str(config), runtime_class=ThreadedRuntime)
    alice, bob = unix_users["ds01ta"], unix_users["ds01tb"]
    token = token_for(runtime, alice.uid, "busy", ["read"])["token"]
    other = token_for(runtime, bob.uid, "calm", ["read"])["token"]
    with serving(runtime) as base:
        assert [request(base, "GET", "/api/v1/whoami", token).status for _ in range(3)] == [200] * 3
        answer = request(base, "GET", "/api/v1/whoami", token)
        assert answer.status == 429, answer
        assert answer.json["error"]["code"] == "DS01_RATE_LIMITED"
        assert 1 <= int(answer.headers["Retry-After"]) <= 60
        assert request(base, "GET", "/api/v1/whoami", other).status == 200  # each user their own


def test_openapi_is_served_from_the_operation_table_and_checked_in(web):
    runtime, base, _, _ = web
    answer = request(base, "GET", "/api/v1/openapi.json")
    assert answer.status == 200
    served = answer.json
    checked_in = json.loads((ROOT / "docs" / "api" / "openapi.json").read_text())
    assert served == checked_in, (
        "docs/api/openapi.json is out of date: regenerate it with "
        "`python -m ds01_web.openapi > docs/api/openapi.json`"
    )
    assert served == json.loads(json.dumps(openapi_document(runtime)))
    stop = served["paths"]["/api/v1/containers/{name}/stop"]["post"]
    assert stop["operationId"] == "containers.stop"
    assert stop["requestBody"]["content"]["application/json"]["schema"]["properties"]["grace"] == {
        "type": "number"
    }
    listing = served["paths"]["/api/v1/containers"]["get"]
    assert {
        "name": "all",
        "in": "query",
        "required": False,
        "schema": {"type": "boolean", "default": False},
    } in listing["parameters"]
    assert "/api/v1/tokens" in served["paths"]


def test_refused_tokens_are_limited_per_address_too(tmp_path, unix_users):
    config = write_config(tmp_path, {"plugins": {"web": {"rate_limit": 2}}})
    runtime = load_runtime(str(config), runtime_class=ThreadedRuntime)
    with serving(runtime) as base:
        statuses = [request(base, "GET", "/api/v1/whoami", "ds01_nope").status for _ in range(4)]
        assert statuses == [401, 401, 429, 429]
    assert len(events(runtime, "access.denied")) == 2  # a flood is not logged line by line


def test_the_operation_itself_refuses_a_token_making_a_token(web):
    runtime, _, alice, _ = web
    from ds01_web.token_ops import VIA_TOKEN

    marker = VIA_TOKEN.set(True)
    try:
        with pytest.raises(Forbidden, match="a token cannot make tokens"):
            token_for(runtime, alice.uid, "nested", ["read"])
    finally:
        VIA_TOKEN.reset(marker)


def test_admin_rights_are_read_at_each_request(web, admin_member):
    runtime, base, _, _ = web
    token = token_for(runtime, admin_member.uid, "admin-now", ["read"])["token"]
    assert request(base, "GET", "/api/v1/whoami", token).json["admin"] is True
    assert request(base, "GET", "/api/v1/admin/overrides", token).status == 200
    subprocess.run(
        ["gpasswd", "-d", admin_member.name, "ds01-admin"], check=True, capture_output=True
    )
    try:
        assert request(base, "GET", "/api/v1/whoami", token).json["admin"] is False
        assert request(base, "GET", "/api/v1/admin/overrides", token).status == 403
    finally:
        subprocess.run(
            ["gpasswd", "-a", admin_member.name, "ds01-admin"], check=True, capture_output=True
        )


def test_a_jsonl_stream_is_ndjson(web):
    runtime, base, alice, _ = web
    read = token_for(runtime, alice.uid, "follower", ["read"])["token"]
    write = token_for(runtime, alice.uid, "writer", ["read", "write"])["token"]
    req = urllib.request.Request(
        base + "/api/v1/events/follow?type=web.request",
        headers={"Authorization": f"Bearer {read}"},
    )
    with urllib.request.urlopen(req, timeout=30) as stream:
        assert stream.headers["Content-Type"] == "application/x-ndjson"
        request(base, "POST", "/api/v1/containers/followed-web/stop", write, {})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = stream.readline()
            if line.strip():
                record = json.loads(line)
                assert record["event_type"] == "web.request" and record["user"] == "ds01ta"
                assert record["details"]["endpoint"].endswith("/followed-web/stop")
                break
        else:
            pytest.fail("no web.request event came down the stream")


def test_a_token_whose_owner_is_no_longer_that_uid_is_refused(web):
    """An account removed and its uid given to someone else: the token is not theirs."""
    runtime, base, alice, _ = web
    made = token_for(runtime, alice.uid, "reused", ["read"])
    db = Path(runtime.config.paths.state_dir) / "web.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE tokens SET owner = 'someone-gone' WHERE id = ?", (made["id"],))
    answer = request(base, "GET", "/api/v1/whoami", made["token"])
    assert answer.status == 401, answer
    denied = events(runtime, "access.denied")[-1]
    assert denied["details"]["token"] == made["id"] and "renamed" in denied["details"]["reason"]
