"""The gateway's policy for container endpoints: a user's own containers only.

A user sees and acts on their own containers only, and creates what the create policy allows,
admitted like ``ds01 container create``.

Each handler judges one kind of route (see :mod:`..routes`) and forwards what it allows; every
object reference is resolved to the full id it was judged as before it is forwarded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ds01_core.domain.container_facts import OWNER_LABEL
from ds01_core.domain.images import IMAGE_OWNER_LABEL
from ds01_core.services import admission
from ds01_core.transports.gateway import create as creating
from ds01_core.transports.gateway import schema
from ds01_core.transports.gateway.answers import engine_json, inspected_id, json_array_filter
from ds01_core.transports.gateway.call import Call, Refused
from ds01_core.transports.gateway.create_policy import (
    DEFAULT_SAFE_CAPS,
    CreateRules,
    Lookups,
    mount_sources,
    refusals,
)
from ds01_core.transports.gateway.http import HttpError
from ds01_core.transports.gateway.image_policy import check_limits, check_name, usable_image


def container_list(call: Call) -> bool:
    call.no_body()

    def mine(status: int, data: bytes) -> bytes:
        if status != 200:
            return data
        return json_array_filter(data, lambda row: call.owners.of_summary(row) == call.user)

    return call.forward(buffered=mine)


def container_inspect(call: Call) -> bool:
    call.no_body()
    owners, user = call.owners, call.user

    def known_mine(status: int, first: bytes) -> bool:
        """An owner from a label never changes: the id at the start of the answer is
        enough, and the answer can flow on without waiting for its end."""
        return status == 200 and owners.cached(inspected_id(first)) == user

    def mine(status: int, data: bytes) -> bytes:
        if status != 200:
            return data
        known = owners.cached(inspected_id(data))
        if known == user:
            return data
        if known is not None or owners.of_inspect(engine_json(data, dict)) != user:
            raise Refused(
                f"container {call.route.ref} belongs to another user; you may only use your own"
            )
        return data

    return call.forward(buffered=mine, passes=known_mine)


def container_op(call: Call) -> bool:
    call.no_body()
    cid = call.own_container(str(call.route.ref))
    if call.route.op in ("start", "restart"):
        _readmit(call, cid)
    streams = call.route.op in ("logs", "stats", "export")
    return call.forward(call.route.with_ref(cid), stream=streams)


def _readmit(call: Call, cid: str) -> None:
    """GPUs released while the container was stopped are taken back before it runs, or
    the start is refused (the same rule as ``ds01 container start``)."""
    inspect = call.engine.inspect_container(cid)
    if inspect is None:
        raise HttpError(404, f"No such container: {cid}")
    try:
        call.gateway.in_runtime(admission.readmit, call.user, inspect)
    except admission.AdmissionRefused as refused:
        raise Refused(str(refused)) from None


def container_attach(call: Call) -> bool:
    call.no_body()
    cid = call.own_container(str(call.route.ref))
    return call.forward(call.route.with_ref(cid), hijack=True)


def container_archive(call: Call) -> bool:
    if call.head.method != "PUT":
        call.no_body()
    cid = call.own_container(str(call.route.ref))
    return call.forward(call.route.with_ref(cid), stream=call.head.method == "GET")


def container_update(call: Call) -> bool:
    body = call.json_body(schema.CONTAINER_UPDATE)
    limits = sorted(
        k for k, v in body.items() if k != "RestartPolicy" and v not in (None, 0, "", [], {})
    )
    if limits:
        raise Refused(
            f"resource limits ({', '.join(limits)}) are set by ds01; only the restart policy "
            "may be updated"
        )
    cid = call.own_container(str(call.route.ref))
    return call.forward(call.route.with_ref(cid), body=body)


def container_exec(call: Call) -> bool:
    """Creating an exec instance (``docker exec``) in one's own container, unprivileged."""
    body = call.json_body(schema.EXEC_CREATE)
    if body.get("Privileged"):
        raise Refused("privileged exec is not allowed")
    cid = call.own_container(str(call.route.ref))
    return call.forward(call.route.with_ref(cid), body=body)


