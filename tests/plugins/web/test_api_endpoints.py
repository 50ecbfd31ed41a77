"""The REST API's endpoints as the issue lists them, each used by its rightful caller over real
HTTP: a container inspected in detail, GPU availability for me, my quota and my analytics for
week/month/all time, and the admin's quota overrides (created with an expiry, listed, expired),
audit log filters and metrics link."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import pytest

from tests.plugins.web.api_world import api_world
from tests.plugins.web.web_env import request, token_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory, unix_users, admin_member, docker_engine, test_image):
    extra = {"limits": {"defaults": {"max_containers_per_user": 20, "max_gpu_equivalents": 1}}}
    with api_world(
        tmp_path_factory.mktemp("apiends"), unix_users, docker_engine, test_image, extra
    ) as world:
        world["admin"] = token_for(world["runtime"], admin_member.uid, "adm", ["read", "write"])[
            "token"
        ]
        yield world


def get(world, path, who="ds01ta"):
    token = world["admin"] if who == "admin" else world["tokens"][who]
    answer = request(world["url"], "GET", path, token)
    assert answer.status == 200, (path, answer)
    return answer.json


def test_inspect_shows_one_of_my_containers_in_detail(world):
    box = world["box"]
    kept = request(
        world["url"],
        "POST",
        f"/api/v1/containers/{box}/keepalive",
        world["tokens"]["ds01ta"],
        {"seconds": 600},
    )
    assert kept.status == 200, kept
    data = get(world, f"/api/v1/containers/{box}")
    assert data["name"] == box and data["id"] == world["box_id"] and data["user"] == "ds01ta"
    assert data["image"] == world["image"] and data["status"] == "running"
    assert data["created_at"] and data["started_at"]
    assert data["gpu"] == {"slots": [], "weight": 0, "held_after_stop": False}
    assert set(data["resources"]) == {"memory_bytes", "cpus", "pids", "shm_bytes"}
    policy = {row["key"]: row for row in data["policy"]}
    assert {"idle_timeout", "max_runtime"} <= set(policy) and policy["idle_timeout"]["source"]
    assert data["idle"]["keepalive_until"] == kept.json["until"]
    assert {"idle_since", "idle_seconds", "last_active_signal"} <= set(data["idle"])
    by_id = get(world, f"/api/v1/containers/{world['box_id'][:12]}")
    assert by_id["name"] == box
    missing = request(
        world["url"], "GET", "/api/v1/containers/none-such", world["tokens"]["ds01ta"]
    )
    assert missing.status == 404 and "no container 'none-such' of yours" in missing.body.decode()


def test_gpu_availability_for_me_follows_my_quota(world):
    before = get(world, "/api/v1/gpus/available", "ds01tb")
    assert before["user"] == "ds01tb" and before["quota"]["limit"] == 1.0
    kinds = {row["kind"]: row for row in before["free"]}
    mig = kinds["mig 1g.10gb"]
    assert mig["you_can_take"] == min(mig["free"], int(1.0 / mig["weight"] + 1e-9))
    assert kinds["gpu"]["you_can_take"] == 1  # one whole GPU fits a quota of 1.0
    name = f"api-b-mig-{world['tag']}"
    made = request(
        world["url"],
        "POST",
        "/api/v1/containers",
        world["tokens"]["ds01tb"],
        {"name": name, "image": world["image"], "mig": "1g.10gb", "command": ["sleep", "300"]},
    )
    assert made.status == 200, made
    after = get(world, "/api/v1/gpus/available", "ds01tb")
    left = after["quota"]["left"]
    assert after["quota"]["in_use"] == pytest.approx(mig["weight"], abs=1e-3)
    now = {row["kind"]: row for row in after["free"]}
    assert now["mig 1g.10gb"]["free"] == mig["free"] - 1
    assert now["gpu"]["you_can_take"] == 0  # a whole GPU no longer fits what is left
    assert left == pytest.approx(1.0 - mig["weight"], abs=1e-3)
    assert now["mig 1g.10gb"]["you_can_take"] == int((1.0 - mig["weight"]) / mig["weight"] + 1e-9)
    # alice's view: her quota is untouched, she sees the slot taken too
    hers = get(world, "/api/v1/gpus/available")
    assert (
        hers["quota"]["in_use"] == 0
        and {r["kind"]: r for r in hers["free"]}["gpu"]["you_can_take"] == 1
    )
    inspected = get(world, f"/api/v1/containers/{name}", "ds01tb")
    assert len(inspected["gpu"]["slots"]) == 1
    assert inspected["gpu"]["slots"][0]["profile"] == "1g.10gb"
    assert inspected["gpu"]["weight"] == pytest.approx(mig["weight"], abs=1e-3)
    removed = request(
        world["url"],
        "DELETE",
        f"/api/v1/containers/{name}",
        world["tokens"]["ds01tb"],
        {"force": True},
    )
    assert removed.status == 200, removed


def test_my_quota_and_analytics_for_week_month_and_all_time(world):
    quota = get(world, "/api/v1/quota")
    assert quota["user"] == "ds01ta" and quota["gpu_equivalents"]["limit"] == 1.0
    now = dt.datetime.now(dt.UTC)
    starts = {
        "week": (now - dt.timedelta(days=now.weekday())).strftime("%Y-%m-%dT00:00:00"),
        "month": now.strftime("%Y-%m-01T00:00:00"),
        "all": "1970-01-01T00:00:00",
    }
    for period, start in starts.items():
        usage = get(world, f"/api/v1/accounting/usage?period={period}")
        assert usage["period"] == period and usage["scope"] == "user ds01ta", usage
        assert usage["since"].startswith(start), (period, usage["since"])
        assert {"gpu_eq_seconds"} <= set(usage["total"])
    per_container = get(world, "/api/v1/accounting/usage?period=all&by=container")
    assert per_container["by"] == "container"
    bad = request(
        world["url"], "GET", "/api/v1/accounting/usage?period=fortnight", world["tokens"]["ds01ta"]
    )
    assert bad.status == 400 and "week" in bad.json["error"]["message"]


def test_an_admin_creates_lists_and_expires_an_override(world):
    url, token = world["url"], world["admin"]
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(microsecond=0)
    made = request(
        url,
        "POST",
        "/api/v1/admin/overrides",
        token,
        {
            "user": "ds01ta",
            "assignments": ["max_gpu_equivalents=2"],
            "expires": until.isoformat(),
            "reason": "thesis deadline",
        },
    )
    assert made.status == 200, made
    listed = get(world, "/api/v1/admin/overrides?user=ds01ta", "admin")
    mine = [o for o in listed if o["id"] in made.json["ids"]]
    assert mine and mine[0]["expires"].startswith(until.strftime("%Y-%m-%dT%H:%M:%S"))
    assert mine[0]["status"] == "active" and mine[0]["shown"].startswith("max_gpu_equivalents=2")
    assert get(world, "/api/v1/quota")["gpu_equivalents"]["limit"] == 2.0
    past = request(
        url,
        "POST",
        "/api/v1/admin/overrides",
        token,
        {"user": "ds01ta", "assignments": ["max_gpu_equivalents=3"], "expires": "2020-01-01T00:00"},
    )
    assert past.status == 400, past  # an expiry in the past is refused
    expired = request(
        url, "DELETE", "/api/v1/admin/overrides", token, {"ids": [str(i) for i in made.json["ids"]]}
    )
    assert expired.status == 200 and expired.json["removed"] == made.json["ids"], expired
    assert get(world, "/api/v1/quota")["gpu_equivalents"]["limit"] == 1.0
    history = get(world, "/api/v1/admin/overrides?user=ds01ta&all=true", "admin")
    assert {o["status"] for o in history if o["id"] in made.json["ids"]} == {"removed"}


def test_the_audit_log_filters_by_user_type_and_time(world):
    since = quote((dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat())
    until = quote((dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat())
    admin = get(world, f"/api/v1/events?user=ds01ta&since={since}&until={until}&limit=500", "admin")
    assert admin["events"] and {e["user"] for e in admin["events"]} == {"ds01ta"}
    typed = get(world, "/api/v1/events?type=web.request&limit=500", "admin")
    assert typed["events"] and {e["event_type"] for e in typed["events"]} == {"web.request"}
    assert {e["user"] for e in typed["events"]} >= {"ds01ta"}
    future = quote((dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat())
    assert get(world, f"/api/v1/events?since={future}", "admin")["events"] == []
    old = get(world, "/api/v1/events?until=2020-01-01T00:00:00Z", "admin")
    assert old["events"] == []
    own = get(world, "/api/v1/events?type=web.request&limit=500", "ds01tb")
    assert own["events"] and {e["user"] for e in own["events"]} == {"ds01tb"}
    bad = request(world["url"], "GET", "/api/v1/events?since=yesterdayish", world["admin"])
    assert bad.status == 400 and "since" in bad.json["error"]["message"]


def test_the_metrics_link_is_for_admins(world):
    data = get(world, "/api/v1/admin/metrics", "admin")
    assert data["exporter"]["url"] == "http://127.0.0.1:9101/metrics", data
    assert data["dashboards_url"] is None
    refused = request(world["url"], "GET", "/api/v1/admin/metrics", world["tokens"]["ds01ta"])
    assert refused.status == 403
