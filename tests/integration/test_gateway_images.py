"""Images through the gateway as real users: a namespace per user (``ds01/<user>/…``), the
``ds01.owner`` label on builds and commits, other users' images hidden, and the image limits.

ds01ta builds into her namespace; ds01tb tries every way into it (build, tag, commit, pull,
load, remove, inspect, history, save, list, create a container); ds01tc (admin) sees and
removes everything. Builds use the classic builder (``DOCKER_BUILDKIT=0``), from the test image.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from ds01_core.domain.images import IMAGE_OWNER_LABEL, image_owner, real_tags
from tests.conftest import unavailable
from tests.helpers.config import write_config
from tests.helpers.gateway import DOCKER, as_user, docker, ok, refused, running_gateway

pytestmark = pytest.mark.integration
V = "/v1.41"
PID = os.getpid()


def build(user, sock, context: Path, *args: str):
    """``docker build`` as ``user`` with the classic builder."""
    return as_user(
        user, sock, "DOCKER_BUILDKIT=0", DOCKER, "build", *args, str(context), timeout=120
    )


def engine(*args: str) -> subprocess.CompletedProcess[str]:
    """The real engine, as root (not through the gateway)."""
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=120)


def engine_inspect(ref: str) -> dict | None:
    result = engine("image", "inspect", ref)
    return json.loads(result.stdout)[0] if result.returncode == 0 else None


@pytest.fixture(scope="module")
def scratch():
    """This module's files, outside pytest's shared temporary root (which another pytest run
    on the host may prune while these tests run)."""
    directory = Path(tempfile.mkdtemp(prefix="gwimg-"))
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def tmp_path(scratch, request):
    directory = scratch / request.node.name.replace("/", "_")[:80]
    directory.mkdir()
    return directory


@pytest.fixture(scope="module")
def context(scratch, test_image):
    """A build context any user can read."""
    directory = scratch / "context"
    directory.mkdir()
    (directory / "Dockerfile").write_text(f"FROM {test_image}\nLABEL gwimg.test={PID}\n")
    os.chmod(directory, 0o755)
    os.chmod(directory / "Dockerfile", 0o644)
    return directory


@pytest.fixture(scope="module")
def made():
    """References of images the tests made, removed at the end (by the engine, as root)."""
    refs: list[str] = []
    yield refs
    for ref in reversed(refs):
        engine("rmi", "-f", ref)


@pytest.fixture(scope="module")
def gateway(scratch, unix_users, docker_engine, test_image):
    (scratch / "gateway").mkdir()
    config = write_config(scratch / "gateway")
    with running_gateway(config) as sock:
        yield sock


@pytest.fixture(scope="module")
def alice(unix_users):
    return unix_users["ds01ta"]


@pytest.fixture(scope="module")
def bob(unix_users):
    return unix_users["ds01tb"]


@pytest.fixture(scope="module")
def alices(gateway, alice, context, made):
    """ds01ta's image, built through the gateway with a forged owner label."""
    ref = f"ds01/ds01ta/gwimg-a-{PID}:1"
    made.append(ref)
    ok(
        build(
            alice,
            gateway,
            context,
            "-t",
            ref,
            "--label",
            f"{IMAGE_OWNER_LABEL}=ds01tb",
            "--label",
            "ds01.user=ds01tb",
            "--label",
            "ds01.image.name=gwimg-info",
        )
    )
    image = engine_inspect(ref)
    assert image is not None
    return {"ref": ref, "id": image["Id"], "image": image}


def test_a_build_in_ones_namespace_carries_the_owner_label(alices):
    labels = alices["image"]["Config"]["Labels"]
    assert labels[IMAGE_OWNER_LABEL] == "ds01ta"  # the client's ds01.owner=ds01tb lost
    assert labels["gwimg.test"] == str(PID)
    # what ds01 image records about an image passes; what ds01 trusts (a container's owner,
    # inherited from its image's labels) does not
    assert labels["ds01.image.name"] == "gwimg-info"
    assert "ds01.user" not in labels
    assert image_owner(alices["image"]) == "ds01ta"


def test_a_build_outside_ds01_is_owned_too(gateway, bob, context, made):
    ref = f"gwimg-b-{PID}:1"
    made.append(ref)
    ok(build(bob, gateway, context, "-t", ref))
    assert image_owner(engine_inspect(ref)) == "ds01tb"


DEBIAN_DOCKER = "/usr/bin/docker"  # docker.io's CLI (20.10): it sends every build parameter


