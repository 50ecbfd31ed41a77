"""The gateway's policy for images and builds: a namespace per user, shared images for all.

A user builds, tags, commits, imports, pulls, loads and pushes only outside ``ds01/`` or in
their own ``ds01/<user>/``; what they build or import carries ``ds01.owner=<user>``; another
user's image is neither listed nor shown (the engine's ``No such image``) nor removable; the
image limits are checked before anything adds to the user's images (see :mod:`..image_policy`).
Builds stay off the host's network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any, TypeVar

from ds01_core.domain.images import IMAGE_OWNER_LABEL, image_owner, namespace_owner
from ds01_core.domain.users import normalize_username
from ds01_core.transports.gateway import build_context, image_archive
from ds01_core.transports.gateway import create as creating
from ds01_core.transports.gateway.answers import engine_json, json_array_filter
from ds01_core.transports.gateway.call import Call, Refused
from ds01_core.transports.gateway.handlers.system import buildkit
from ds01_core.transports.gateway.image_policy import (
    check_limits,
    check_name,
    inspect_image,
    me,
    no_such_image,
    visible,
    visible_image,
)

#: Build parameters a user may set, and the values of those that could reach the host.
BUILD_PARAMS = frozenset(
    [
        "dockerfile",
        "t",
        "extrahosts",
        "q",
        "nocache",
        "cachefrom",
        "pull",
        "rm",
        "forcerm",
        "memory",
        "memswap",
        "cpushares",
        "cpusetcpus",
        "cpusetmems",
        "cpuperiod",
        "cpuquota",
        "buildargs",
        "shmsize",
        "squash",
        "labels",
        "networkmode",
        "platform",
        "target",
        "outputs",
        "ulimits",
        "isolation",
        "version",
    ]
)
#: build parameters allowed only without a value (the host's cgroup tree is not the user's)
EMPTY_ONLY = frozenset({"cgroupparent"})
BUILD_NETWORKS = frozenset({"", "default", "bridge", "none"})
T = TypeVar("T", dict[str, Any], list[Any])


def _values(call: Call, name: str) -> list[str]:
    return [v for k, v in call.route.query if k == name]


def _tagged(repo: str, tag: str | None) -> str:
    return f"{repo}:{tag}" if tag else repo


def _owner_change(call: Call) -> tuple[str, str]:
    """The ``changes`` entry that labels a committed or imported image as the caller's (the
    engine applies ``changes`` in order: the last word is the gateway's)."""
    return ("changes", f"LABEL {IMAGE_OWNER_LABEL}={call.user}")


def image_list(call: Call) -> bool:
    call.no_body()

    def shown(status: int, data: bytes) -> bytes:
        if status != 200:
            return data
        return json_array_filter(data, lambda row: visible(call, row))

    return call.forward(buffered=shown)


def image_inspect(call: Call) -> bool:
    """Inspect, history and save (``get``) of one image the caller may see."""
    call.no_body()
    ref, op = str(call.route.ref), call.route.op
    if op == "json":
        if (owner := namespace_owner(ref)) is not None and owner != me(call):
            raise no_such_image(ref, hidden=True)

        def judged(status: int, data: bytes) -> bytes:
            if status == 200 and not visible(call, engine_json(data, dict)):
                raise no_such_image(ref, hidden=True)
            return data

        return call.forward(buffered=judged)
    image = visible_image(call, ref)
    if op == "history":  # by the id judged, so a tag moved meanwhile cannot redirect it
        return call.forward(call.route.target(f"/images/{image['Id']}/history"))
    return call.forward(stream=True)  # save by its name: the archive keeps the tags


def image_save(call: Call) -> bool:
    """``docker save`` of several images: refused if any is another user's."""
    call.no_body()
    for name in _values(call, "names"):
        visible_image(call, name)
    return call.forward(stream=True)


def image_tag(call: Call) -> bool:
    call.no_body()
    repo, tag = call.route.param("repo") or "", call.route.param("tag")
    if repo:
        check_name(call, _tagged(repo, tag), "tagging as")
    image = visible_image(call, str(call.route.ref))
    target = _tagged(repo, tag)
    if repo and me(call) in (namespace_owner(target), image_owner(image)):
        check_limits(call, [target], str(image.get("Id")))
    return call.forward(call.route.target(f"/images/{image['Id']}/tag"))


def image_push(call: Call) -> bool:
    call.no_body()
    ref = _tagged(str(call.route.ref), call.route.param("tag"))
    check_name(call, ref, "pushing")
    visible_image(call, ref)
    return call.forward(stream=True)


def image_pull(call: Call) -> bool:
    """Pull (``fromImage``) or import (``fromSrc=-``, labelled as the caller's)."""
    route = call.route
    source, tag = route.param("fromSrc"), route.param("tag")
    if source not in (None, "", "-"):
        raise Refused(
            "importing an image from a URL is not allowed; download it and use `docker import FILE`"
        )
    image, repo = route.param("fromImage") or "", route.param("repo") or ""
    if image:
        check_name(call, _tagged(image, tag), "pulling")
        if namespace_owner(image) == me(call):
            check_limits(call, [_tagged(image, tag)])
        return call.forward(stream=True)
    if repo:
        check_name(call, _tagged(repo, tag), "importing as")
    check_limits(call, [_tagged(repo, tag)] if repo else [])
    return call.forward(route.target(query=(*route.query, _owner_change(call))), stream=True)


