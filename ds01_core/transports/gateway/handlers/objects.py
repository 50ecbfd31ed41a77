"""The gateway's policy for volumes and networks (images and builds: :mod:`.images`).

Volumes and networks are their creator's (an owner label), local only and without the driver
options that could reach the host."""

from __future__ import annotations

import json

from ds01_core.domain.container_facts import OWNER_LABEL
from ds01_core.transports.gateway import create as creating
from ds01_core.transports.gateway import schema
from ds01_core.transports.gateway.answers import engine_json
from ds01_core.transports.gateway.call import Call, Refused
from ds01_core.transports.gateway.handlers.system import admin_only
from ds01_core.transports.gateway.http import HttpError, response
from ds01_core.transports.gateway.ownership import BUILTIN_NETWORKS

NETWORK_OPTIONS = frozenset({"com.docker.network.driver.mtu"})


# -- volumes ----------------------------------------------------------------------------------


def volume_list(call: Call) -> bool:
    call.no_body()

    def mine(status: int, data: bytes) -> bytes:
        if status != 200:
            return data
        listing = engine_json(data, dict)
        listing["Volumes"] = [
            v for v in listing.get("Volumes") or [] if call.owners.of_labelled(v) == call.user
        ]
        return json.dumps(listing).encode()

    return call.forward(buffered=mine)


def volume_create(call: Call) -> bool:
    body = call.json_body(schema.VOLUME_CREATE)
    if body.get("Driver") not in (None, "", "local"):
        raise Refused(f"volume driver {body['Driver']!r} is not allowed (local only)")
    if body.get("DriverOpts") or body.get("ClusterVolumeSpec"):
        raise Refused("volume driver options are not allowed (they can mount host paths)")
    name = body.get("Name")
    if name and not call.volume_usable(str(name)):
        raise Refused(f"volume {name!r} belongs to another user")
    body["Labels"] = {**creating.own_labels(body.get("Labels")), OWNER_LABEL: call.user}
    return call.forward(body=body)


def volume_op(call: Call) -> bool:
    call.no_body()
    if call.head.method == "PUT":  # updating a cluster volume
        return admin_only(call)
    ref = call.route.ref
    volume = call.engine.inspect("volumes", str(ref))
    if volume is None:
        raise HttpError(404, f"no such volume: {ref}")
    if call.owners.of_labelled(volume) != call.user:
        raise Refused(f"volume {ref} belongs to another user")
    return call.forward()


# -- networks ---------------------------------------------------------------------------------


def network_list(call: Call) -> bool:
    call.no_body()

    def mine(status: int, data: bytes) -> bytes:
        if status != 200:
            return data
        return json.dumps(
            [
                n
                for n in engine_json(data, list)
                if n.get("Name") in BUILTIN_NETWORKS or call.owners.of_labelled(n) == call.user
            ]
        ).encode()

    return call.forward(buffered=mine)


def network_create(call: Call) -> bool:
    body = call.json_body(schema.NETWORK_CREATE)
    if body.get("Driver") not in (None, "", "bridge"):
        raise Refused(f"network driver {body['Driver']!r} is not allowed (bridge only)")
    for key in ("Ingress", "ConfigOnly", "ConfigFrom"):
        if body.get(key):
            raise Refused(f"{key} networks are for admins")
    if body.get("Scope") not in (None, "", "local"):
        raise Refused("only local networks may be created")
    options = set(body.get("Options") or {}) - NETWORK_OPTIONS
    if options:
        raise Refused(f"network options {sorted(options)} are not allowed")
    ipam = body.get("IPAM") or {}
    if ipam.get("Config") or ipam.get("Options") or ipam.get("Driver") not in (None, "", "default"):
        raise Refused(
            "choosing subnets (IPAM) is for admins: a subnet can hide part of the host's network"
        )
    name = str(body.get("Name") or "")
    if name in BUILTIN_NETWORKS or call.engine.inspect("networks", name) is not None:
        raise HttpError(409, f"network with name {name} already exists")
    body["Labels"] = {**creating.own_labels(body.get("Labels")), OWNER_LABEL: call.user}
    return call.forward(body=body)


def network_op(call: Call) -> bool:
    """Inspect or remove one's own network; inspect a built-in one, showing only the
    caller's containers on it."""
    call.no_body()
    ref, method = call.route.ref, call.head.method
    network = call.engine.inspect("networks", str(ref))
    if network is None:
        raise HttpError(404, f"network {ref} not found")
    builtin = network.get("Name") in BUILTIN_NETWORKS
    if builtin and method == "GET":
        network["Containers"] = {
            cid: entry
            for cid, entry in (network.get("Containers") or {}).items()
            if call.owners.of_container_id(cid) == call.user
        }
        keep = call.head.keep_alive()
        call.client.sock.sendall(response(200, "OK", json.dumps(network).encode(), keep_alive=keep))
        return keep
    if call.owners.of_labelled(network) != call.user:
        raise Refused(f"network {ref} belongs to another user")
    return call.forward(call.route.with_ref(str(network["Id"])))


def network_connect(call: Call) -> bool:
    body = call.json_body(schema.NETWORK_CONNECT)
    if not call.network_usable(str(call.route.ref)):
        raise Refused(f"network {call.route.ref} belongs to another user")
    body["Container"] = call.own_container(str(body.get("Container") or ""))
    return call.forward(body=body)
