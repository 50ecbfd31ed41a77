"""Memory admission: reservations of the containers in the user's cgroup plus the new one."""

from __future__ import annotations

from cgroups_helpers import FakeDocker

from ds01_cgroups.admission import memory_refusal
from ds01_cgroups.inventory import ContainerParents, Member

GiB = 1024**3


def test_the_refusal_shows_usage_and_limit() -> None:
    members = [Member("1", "a", 16 * GiB), Member("2", "b", 24 * GiB), Member("3", "c", 0)]
    assert memory_refusal(48 * GiB, members, 16 * GiB) == (
        "memory: 40.0G of 48.0G (memory_max) reserved by your containers (a 16.0G, b 24.0G); "
        "this one asks 16.0G. Stop or remove a container, or ask for less memory."
    )


def test_what_fits_is_admitted() -> None:
    members = [Member("1", "a", 16 * GiB), Member("2", "b", 24 * GiB)]
    assert memory_refusal(48 * GiB, members, 8 * GiB) is None
    assert memory_refusal(48 * GiB, [], 48 * GiB) is None
    assert memory_refusal(48 * GiB, members, 0) is None  # no limit of its own: reserves nothing


def test_the_first_container_over_the_limit_alone_is_refused() -> None:
    message = memory_refusal(8 * GiB, [], 16 * GiB)
    assert message is not None and "reserved by your containers (none)" in message


def test_members_are_the_active_containers_under_the_parent() -> None:
    docker = FakeDocker()
    docker.add("a1", "a", parent="/ds01/default/alice", memory=16 * GiB)
    docker.add("a2", "b", parent="ds01/default/alice", memory=24 * GiB, state="created")
    docker.add("a3", "stopped", parent="/ds01/default/alice", memory=8 * GiB, state="exited")
    docker.add("b1", "bobs", parent="/ds01/default/bob", memory=8 * GiB)
    docker.add("x1", "raw", parent="", memory=8 * GiB)
    parents = ContainerParents(docker)
    assert parents.members("/ds01/default/alice") == [
        Member("a1", "a", 16 * GiB),
        Member("a2", "b", 24 * GiB),
    ]
    docker.calls.clear()
    parents.members("/ds01/default/alice")
    # parents are cached: only the two members are inspected again (for their memory now)
    assert docker.calls == ["list", "inspect a1", "inspect a2"]
