"""The per-user image namespace rule: whose namespace a name is in, and whose an image is."""

from __future__ import annotations

import pytest

from ds01_core.domain.images import (
    IMAGE_OWNER_LABEL,
    image_owner,
    is_image_reference,
    namespace_owner,
    normalize_reference,
    real_tags,
    user_repository,
)


def test_user_repository_is_in_the_users_namespace():
    assert user_repository("bob", "x") == "ds01/bob/x"
    assert user_repository("Bob@UNI.EDU", "x") == "ds01/bob/x"
    assert namespace_owner(user_repository("bob", "x") + ":1") == "bob"


@pytest.mark.parametrize(
    ("ref", "owner"),
    [
        ("ds01/bob/x", "bob"),
        ("ds01/bob/x:1", "bob"),
        ("ds01/bob/x:1@sha256:" + "a" * 64, "bob"),
        ("ds01/bob/x@sha256:" + "a" * 64, "bob"),
        ("docker.io/ds01/bob/x:1", "bob"),
        ("index.docker.io/ds01/bob/x", "bob"),
        ("ds01/Bob/x", "bob"),
        ("ds01/bob", "bob"),  # a repository named after the user is theirs too
        ("ds01/bob/a/b:2", "bob"),
        ("pytorch/pytorch:2", None),
        ("busybox", None),
        ("library/busybox:latest", None),
        ("ds01:latest", None),
        ("ds01x/bob/x", None),
        ("localhost:5000/ds01/bob/x", None),
        ("localhost/ds01/bob/x", None),
        ("ghcr.io/ds01/bob/x:1", None),
        ("sha256:" + "b" * 64, None),
        ("", None),
    ],
)
def test_namespace_owner(ref, owner):
    assert namespace_owner(ref) == owner


@pytest.mark.parametrize(
    ("ref", "normal"),
    [
        ("x", "x:latest"),
        ("docker.io/library/busybox", "busybox:latest"),
        ("docker.io/ds01/u/x:1", "ds01/u/x:1"),
        ("ds01/u/x:1@sha256:" + "c" * 64, "ds01/u/x:1"),
        ("localhost:5000/x:2", "localhost:5000/x:2"),
    ],
)
def test_normalize_reference(ref, normal):
    assert normalize_reference(ref) == normal


def test_the_owner_label_decides_whatever_the_tags():
    inspect = {"Config": {"Labels": {IMAGE_OWNER_LABEL: "Alice"}}, "RepoTags": ["ds01/bob/x:1"]}
    assert image_owner(inspect) == "alice"
    summary = {"Labels": {IMAGE_OWNER_LABEL: "alice"}, "RepoTags": ["shared:1"]}
    assert image_owner(summary) == "alice"


def test_without_a_label_tags_decide_when_all_are_in_one_namespace():
    assert image_owner({"RepoTags": ["ds01/bob/x:1", "docker.io/ds01/bob/y:2"]}) == "bob"
    assert image_owner({"RepoTags": ["ds01/bob/x:1", "<none>:<none>"]}) == "bob"
    assert image_owner({"RepoTags": ["ds01/bob/x:1", "ds01/carol/x:1"]}) is None


def test_a_shared_image_tagged_into_a_namespace_stays_shared():
    # bob's tag must not take busybox away from everyone else
    assert image_owner({"RepoTags": ["busybox:latest", "ds01/bob/bb:latest"]}) is None
    assert image_owner({"Config": {"Labels": None}, "RepoTags": ["ds01/bob/x:1"]}) == "bob"


def test_shared_images_have_no_owner():
    assert image_owner({"RepoTags": ["pytorch/pytorch:2"], "Labels": {"other": "x"}}) is None
    assert image_owner({"RepoTags": ["<none>:<none>"]}) is None
    assert image_owner({}) is None
    assert image_owner({"Config": None, "Labels": {IMAGE_OWNER_LABEL: ""}}) is None


def test_real_tags_leave_out_none():
    assert real_tags({"RepoTags": ["<none>:<none>", "a:1"]}) == ["a:1"]
    assert real_tags({"RepoTags": None}) == []


def test_quota_lines_count_the_users_tagged_images_and_sum_all_their_sizes():
    from types import SimpleNamespace

    from ds01_core.domain.model import EffectiveLimits, LimitValue
    from ds01_core.services.quota import _image_lines

    rows = [
        {"RepoTags": ["ds01/bob/a:1"], "Size": 100},
        {"RepoTags": ["<none>:<none>"], "Labels": {IMAGE_OWNER_LABEL: "bob"}, "Size": 50},
        {"RepoTags": ["x:1"], "Labels": {IMAGE_OWNER_LABEL: "bob"}, "Size": 10},
        {"RepoTags": ["ds01/carol/a:1"], "Size": 1000},
        {"RepoTags": ["busybox:latest", "ds01/bob/bb:1"], "Size": 1000},
    ]
    runtime = SimpleNamespace(docker=SimpleNamespace(api=SimpleNamespace(images=lambda: rows)))
    values = {"max_images": LimitValue(2, "defaults"), "max_image_storage": LimitValue(None, "-")}
    images, storage = _image_lines(runtime, "bob", EffectiveLimits("bob", None, values))
    assert (images.used, images.limit, images.over) == (2, 2, False)
    assert (storage.used, storage.limit, storage.over) == (160, None, False)
    none = {"max_images": LimitValue(None, "-"), "max_image_storage": LimitValue(None, "-")}
    assert _image_lines(runtime, "bob", EffectiveLimits("bob", None, none)) == []


@pytest.mark.parametrize(
    "ref",
    [
        "ds01-test:busybox",
        "ds01/alice/x:1.0",
        "localhost:5000/team/img:latest",
        "nvcr.io/nvidia/pytorch:24.01-py3",
        "docker.io/library/ubuntu@sha256:" + "a" * 64,
        "sha256:" + "0" * 64,
        "abcdef12",
    ],
)
def test_image_references_as_docker_spells_them(ref):
    assert is_image_reference(ref)


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "..",
        "../containers/abc",
        "x/../../containers/abc",
        "a?b",
        "a b",
        "a%2e",
        "a//b",
        "Ubuntu",
        "x:" + "t" * 200,
    ],
)
def test_paths_and_junk_are_no_image_reference(ref):
    assert not is_image_reference(ref)