def container_delete(call: Call) -> bool:
    call.no_body()
    if (call.route.param("link") or "").lower() in ("1", "true"):
        raise Refused("removing links is not allowed through the gateway")
    cid = call.own_container(str(call.route.ref))
    keep = call.forward(call.route.with_ref(cid))
    if call.engine.inspect_container(cid) is None:  # GPUs are released at once, not a cycle later
        call.gateway.in_runtime(creating.release_container, cid, "container removed")
    return keep


def commit(call: Call) -> bool:
    """An image from one's own container; the body may not carry a HostConfig."""
    shape = {
        k: v
        for k, v in schema.CONTAINER_CREATE.items()
        if k not in ("HostConfig", "NetworkingConfig")
    }
    body = call.json_body(shape)
    cid = call.own_container(call.route.param("container") or "")
    repo, tag = call.route.param("repo") or "", call.route.param("tag")
    target = f"{repo}:{tag}" if repo and tag else repo
    if repo:
        check_name(call, target, "committing as")
    check_limits(call, [target] if repo else [])
    if isinstance(body.get("Labels"), dict):
        body["Labels"] = creating.own_labels(body["Labels"])
    query = tuple((k, cid if k == "container" else v) for k, v in call.route.query)
    owner = ("changes", f"LABEL {IMAGE_OWNER_LABEL}={call.user}")  # applied last: it wins
    return call.forward(call.route.target(query=(*query, owner)), body=body)


def container_create(call: Call) -> bool:
    """The create policy first (every reason at once), then ds01's admission: GPUs, labels,
    plugins, bound to the created container before the client hears of it."""
    body = call.json_body(schema.CONTAINER_CREATE)
    name = call.route.param("name")
    lookups = Lookups(
        own_container=call.owns_container,
        usable_network=call.network_usable,
        usable_volume=call.volume_usable,
        usable_image=lambda ref: usable_image(call, ref),
    )
    problems = refusals(body, create_rules(call), lookups)
    problems += creating.unsupported_device_requests(body)
    if problems:
        raise Refused("; ".join(problems))
    _create_named_volumes(call, body)
    request = creating.admission_request(call.user, name, body, call.gateway.nvidia_runtime())

    def create(prepared: admission.Prepared, created: Callable[[str], None]) -> bool:
        def bind(status: int, data: bytes) -> bytes:
            if status == 201:  # bound before the client hears of it (a start follows)
                created(str(engine_json(data, dict).get("Id")))
            return data

        return call.forward(body=prepared.body, buffered=bind)

    try:
        return admission.admit(request, create, run=call.gateway.in_runtime)
    except admission.AdmissionRefused as refused:
        raise Refused(str(refused)) from None


def create_rules(call: Call) -> CreateRules:
    """What this caller may mount and use, from the configuration and their account."""
    config = call.gateway.runtime.config
    roots = config.detection.home_roots
    return CreateRules(
        home=call.home,
        workspace_roots=tuple(
            r.replace("{user}", call.user) for r in config.gateway.workspace_roots
        ),
        read_only_paths=tuple(config.gateway.read_only_paths),
        safe_caps=DEFAULT_SAFE_CAPS
        | {c.upper().removeprefix("CAP_") for c in config.gateway.extra_capabilities},
        runtimes=tuple(config.gateway.runtimes),
        other_homes_root=roots[0] if roots else "/home",
    )


def _create_named_volumes(call: Call, body: dict[str, Any]) -> None:
    """Named volumes the engine would create on the fly get the owner's label first."""
    host = body.get("HostConfig") or {}
    names = [source for kind, source, _ in mount_sources(host) if kind == "volume"]
    for name in names:
        if call.engine.inspect("volumes", name) is None:
            call.engine.call(
                "POST", "/volumes/create", {"Name": name, "Labels": {OWNER_LABEL: call.user}}
            )