def _spooled(call: Call) -> IO[bytes]:
    """The request's body in a temporary file (see :func:`.image_archive.spool`)."""
    config = call.gateway.runtime.config
    directory = Path(config.paths.state_dir) / "gateway-spool"
    return image_archive.spool(
        call.client, call.framing, directory, int(config.gateway.max_image_upload)
    )


def image_load(call: Call) -> bool:
    """``docker load``: the archive is spooled and read first; a name in another user's
    namespace, or an image labelled as another's, refuses all of it."""
    with _spooled(call) as upload:
        found = image_archive.claims(upload)
        for name in found.names:
            check_name(call, name, "loading")
        for owner in found.owners:
            if normalize_username(owner) != me(call):
                raise Refused(
                    f"the archive's image is labelled {IMAGE_OWNER_LABEL}={owner}: "
                    "it belongs to another user"
                )
        own = [n for n in found.names if namespace_owner(n) == me(call)]
        if own:
            check_limits(call, own)
        return call.forward(stream=True, upload=upload)


def image_delete(call: Call) -> bool:
    call.no_body()
    if (call.route.param("force") or "").lower() in ("1", "true"):
        raise Refused("forced image removal is for admins; remove your containers using it first")
    ref = str(call.route.ref)
    check_name(call, ref, "removing")
    image = inspect_image(call, ref)
    if image is not None and not visible(call, image):
        raise Refused(f"image {ref} belongs to another user")
    return call.forward()


def build(call: Call) -> bool:
    """The classic builder: tags outside others' namespaces, the caller's owner label, the
    image limits, no other user's image read (the context is spooled to read its Dockerfile);
    no host network."""
    route = call.route
    if (route.param("version") or "1") != "1":  # said first: BuildKit sends more parameters
        return buildkit(call)
    # older docker CLIs (Debian's 20.10) send every parameter, a cgroup parent left empty too
    unknown = sorted({k for k, v in route.query if not (k in EMPTY_ONLY and not v)} - BUILD_PARAMS)
    if unknown:
        raise Refused(f"build parameters {', '.join(unknown)} are not allowed through the gateway")
    network = route.param("networkmode") or ""
    if network not in BUILD_NETWORKS:
        raise Refused(f"building with network {network!r} is not allowed (default, bridge or none)")
    tags = _values(call, "t")
    for tag in tags:
        check_name(call, tag, "building")
    for ref in map(str, _json(route.param("cachefrom"), list, "cachefrom")):
        check_name(call, ref, "caching from")
        cached = inspect_image(call, ref)
        if cached is not None and not visible(call, cached):
            raise no_such_image(ref, hidden=True)
    asked = _json(route.param("labels"), dict, "labels")
    labels = creating.own_labels(asked)
    # what an image is (its name, base, definition: ``ds01 image``'s record) is the builder's
    # to say; nothing trusts these labels, while ds01.owner and ds01.user stay ds01's
    labels.update({str(k): str(v) for k, v in asked.items() if str(k).startswith(INFO_PREFIX)})
    labels[IMAGE_OWNER_LABEL] = call.user
    check_limits(call, tags)
    query = (*((k, v) for k, v in route.query if k != "labels"), ("labels", json.dumps(labels)))
    build_args = _json(route.param("buildargs"), dict, "buildargs")
    with _spooled(call) as context:
        dockerfile = build_context.dockerfile_of(context, route.param("dockerfile") or "")
        args = {str(k): str(v) for k, v in build_args.items() if v is not None}
        refs = build_context.image_refs(dockerfile, args)
        for ref in refs:
            _check_base(call, ref)
        runtime = call.gateway.runtime
        refusal = runtime.hooks.check_build(runtime, call.user, refs)
        if refusal is not None:
            raise Refused(refusal.reason)
        return call.forward(route.target(query=query), stream=True, upload=context)


#: build labels a user may set although they start with ``ds01.``
INFO_PREFIX = "ds01.image."


def _check_base(call: Call, ref: str) -> None:
    """An image a build reads (``FROM``, ``COPY --from``, and its ``ONBUILD`` triggers'
    ``--from``): not another user's."""
    check_name(call, ref, "building from")
    image = inspect_image(call, ref)
    if image is None:
        return  # the engine pulls it, or fails
    if not visible(call, image):
        raise no_such_image(ref, hidden=True)
    triggers = (image.get("Config") or {}).get("OnBuild") or []
    for trigger in map(str, triggers if isinstance(triggers, list) else []):
        for source in build_context.image_refs("FROM scratch\n" + trigger, {}):
            check_name(call, source, "building from")
            found = inspect_image(call, source)
            if found is not None and not visible(call, found):
                raise no_such_image(source, hidden=True)


def _json(text: str | None, shape: type[T], name: str) -> T:
    """A JSON build parameter (``labels``, ``cachefrom``), checked to be a ``shape``."""
    if not text:
        return shape()
    try:
        value = json.loads(text)
    except ValueError:
        raise Refused(f"the build parameter {name} is not JSON", 400) from None
    if not isinstance(value, shape):
        raise Refused(f"the build parameter {name} must be a JSON {shape.__name__}", 400)
    return value
