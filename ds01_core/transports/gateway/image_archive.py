"""What a ``docker load`` archive would name and claim, read before the engine sees it.

The upload is spooled to an unnamed temporary file (gone when closed, even if the gateway
dies) and read with :mod:`tarfile` as the engine would: the names in ``manifest.json``
(``RepoTags``), in the legacy ``repositories`` file and in an OCI ``index.json``'s annotations,
and the ``ds01.owner`` label of each image's configuration. Anything it cannot read for sure —
not a tar, a metadata file twice or as a link, a path with ``..`` — is refused rather than
guessed at, since the engine might read it differently.
"""

from __future__ import annotations

import json
import posixpath
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import attrs

from ds01_core.domain.images import IMAGE_OWNER_LABEL
from ds01_core.domain.units import format_bytes
from ds01_core.transports.gateway.call import Refused
from ds01_core.transports.gateway.http import HttpError, Stream

#: the largest metadata file (manifest, index, image configuration) read from an archive
MAX_METADATA = 16 * 1024 * 1024
MAX_MEMBERS = 200_000
_METADATA = ("manifest.json", "repositories", "index.json")
_NAME_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")


@attrs.frozen
class ArchiveClaims:
    """The image names an archive would tag, and the owners its images' labels name."""

    names: tuple[str, ...]
    owners: tuple[str, ...]


def _unreadable(why: str) -> Refused:
    return Refused(f"the image archive cannot be checked: {why}", 400)


def spool(client: Stream, framing: tuple[str, int], directory: Path, limit: int) -> IO[bytes]:
    """The request body in a temporary file under ``directory`` (refused above ``limit``)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    kind, size = framing
    too_big = Refused(
        f"the upload is larger than {format_bytes(limit)} (gateway.max_image_upload); make it "
        "smaller (a .dockerignore for a build context) or ask an admin",
        413,
    )
    if kind == "length" and size > limit:
        raise too_big
    pieces: Iterator[bytes] = (
        client.pieces(size)
        if kind == "length"
        else client.chunks()
        if kind == "chunked"
        else iter(())
    )
    file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 -- returned open, closed by the caller
    try:
        written = 0
        for piece in pieces:
            written += len(piece)
            if written > limit:
                raise too_big
            try:
                file.write(piece)
            except OSError as exc:
                raise HttpError(
                    503, f"the gateway has no room for the archive now: {exc}"
                ) from None
        file.flush()
    except BaseException:
        file.close()
        raise
    return file


def _norm(name: str) -> str:
    path = posixpath.normpath("/" + name).lstrip("/")
    if ".." in name.split("/"):
        raise _unreadable(f"a path with '..' ({name[:100]!r})")
    return path


def _index(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    members: dict[str, tarfile.TarInfo] = {}
    for count, member in enumerate(tar):
        if count >= MAX_MEMBERS:
            raise _unreadable(f"more than {MAX_MEMBERS} entries")
        name = _norm(member.name)
        if name in members and name in _METADATA:
            raise _unreadable(f"{name} is in it twice")
        members[name] = member
    return members


def _read_json(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str) -> Any:
    member = members.get(_norm(name))
    if member is None:
        return None
    if not member.isfile():
        raise _unreadable(f"{name} is not a plain file")
    if member.size > MAX_METADATA:
        raise _unreadable(f"{name} is larger than {format_bytes(MAX_METADATA)}")
    handle = tar.extractfile(member)
    if handle is None:
        raise _unreadable(f"{name} cannot be read")
    try:
        return json.loads(handle.read())
    except ValueError:
        raise _unreadable(f"{name} is not JSON") from None


def _blob(digest: Any) -> str:
    algorithm, _, value = str(digest).partition(":")
    return f"blobs/{algorithm}/{value}"


def _config_owner(config: Any) -> str | None:
    if not isinstance(config, dict):
        return None
    labels = (config.get("config") or config.get("Config") or {}).get("Labels") or {}
    owner = labels.get(IMAGE_OWNER_LABEL) if isinstance(labels, dict) else None
    return str(owner) if owner else None


def _oci(
    tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], index: Any, depth: int
) -> tuple[list[str], list[str]]:
    """Names and owner labels from an OCI index (nested indexes followed a few levels)."""
    names: list[str] = []
    owners: list[str] = []
    entries = index.get("manifests") if isinstance(index, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        annotations = entry.get("annotations") or {}
        if isinstance(annotations, dict):
            names += [str(annotations[k]) for k in _NAME_ANNOTATIONS if annotations.get(k)]
        if depth >= 3 or not entry.get("digest"):
            continue
        manifest = _read_json(tar, members, _blob(entry["digest"]))
        if isinstance(manifest, dict) and isinstance(manifest.get("manifests"), list):
            more_names, more_owners = _oci(tar, members, manifest, depth + 1)
            names += more_names
            owners += more_owners
        elif isinstance(manifest, dict) and isinstance(manifest.get("config"), dict):
            owner = _config_owner(_read_json(tar, members, _blob(manifest["config"].get("digest"))))
            owners += [owner] if owner else []
    return names, owners


def claims(file: IO[bytes]) -> ArchiveClaims:
    """The names and owner labels in a spooled ``docker save`` archive (tar, maybe compressed)."""
    file.seek(0)
    try:
        with tarfile.open(fileobj=file, mode="r:*") as tar:
            members = _index(tar)
            names: list[str] = []
            owners: list[str] = []
            manifest = _read_json(tar, members, "manifest.json")
            for image in manifest if isinstance(manifest, list) else []:
                if not isinstance(image, dict):
                    continue
                names += [str(t) for t in image.get("RepoTags") or []]
                if image.get("Config"):
                    owner = _config_owner(_read_json(tar, members, str(image["Config"])))
                    owners += [owner] if owner else []
            repositories = _read_json(tar, members, "repositories")
            if isinstance(repositories, dict):
                for repo, tags in repositories.items():
                    names += [f"{repo}:{tag}" for tag in (tags if isinstance(tags, dict) else {})]
            more_names, more_owners = _oci(tar, members, _read_json(tar, members, "index.json"), 0)
    except HttpError:
        raise
    except Exception as exc:  # tarfile and its decompressors raise many kinds: none is readable
        raise _unreadable(f"not a tar archive (plain, gzip, bzip2 or xz): {exc}") from None
    return ArchiveClaims(tuple(names + more_names), tuple(owners + more_owners))
