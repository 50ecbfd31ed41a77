"""The images a build's Dockerfile names, as the gateway reads them before a build."""

from __future__ import annotations

import io
import tarfile

import pytest

from ds01_core.transports.gateway.build_context import dockerfile_of, image_refs
from ds01_core.transports.gateway.call import Refused


@pytest.mark.parametrize(
    ("dockerfile", "args", "refs"),
    [
        ("FROM busybox\nRUN true\n", {}, ["busybox"]),
        ("from --platform=linux/amd64 ds01/bob/x:1 AS base\nFROM base\n", {}, ["ds01/bob/x:1"]),
        ("FROM a AS b\nFROM c\nCOPY --from=b /x /x\nCOPY --from=0 /y /y\n", {}, ["a", "c"]),
        ("FROM a\nCOPY --from=ds01/bob/x /s /s\n", {}, ["a", "ds01/bob/x"]),
        ("FROM a\nADD --chown=1 --from=img /s /s\n", {}, ["a", "img"]),
        ("ARG BASE=busybox\nFROM $BASE\n", {}, ["busybox"]),
        ("ARG BASE=busybox\nFROM ${BASE}:1\n", {"BASE": "ds01/bob/x"}, ["ds01/bob/x:1"]),
        ("ARG T\nFROM img:${T:-latest}\n", {}, ["img:latest"]),
        ("FROM \\\n  ds01/bob/x\n", {}, ["ds01/bob/x"]),
        ("# escape=`\nFROM `\n  ds01/bob/y\n", {}, ["ds01/bob/y"]),
        ("FROM scratch\n# FROM ds01/bob/z\n", {}, []),
    ],
)
def test_image_refs(dockerfile, args, refs):
    assert image_refs(dockerfile, args) == refs


@pytest.mark.parametrize(
    "dockerfile", ["ARG B\nFROM $B\n", "FROM ${UNSET}\n", "FROM\n", "FROM $(id)x${X}\n"]
)
def test_what_cannot_be_resolved_is_refused(dockerfile):
    with pytest.raises(Refused, match="cannot be checked"):
        image_refs(dockerfile, {})


def _tar(files: dict[str, bytes], mode: str = "w") -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def test_the_dockerfile_is_read_from_the_context():
    context = _tar({"./Dockerfile": b"FROM a\n", "sub/Build.df": b"FROM b\n"})
    assert dockerfile_of(context, "") == "FROM a\n"
    assert dockerfile_of(context, "sub/Build.df") == "FROM b\n"
    assert dockerfile_of(_tar({"Dockerfile": b"FROM c\n"}, "w:gz"), "Dockerfile") == "FROM c\n"
    assert dockerfile_of(io.BytesIO(b"FROM d\n"), "") == "FROM d\n"  # the body is the Dockerfile


def test_names_are_resolved_as_the_engine_does():
    context = _tar({"x": b"FROM innocent\n", ".x": b"FROM ds01/bob/x\n"})
    assert dockerfile_of(context, ".x") == "FROM ds01/bob/x\n"
    assert dockerfile_of(_tar({"a/b": b"FROM b\n"}), "./a//b") == "FROM b\n"
    assert dockerfile_of(_tar({"dockerfile": b"FROM low\n"}), "") == "FROM low\n"
    with pytest.raises(Refused, match=r"no Dockerfile\.dev"):
        dockerfile_of(_tar({"dockerfile": b"FROM low\n"}), "Dockerfile.dev")


def test_a_missing_or_linked_dockerfile_is_refused():
    with pytest.raises(Refused, match="no Dockerfile"):
        dockerfile_of(_tar({"other": b"x"}), "")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        link = tarfile.TarInfo("Dockerfile")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    buffer.seek(0)
    with pytest.raises(Refused, match="link"):
        dockerfile_of(buffer, "")