@pytest.mark.parametrize("cli", [DOCKER, DEBIAN_DOCKER], ids=["docker", "debian-docker"])
def test_both_docker_clis_build_with_a_dockerfile_outside_the_context(
    gateway, bob, test_image, tmp_path, made, cli
):
    """``docker build -f ../Dockerfile.dev ctx`` (what the Dev Containers CLI runs): the CLI
    adds the file to the context under a random name and the tar ends without its end blocks;
    Debian's older CLI also sends an empty ``cgroupparent``. Both build, and the Dockerfile
    is still checked (FROM another's image is refused the same way)."""
    if not os.access(cli, os.X_OK):
        unavailable(f"{cli} is not installed (scripts/ci/setup-docker.sh installs docker.io)")
    ref = f"gwimg-dev-{PID}-{abs(hash(cli)) % 1000}:1"
    made.append(ref)
    base = _context(tmp_path, "ctx", "FROM scratch\n")  # not the Dockerfile used
    (base / "Dockerfile").unlink()
    (base / "data.txt").write_text("x" * 700)
    os.chmod(base / "data.txt", 0o644)
    other = _context(tmp_path, "defs", f"FROM {test_image}\nCOPY data.txt /data.txt\n")
    dev = other / "Dockerfile"
    args = ("DOCKER_BUILDKIT=0", cli, "build", "-f", str(dev), "-t", ref, str(base))
    ok(as_user(bob, gateway, *args, timeout=120))
    assert image_owner(engine_inspect(ref)) == "ds01tb"
    dev.write_text("FROM ds01/ds01ta/nothing-of-yours:1\n")
    err = refused(as_user(bob, gateway, *args, timeout=120), "")
    assert "belongs to another user" in err or "No such image" in err, err


def test_nobody_builds_into_anothers_namespace(gateway, bob, context, made):
    ref = f"ds01/ds01ta/gwimg-evil-{PID}:1"
    made += [ref, f"gwimg-ok-{PID}"]
    refused(build(bob, gateway, context, "-t", f"gwimg-ok-{PID}", "-t", ref))
    refused(build(bob, gateway, context, "-t", f"docker.io/{ref}"))
    assert engine_inspect(ref) is None
    assert engine_inspect(f"gwimg-ok-{PID}") is None  # refused before anything was built


def _context(base: Path, name: str, dockerfile: str) -> Path:
    directory = base / name
    directory.mkdir()
    (directory / "Dockerfile").write_text(dockerfile)
    os.chmod(base, 0o755)
    os.chmod(directory, 0o755)
    os.chmod(directory / "Dockerfile", 0o644)
    return directory


def test_nobody_builds_from_anothers_image(gateway, bob, alices, test_image, tmp_path, made):
    ref = f"gwimg-from-{PID}:1"
    made.append(ref)
    for dockerfile in (
        f"FROM {alices['ref']}\n",
        f"FROM {alices['id']}\n",
        f"ARG B={alices['id'][7:19]}\nFROM $B\n",
        f"FROM {test_image}\nCOPY --from={alices['ref']} /etc/hostname /x\n",
    ):
        context = _context(tmp_path, f"c{abs(hash(dockerfile))}", dockerfile)
        err = refused(build(bob, gateway, context, "-t", ref), "")
        assert "No such image" in err or "belongs to another user" in err, err
    context = _context(tmp_path, "arg", "ARG B\nFROM $B\n")
    refused(build(bob, gateway, context, "-t", ref, "--build-arg", f"B={alices['id']}"), "No such")
    assert engine_inspect(ref) is None
    context = _context(tmp_path, "own", "ARG B=x\nFROM $B\n")
    ok(build(bob, gateway, context, "-t", ref, "--build-arg", f"B={test_image}"))


def test_owners_inspect_history_and_save_their_own(gateway, alice, alices):
    assert (
        json.loads(ok(docker(alice, gateway, "image", "inspect", alices["ref"])))[0]["Id"]
        == (alices["id"])
    )
    assert "LABEL" in ok(docker(alice, gateway, "history", "--no-trunc", alices["ref"]))
    saved = as_user(alice, gateway, "sh", "-c", f"{DOCKER} save {alices['ref']} | wc -c")
    assert int(ok(saved).strip()) > 1024


def test_others_images_are_hidden(gateway, bob, alices):
    for ref in (alices["ref"], alices["id"], alices["id"][7:19]):
        err = refused(docker(bob, gateway, "image", "inspect", ref), "No such image")
        assert "ds01:" not in err  # worded as the engine's own answer
        refused(docker(bob, gateway, "history", ref), "No such image")
        refused(docker(bob, gateway, "save", ref), "No such image")
    refused(
        docker(bob, gateway, "save", "ds01-test:busybox", alices["ref"]),
        "No such image",
    )


def test_the_steps_of_anothers_build_are_hidden(gateway, bob, alices):
    step = alices["image"]["Parent"]  # the image before the build's owner label
    assert step and not real_tags(engine_inspect(step))
    refused(docker(bob, gateway, "image", "inspect", step), "No such image")
    refused(docker(bob, gateway, "create", step, "true"))
    assert step[7:19] not in ok(docker(bob, gateway, "images", "-a", "--format", "{{.ID}}"))


