"""Limit resolution: defaults → group → user → unexpired overrides, with provenance."""

from __future__ import annotations

import datetime as dt

from ds01_core.domain.config import LimitSet, build_config
from ds01_core.domain.limits import OverrideRecord, resolve_limits
from ds01_core.domain.units import ByteSize

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def make_config():
    return build_config(
        {
            "limits": {
                "defaults": {"max_gpu_equivalents": 1, "memory": "32g", "pids_limit": 1000},
                "groups": {
                    "student": {"members": ["alice", "bob"], "max_gpu_equivalents": 0.5},
                    "researcher": {"max_gpu_equivalents": 2, "memory": "64g"},
                },
                "users": {
                    "bob": {"pids_limit": 2000},
                    "carol": {"group": "researcher", "memory": "96g"},
                },
                "overrides": [
                    {
                        "user": "alice",
                        "values": {"max_gpu_equivalents": 3},
                        "expires": "2026-11-23T00:00:00Z",
                        "reason": "paper deadline",
                        "approved_by": "prof",
                    },
                    {
                        "user": "ALICE@example.org",
                        "values": {"memory": "48g"},
                        "expires": "2026-12-24",
                        "reason": "big dataset",
                        "approved_by": "admin",
                    },
                ],
            }
        },
        now=NOW,
    )


def test_layers_apply_in_order_with_sources():
    config = make_config()
    bob = resolve_limits(config, "bob", now=NOW)
    assert bob.group == "student"
    assert bob["max_gpu_equivalents"] == 0.5
    assert bob.values["max_gpu_equivalents"].source == "group student"
    assert bob["pids_limit"] == 2000
    assert bob.values["pids_limit"].source == "user bob"
    assert bob["memory"] == ByteSize.parse("32g")
    assert bob.values["memory"].source == "defaults"
    assert bob["max_containers_per_user"] == 3
    assert bob.values["max_containers_per_user"].source == "built-in"
    assert bob["cpu_quota"] is None
    assert bob.values["cpu_quota"].source == "not set (no limit)"


def test_user_group_field_and_user_values_beat_group():
    carol = resolve_limits(make_config(), "carol", now=NOW)
    assert carol.group == "researcher"
    assert carol["max_gpu_equivalents"] == 2
    assert carol["memory"] == ByteSize.parse("96g")


def test_user_in_no_group_gets_defaults():
    dave = resolve_limits(make_config(), "dave", now=NOW)
    assert dave.group is None
    assert dave["max_gpu_equivalents"] == 1.0
    assert dave.values["max_gpu_equivalents"].source == "defaults"


def test_overrides_apply_until_they_expire():
    config = make_config()
    alice = resolve_limits(config, "alice", now=NOW)
    assert alice["max_gpu_equivalents"] == 3
    source = alice.values["max_gpu_equivalents"].source
    assert source == "override until 2026-11-23T00:00:00Z (paper deadline; approved by prof)"
    assert alice.values["max_gpu_equivalents"].expires == dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    assert alice["memory"] == ByteSize.parse("48g")  # names normalised: ALICE@example.org

    a_day_later = NOW + dt.timedelta(days=1)
    alice = resolve_limits(config, "alice", now=a_day_later)
    assert alice["max_gpu_equivalents"] == 0.5  # back to the group's value, by itself
    assert alice.values["max_gpu_equivalents"].source == "group student"
    assert alice["memory"] == ByteSize.parse("48g")  # the other override still runs

    after_christmas = dt.datetime(2026, 12, 25, tzinfo=dt.UTC)
    assert resolve_limits(config, "alice", now=after_christmas)["memory"] == ByteSize.parse("32g")


def test_extra_overrides_from_the_state_store_apply_last_and_expire():
    config = make_config()
    extra = OverrideRecord(
        "bob",
        LimitSet(max_gpu_equivalents=1.5),
        NOW + dt.timedelta(hours=1),
        "demo",
        "root",
        origin="state",
    )
    bob = resolve_limits(config, "bob", now=NOW, extra_overrides=[extra])
    assert bob["max_gpu_equivalents"] == 1.5
    later = resolve_limits(config, "bob", now=NOW + dt.timedelta(hours=2), extra_overrides=[extra])
    assert later["max_gpu_equivalents"] == 0.5


def test_group_from_a_directory_wins_over_the_file():
    bob = resolve_limits(make_config(), "bob", now=NOW, group="researcher")
    assert bob.group == "researcher"
    assert bob["max_gpu_equivalents"] == 2
