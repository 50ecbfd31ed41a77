"""The per-user rate limit over real HTTP, beyond test_tokens_http.py's first 429: it counts the
user, not the token (a second token does not double the allowance); a refused request is not run
(a revoke that answers 429 revokes nothing); the refusal says when to come back, in the header
and in words; and other users go on meanwhile, each with their own allowance."""

from __future__ import annotations

import pytest

from ds01_core.framework.runtime import load_runtime
from ds01_core.services.caller import Caller
from ds01_core.services.catalogue import call
from ds01_core.services.operations import ServiceContext
from ds01_core.transports.api_socket.server import ThreadedRuntime
from tests.helpers.config import write_config
from tests.plugins.web.web_env import request, serving, token_for

LIMIT = 4


@pytest.fixture
def web(tmp_path, unix_users):
    config = write_config(tmp_path, {"plugins": {"web": {"rate_limit": LIMIT}}})
    runtime = load_runtime(str(config), runtime_class=ThreadedRuntime)
    with serving(runtime) as base:
        yield runtime, base, unix_users["ds01ta"], unix_users["ds01tb"]
    runtime.close()


def test_the_limit_is_per_user_not_per_token(web):
    runtime, base, alice, bob = web
    first = token_for(runtime, alice.uid, "one", ["read"])["token"]
    second = token_for(runtime, alice.uid, "two", ["read"])["token"]
    bobs = token_for(runtime, bob.uid, "bob", ["read"])["token"]
    statuses = [request(base, "GET", "/api/v1/whoami", t).status for t in [first, second] * 3]
    assert statuses == [200] * LIMIT + [429, 429], statuses
    refused = request(base, "GET", "/api/v1/whoami", second)
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 60
    message = refused.json["error"]["message"]
    assert f"more than {LIMIT} requests" in message and "plugins.web.rate_limit" in message
    assert f"try again in {wait} s" in message or f"try again in {wait - 1} s" in message
    # bob has his own allowance, all of it
    assert [request(base, "GET", "/api/v1/whoami", bobs).status for _ in range(LIMIT)] == [
        200
    ] * LIMIT
    assert request(base, "GET", "/api/v1/whoami", bobs).status == 429


def test_a_refused_request_is_not_run(web):
    runtime, base, alice, _ = web
    writer = token_for(runtime, alice.uid, "writer", ["read", "write"])["token"]
    victim = token_for(runtime, alice.uid, "victim", ["read"])
    for _ in range(LIMIT):
        assert request(base, "GET", "/api/v1/whoami", writer).status == 200
    revoke = request(base, "DELETE", f"/api/v1/tokens/{victim['id']}", writer)
    assert revoke.status == 429 and revoke.json["error"]["code"] == "DS01_RATE_LIMITED"
    caller = Caller.from_uid(alice.uid, runtime.config.gateway.admin_group)
    listed = call(ServiceContext(runtime, caller), "web.token_list")
    assert {t["id"]: t["state"] for t in listed}[victim["id"]] == "active"
