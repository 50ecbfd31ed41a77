"""What a ``docker load`` archive names and claims, as the gateway reads it before the engine."""

from __future__ import annotations

import gzip
import io
import json
import socket
import tarfile

import pytest

from ds01_core.transports.gateway.call import Refused
from ds01_core.transports.gateway.http import Stream
from ds01_core.transports.gateway.image_archive import claims, spool


def _tar(files: dict[str, bytes], links: tuple[str, ...] = ()) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in links:
            link = tarfile.TarInfo(name)
            link.type = tarfile.SYMTYPE
            link.linkname = "elsewhere.json"
            tar.addfile(link)
    buffer.seek(0)
    return buffer


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


CONFIG = _json({"config": {"Labels": {"ds01.owner": "alice"}}})


def test_docker_save_names_and_labels():
    archive = _tar(
        {
            "manifest.json": _json(
                [{"Config": "abc.json", "RepoTags": ["ds01/bob/x:1", "y:2"], "Layers": []}]
            ),
            "abc.json": CONFIG,
            "repositories": _json({"ds01/carol/z": {"3": "abc"}}),
        }
    )
    found = claims(archive)
    assert set(found.names) == {"ds01/bob/x:1", "y:2", "ds01/carol/z:3"}
    assert found.owners == ("alice",)


def test_oci_index_annotations_and_configs():
    manifest = _json({"config": {"digest": "sha256:c0"}, "layers": []})
    archive = _tar(
        {
            "./index.json": _json(
                {
                    "manifests": [
                        {
                            "digest": "sha256:m0",
                            "annotations": {
                                "io.containerd.image.name": "docker.io/ds01/bob/o:1",
                                "org.opencontainers.image.ref.name": "1",
                            },
                        }
                    ]
                }
            ),
            "blobs/sha256/m0": manifest,
            "blobs/sha256/c0": CONFIG,
        }
    )
    found = claims(archive)
    assert "docker.io/ds01/bob/o:1" in found.names and found.owners == ("alice",)


def test_compressed_archives_are_read():
    raw = _tar({"manifest.json": _json([{"RepoTags": ["ds01/bob/g:1"]}])}).getvalue()
    assert claims(io.BytesIO(gzip.compress(raw))).names == ("ds01/bob/g:1",)


@pytest.mark.parametrize(
    "archive",
    [
        io.BytesIO(b"not a tar at all" * 64),
        _tar({"manifest.json": b"[", "x": b""}),
        _tar({}, links=("manifest.json",)),
        _tar({"manifest.json": _json([]), "./manifest.json": _json([{"RepoTags": ["a:1"]}])}),
        _tar({"../manifest.json": _json([])}),
    ],
    ids=["not a tar", "bad json", "linked manifest", "manifest twice", "dot-dot"],
)
def test_what_cannot_be_read_for_sure_is_refused(archive):
    with pytest.raises(Refused, match="cannot be checked"):
        claims(archive)


@pytest.mark.parametrize(
    ("framing", "sent"),
    [(("length", 100), b"x" * 100), (("chunked", 0), b"64\r\n" + b"x" * 100 + b"\r\n0\r\n\r\n")],
)
def test_spool_refuses_more_than_the_limit(tmp_path, framing, sent):
    left, right = socket.socketpair()
    try:
        left.sendall(sent)
        with pytest.raises(Refused, match="max_image_upload") as refused:
            spool(Stream(right), framing, tmp_path, 99)
        assert refused.value.status == 413
    finally:
        left.close()
        right.close()


def test_spool_keeps_the_body_in_an_unnamed_file(tmp_path):
    left, right = socket.socketpair()
    try:
        left.sendall(b"5\r\nhello\r\n0\r\n\r\nNEXT")
        stream = Stream(right)
        with spool(stream, ("chunked", 0), tmp_path, 99) as file:
            file.seek(0)
            assert file.read() == b"hello"
            assert list(tmp_path.iterdir()) == []  # nothing with a name to leave behind
        left.sendall(b"abc")
        with spool(stream, ("length", 7), tmp_path, 99) as file:
            file.seek(0)
            assert file.read() == b"NEXTabc"
    finally:
        left.close()
        right.close()
