"""The image limits as the gateway checks them, against a stand-in engine listing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ds01_core.domain.images import IMAGE_OWNER_LABEL
from ds01_core.domain.model import EffectiveLimits, LimitValue
from ds01_core.transports.gateway.call import Refused
from ds01_core.transports.gateway.image_policy import check_limits

MB = 1024 * 1024


def _call(rows, max_images=None, max_storage=None):
    values = {
        "max_images": LimitValue(max_images, "user"),
        "max_image_storage": LimitValue(max_storage, "user"),
    }
    limits = EffectiveLimits("alice", None, values)
    engine = SimpleNamespace(call=lambda method, path: (200, rows))
    gateway = SimpleNamespace(in_runtime=lambda fn, user: limits)
    return SimpleNamespace(user="alice", engine=engine, gateway=gateway)


ROWS = [
    {"Id": "sha256:a", "RepoTags": ["ds01/alice/a:1"], "Size": 10 * MB},
    {"Id": "sha256:b", "RepoTags": ["b:1"], "Labels": {IMAGE_OWNER_LABEL: "alice"}, "Size": MB},
    {"Id": "sha256:u", "RepoTags": ["<none>:<none>"], "Labels": {IMAGE_OWNER_LABEL: "alice"}},
    {"Id": "sha256:o", "RepoTags": ["ds01/bob/o:1"], "Size": 100 * MB},
    {"Id": "sha256:s", "RepoTags": ["busybox:latest"], "Size": 100 * MB},
]


def test_below_the_limit_a_new_image_passes():
    check_limits(_call(ROWS, max_images=3), ["ds01/alice/new:1"])


def test_at_the_limit_a_new_image_is_refused_with_the_numbers():
    with pytest.raises(Refused) as refused:
        check_limits(_call(ROWS, max_images=2), ["ds01/alice/new:1"])
    assert "you have 2 images and may have 2 (max_images)" in refused.value.message
    assert "ds01 image remove NAME" in refused.value.message


def test_at_the_limit_replacing_or_renaming_ones_own_passes():
    call = _call(ROWS, max_images=2)
    check_limits(call, ["docker.io/ds01/alice/a:1"])  # a rebuild of a tag of hers
    check_limits(call, ["b:1"])
    check_limits(call, ["alias:1"], "sha256:a")  # another name for one of hers
    check_limits(call, [])  # a build without a tag adds no tagged image


def test_storage_counts_every_image_of_hers_untagged_ones_too():
    check_limits(_call(ROWS, max_storage=11 * MB + 1), ["x:1"])
    with pytest.raises(Refused, match=r"11.0M.*\(max_image_storage\) is 11.0M"):
        check_limits(_call(ROWS, max_storage=11 * MB), ["x:1"])


def test_no_limits_set_asks_nothing_of_the_engine():
    call = _call(None)
    call.engine.call = lambda *a: pytest.fail("the engine was asked")
    check_limits(call, ["x:1"])