def test_others_images_are_not_listed(gateway, alice, bob, alices, admin_member):
    bobs_view = ok(docker(bob, gateway, "images", "--format", "{{.ID}} {{.Repository}}"))
    assert alices["id"][7:19] not in bobs_view and "ds01/ds01ta" not in bobs_view
    assert "ds01-test" in bobs_view  # shared images stay visible
    alices_view = ok(docker(alice, gateway, "images", "--format", "{{.Repository}}:{{.Tag}}"))
    assert alices["ref"] in alices_view.split()
    admins_view = ok(docker(admin_member, gateway, "images", "--format", "{{.ID}}"))
    assert alices["id"][7:19] in admins_view.split()


def test_others_images_cannot_be_tagged_removed_or_run(gateway, bob, alices, test_image, made):
    target = f"ds01/ds01ta/gwimg-t-{PID}:1"
    made += [target, f"gwimg-stolen-{PID}"]
    refused(docker(bob, gateway, "tag", test_image, target))  # into her namespace
    refused(docker(bob, gateway, "tag", alices["ref"], f"gwimg-stolen-{PID}"), "No such image")
    refused(docker(bob, gateway, "tag", alices["id"], f"gwimg-stolen-{PID}"), "No such image")
    assert engine_inspect(target) is None and engine_inspect(f"gwimg-stolen-{PID}") is None
    refused(docker(bob, gateway, "rmi", alices["ref"]))
    refused(docker(bob, gateway, "rmi", alices["id"]))
    refused(docker(bob, gateway, "create", alices["ref"], "true"))
    refused(docker(bob, gateway, "create", alices["id"], "true"))
    assert engine_inspect(alices["ref"]) is not None


def test_pull_push_and_commit_into_anothers_namespace_are_refused(gateway, bob, test_image):
    refused(docker(bob, gateway, "pull", f"ds01/ds01ta/gwimg-p-{PID}:1"))
    refused(docker(bob, gateway, "push", f"ds01/ds01ta/gwimg-p-{PID}:1"))
    name = f"gwimg-c-{PID}"
    ok(docker(bob, gateway, "create", "--name", name, test_image, "true"))
    try:
        refused(docker(bob, gateway, "commit", name, f"ds01/ds01ta/gwimg-c-{PID}:1"))
        assert engine_inspect(f"ds01/ds01ta/gwimg-c-{PID}:1") is None
    finally:
        docker(bob, gateway, "rm", "-f", name)


def test_a_commit_is_labelled_as_the_committers(gateway, bob, test_image, made):
    name, ref = f"gwimg-cm-{PID}", f"ds01/ds01tb/gwimg-cm-{PID}:1"
    made.append(ref)
    ok(docker(bob, gateway, "create", "--name", name, test_image, "true"))
    try:
        ok(docker(bob, gateway, "commit", "-c", "LABEL ds01.owner=ds01ta", name, ref))
    finally:
        docker(bob, gateway, "rm", "-f", name)
    assert engine_inspect(ref)["Config"]["Labels"][IMAGE_OWNER_LABEL] == "ds01tb"


def test_a_shared_image_tagged_into_a_namespace_stays_everyones(
    gateway, alice, bob, test_image, made
):
    ref = f"ds01/ds01ta/gwimg-bb-{PID}:1"
    made.append(ref)
    ok(docker(alice, gateway, "tag", test_image, ref))
    name = f"gwimg-bb-{PID}"
    try:
        ok(docker(bob, gateway, "create", "--name", name, test_image, "true"))
        assert test_image in ok(
            docker(bob, gateway, "images", "--format", "{{.Repository}}:{{.Tag}}")
        )
    finally:
        docker(bob, gateway, "rm", "-f", name)


def _saved(tmp_path: Path, source: str, tags: list[str]) -> Path:
    """An archive of ``source`` under ``tags`` (made by the engine as root), readable by all."""
    for tag in tags:
        ok(engine("tag", source, tag))
    archive = tmp_path / f"gwimg-{len(tags)}-{abs(hash(tuple(tags)))}.tar"
    try:
        ok(engine("save", "-o", str(archive), *tags))
    finally:
        for tag in tags:
            engine("rmi", tag)
    os.chmod(tmp_path, 0o755)
    os.chmod(archive, 0o644)
    return archive


