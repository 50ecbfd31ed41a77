"""Where a user's cgroup is, under each driver; slice-name escaping."""

from __future__ import annotations

import pytest

from ds01_cgroups.naming import escape_unit_part, path_part, same_parent, user_cgroup


def test_cgroupfs_path_and_parent() -> None:
    cg = user_cgroup("ds01", "students", "Alice@EXAMPLE.org", "cgroupfs", default_group="default")
    assert cg.parent == "/ds01/students/alice"
    assert cg.path == "ds01/students/alice"
    assert cg.slices == () and cg.unit is None


def test_user_without_group_gets_the_default_group() -> None:
    cg = user_cgroup("ds01", None, "EXAMPLE\\Bob", "cgroupfs", default_group="default")
    assert cg.parent == "/ds01/default/bob"


def test_systemd_slices_nest_and_escape_dashes() -> None:
    cg = user_cgroup("ds01", "ml-lab", "jean-luc.picard", "systemd", default_group="default")
    assert cg.slices == (
        "ds01.slice",
        "ds01-ml\\x2dlab.slice",
        "ds01-ml\\x2dlab-jean\\x2dluc.picard.slice",
    )
    assert cg.parent == "ds01-ml\\x2dlab-jean\\x2dluc.picard.slice"
    assert cg.unit == cg.parent
    assert cg.path == "ds01.slice/ds01-ml\\x2dlab.slice/ds01-ml\\x2dlab-jean\\x2dluc.picard.slice"


def test_escaping_keeps_dash_and_underscore_apart() -> None:
    a = user_cgroup("ds01", None, "a-b", "systemd", default_group="default")
    b = user_cgroup("ds01", None, "a_b", "systemd", default_group="default")
    assert a.parent != b.parent
    # exactly three levels: systemd splits a slice name at every unescaped '-'
    assert a.parent.removesuffix(".slice").count("-") == 2


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("alice", "alice"),
        ("a-b", "a\\x2db"),
        (".hidden", "\\x2ehidden"),
        ("a.b", "a.b"),
        ("x y", "x\\x20y"),
        ("é", "\\xc3\\xa9"),
    ],
)
def test_escape_unit_part_like_systemd_escape(text: str, escaped: str) -> None:
    assert escape_unit_part(text) == escaped


@pytest.mark.parametrize(
    ("name", "safe"), [("..", "_."), ("a/b", "a_b"), (".x", "_x"), ("", "_"), ("ok-1", "ok-1")]
)
def test_path_part_never_escapes_the_directory(name: str, safe: str) -> None:
    assert path_part(name) == safe


def test_user_names_are_normalised_and_made_safe() -> None:
    cg = user_cgroup("ds01", None, "O'Brien@example.org", "cgroupfs", default_group="default")
    assert cg.user == "o_brien"


def test_same_parent_ignores_slashes_but_not_names() -> None:
    assert same_parent("/ds01/default/alice", "/ds01/default/alice")
    assert same_parent("ds01/default/alice/", "/ds01/default/alice")
    assert not same_parent("/ds01/default/alicia", "/ds01/default/alice")
    assert not same_parent("", "/ds01/default/alice")
    assert not same_parent(None, "/ds01/default/alice")