def test_load_into_anothers_namespace_is_refused_and_into_ones_own_works(
    gateway, bob, test_image, tmp_path, made
):
    theirs = f"ds01/ds01ta/gwimg-l-{PID}:1"
    made += [theirs, f"gwimg-lx-{PID}:1"]
    archive = _saved(tmp_path, test_image, [f"gwimg-lx-{PID}:1", theirs])
    refused(docker(bob, gateway, "load", "-i", str(archive)))
    assert engine_inspect(theirs) is None and engine_inspect(f"gwimg-lx-{PID}:1") is None
    mine = f"ds01/ds01tb/gwimg-l-{PID}:1"
    made.append(mine)
    archive = _saved(tmp_path, test_image, [mine])
    assert f"Loaded image: {mine}" in ok(docker(bob, gateway, "load", "-i", str(archive)))
    assert engine_inspect(mine) is not None


def test_load_of_an_image_labelled_as_anothers_is_refused(
    gateway, alice, bob, alices, tmp_path, made
):
    ref = f"gwimg-ll-{PID}:1"
    made.append(ref)
    archive = _saved(tmp_path, alices["id"], [ref])  # ds01.owner=ds01ta, a plain name
    refused(docker(bob, gateway, "load", "-i", str(archive)))
    assert engine_inspect(ref) is None


def test_load_of_something_not_an_archive_is_refused(gateway, bob, tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar" * 100)
    os.chmod(tmp_path, 0o755)
    os.chmod(junk, 0o644)
    refused(docker(bob, gateway, "load", "-i", str(junk)), "the image archive cannot be checked")


def test_admins_see_and_remove_anyones_images(gateway, admin_member, bob, context, made):
    ref = f"ds01/ds01tb/gwimg-adm-{PID}:1"
    made.append(ref)
    ok(build(bob, gateway, context, "-t", ref))
    ok(docker(admin_member, gateway, "image", "inspect", ref))
    ok(docker(admin_member, gateway, "rmi", ref))
    assert engine_inspect(ref) is None


def _dir(path: Path) -> Path:
    path.mkdir()
    return path


def test_the_image_limits(tmp_path, alice, alices, context, test_image, made):
    # 0: robust while other tests on the host add and remove ds01ta's images (the boundary
    # itself, max_images images and one more, is tests/core/test_gateway_image_limits.py's)
    limited = {"limits": {"users": {"ds01ta": {"max_images": 0}}}}
    new = f"ds01/ds01ta/gwimg-n-{PID}:1"
    made.append(new)
    with running_gateway(write_config(_dir(tmp_path / "n"), limited)) as sock:
        err = refused(build(alice, sock, context, "-t", new), "(max_images)")
        assert "may have 0 (max_images)" in err and "ds01 image remove" in err
        refused(docker(alice, sock, "tag", test_image, new), "(max_images)")
        ok(build(alice, sock, context, "-t", alices["ref"]))  # rebuilding one of hers
        # another name for one of hers adds no image
        ok(docker(alice, sock, "tag", alices["ref"], f"gwimg-alias-{PID}:1"))
        made.append(f"gwimg-alias-{PID}:1")
    assert engine_inspect(new) is None
    tiny = {"limits": {"users": {"ds01ta": {"max_image_storage": 1}}}}
    with running_gateway(write_config(_dir(tmp_path / "s"), tiny)) as sock:
        err = refused(build(alice, sock, context, "-t", alices["ref"]), "(max_image_storage)")
        assert "docker rmi" in err


def _rootfs(tmp_path: Path) -> Path:
    """A one-file root filesystem tar any user can read (for ``docker import``)."""
    archive = tmp_path / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    os.chmod(tmp_path, 0o755)
    os.chmod(archive, 0o644)
    return archive


def test_import_is_labelled_and_stays_out_of_others_namespaces(gateway, alice, bob, tmp_path, made):
    archive = _rootfs(tmp_path)
    theirs, mine = f"ds01/ds01ta/gwimg-i-{PID}:1", f"gwimg-i-{PID}:1"
    made += [theirs, mine]
    refused(docker(bob, gateway, "import", str(archive), theirs))
    assert engine_inspect(theirs) is None
    ok(docker(bob, gateway, "import", "-c", "LABEL ds01.owner=ds01ta", str(archive), mine))
    assert image_owner(engine_inspect(mine)) == "ds01tb"
    refused(docker(alice, gateway, "image", "inspect", mine), "No such image")


def test_image_events_of_others_images_are_left_out(gateway, alice, bob, context, made):
    ref = f"ds01/ds01ta/gwimg-ev-{PID}:1"
    made.append(ref)
    since = str(int(time.time()) - 1)
    ok(build(alice, gateway, context, "-t", ref))
    until = str(int(time.time()) + 1)
    args = ("events", "--since", since, "--until", until, "--filter", "type=image")
    args += ("--format", "{{.Actor.Attributes.name}}")
    assert ref in ok(docker(alice, gateway, *args, timeout=30))
    assert "ds01/ds01ta" not in ok(docker(bob, gateway, *args, timeout=30))
