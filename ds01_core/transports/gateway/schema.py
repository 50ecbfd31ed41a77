"""The JSON bodies the gateway checks, field by field, with the engine's exact spelling.

The engine decodes JSON with Go's ``encoding/json``, which matches field names
*case-insensitively*: ``{"hostconfig": {"privileged": true}}`` creates a privileged container.
A policy that only looks at ``HostConfig.Privileged`` would miss it. So every object the policy
reads is first checked against the fields the engine knows (API 1.41 to 1.45), spelt exactly as the
API documents them: a differently-cased, duplicated or unknown field is refused (fail-closed),
and what is forwarded is the re-serialised, checked object.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

ANY = None  # any value; not looked into


class ListOf:
    def __init__(self, item: Any):
        self.item = item


class MapOf:
    def __init__(self, item: Any):
        self.item = item


HEALTHCHECK = {
    "Test": ANY,
    "Interval": ANY,
    "Timeout": ANY,
    "Retries": ANY,
    "StartPeriod": ANY,
    "StartInterval": ANY,
}
MOUNT = {
    "Target": ANY,
    "Source": ANY,
    "Type": ANY,
    "ReadOnly": ANY,
    "Consistency": ANY,
    "BindOptions": {
        "Propagation": ANY,
        "NonRecursive": ANY,
        "CreateMountpoint": ANY,
        "ReadOnlyNonRecursive": ANY,
        "ReadOnlyForceRecursive": ANY,
    },
    "VolumeOptions": {
        "NoCopy": ANY,
        "Labels": ANY,
        "Subpath": ANY,
        "DriverConfig": {"Name": ANY, "Options": ANY},
    },
    "TmpfsOptions": {"SizeBytes": ANY, "Mode": ANY, "Options": ANY},
}
DEVICE_REQUEST = {
    "Driver": ANY,
    "Count": ANY,
    "DeviceIDs": ANY,
    "Capabilities": ANY,
    "Options": ANY,
}
RESOURCES = {
    "CpuShares": ANY,
    "Memory": ANY,
    "CgroupParent": ANY,
    "BlkioWeight": ANY,
    "BlkioWeightDevice": ANY,
    "BlkioDeviceReadBps": ANY,
    "BlkioDeviceWriteBps": ANY,
    "BlkioDeviceReadIOps": ANY,
    "BlkioDeviceWriteIOps": ANY,
    "CpuPeriod": ANY,
    "CpuQuota": ANY,
    "CpuRealtimePeriod": ANY,
    "CpuRealtimeRuntime": ANY,
    "CpusetCpus": ANY,
    "CpusetMems": ANY,
    "Devices": ANY,
    "DeviceCgroupRules": ANY,
    "DeviceRequests": ListOf(DEVICE_REQUEST),
    "KernelMemory": ANY,
    "KernelMemoryTCP": ANY,
    "MemoryReservation": ANY,
    "MemorySwap": ANY,
    "MemorySwappiness": ANY,
    "NanoCpus": ANY,
    "OomKillDisable": ANY,
    "Init": ANY,
    "PidsLimit": ANY,
    "Ulimits": ANY,
    "CpuCount": ANY,
    "CpuPercent": ANY,
    "IOMaximumIOps": ANY,
    "IOMaximumBandwidth": ANY,
}
HOST_CONFIG = {
    **RESOURCES,
    "Binds": ANY,
    "ContainerIDFile": ANY,
    "LogConfig": {"Type": ANY, "Config": ANY},
    "NetworkMode": ANY,
    "PortBindings": ANY,
    "RestartPolicy": {"Name": ANY, "MaximumRetryCount": ANY},
    "AutoRemove": ANY,
    "VolumeDriver": ANY,
    "VolumesFrom": ANY,
    "Mounts": ListOf(MOUNT),
    "ConsoleSize": ANY,
    "Annotations": ANY,
    "CapAdd": ANY,
    "CapDrop": ANY,
    "CgroupnsMode": ANY,
    "Dns": ANY,
    "DnsOptions": ANY,
    "DnsSearch": ANY,
    "ExtraHosts": ANY,
    "GroupAdd": ANY,
    "IpcMode": ANY,
    "Cgroup": ANY,
    "Links": ANY,
    "OomScoreAdj": ANY,
    "PidMode": ANY,
    "Privileged": ANY,
    "PublishAllPorts": ANY,
    "ReadonlyRootfs": ANY,
    "SecurityOpt": ANY,
    "StorageOpt": ANY,
    "Tmpfs": ANY,
    "UTSMode": ANY,
    "UsernsMode": ANY,
    "ShmSize": ANY,
    "Sysctls": ANY,
    "Runtime": ANY,
    "Isolation": ANY,
    "MaskedPaths": ANY,
    "ReadonlyPaths": ANY,
}
ENDPOINT_SETTINGS = {
    "IPAMConfig": ANY,
    "Links": ANY,
    "Aliases": ANY,
    "MacAddress": ANY,
    "NetworkID": ANY,
    "EndpointID": ANY,
    "Gateway": ANY,
    "IPAddress": ANY,
    "IPPrefixLen": ANY,
    "IPv6Gateway": ANY,
    "GlobalIPv6Address": ANY,
    "GlobalIPv6PrefixLen": ANY,
    "DriverOpts": ANY,
    "DNSNames": ANY,
    "GwPriority": ANY,
}
CONTAINER_CREATE = {
    "Hostname": ANY,
    "Domainname": ANY,
    "User": ANY,
    "AttachStdin": ANY,
    "AttachStdout": ANY,
    "AttachStderr": ANY,
    "ExposedPorts": ANY,
    "Tty": ANY,
    "OpenStdin": ANY,
    "StdinOnce": ANY,
    "Env": ANY,
    "Cmd": ANY,
    "Healthcheck": HEALTHCHECK,
    "ArgsEscaped": ANY,
    "Image": ANY,
    "Volumes": ANY,
    "WorkingDir": ANY,
    "Entrypoint": ANY,
    "NetworkDisabled": ANY,
    "MacAddress": ANY,
    "OnBuild": ANY,
    "Labels": ANY,
    "StopSignal": ANY,
    "StopTimeout": ANY,
    "Shell": ANY,
    "HostConfig": HOST_CONFIG,
    "NetworkingConfig": {"EndpointsConfig": MapOf(ENDPOINT_SETTINGS)},
}
EXEC_CREATE = {
    "Detach": ANY,
    "AttachStdin": ANY,
    "AttachStdout": ANY,
    "AttachStderr": ANY,
    "ConsoleSize": ANY,
    "DetachKeys": ANY,
    "Tty": ANY,
    "Env": ANY,
    "Cmd": ANY,
    "Privileged": ANY,
    "User": ANY,
    "WorkingDir": ANY,
}
EXEC_START = {"Detach": ANY, "Tty": ANY, "ConsoleSize": ANY}
CONTAINER_UPDATE = {**RESOURCES, "RestartPolicy": {"Name": ANY, "MaximumRetryCount": ANY}}
VOLUME_CREATE = {
    "Name": ANY,
    "Driver": ANY,
    "DriverOpts": ANY,
    "Labels": ANY,
    "ClusterVolumeSpec": ANY,
}
NETWORK_CREATE = {
    "Name": ANY,
    "CheckDuplicate": ANY,
    "Driver": ANY,
    "Scope": ANY,
    "Internal": ANY,
    "Attachable": ANY,
    "Ingress": ANY,
    "ConfigOnly": ANY,
    "ConfigFrom": ANY,
    "IPAM": ANY,
    "EnableIPv6": ANY,
    "EnableIPv4": ANY,
    "Options": ANY,
    "Labels": ANY,
}
NETWORK_CONNECT = {"Container": ANY, "EndpointConfig": ENDPOINT_SETTINGS, "Force": ANY}


class SchemaError(ValueError):
    """A body the gateway will not pass on; the message names the field."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise SchemaError(f"field {key!r} given twice")
        seen[key] = value
    return seen


def loads(body: bytes) -> Any:
    """JSON with duplicate keys refused (Go would take the last one; a checker the first)."""
    try:
        return json.loads(body or b"{}", object_pairs_hook=_no_duplicates)
    except SchemaError:
        raise
    except (ValueError, RecursionError) as exc:
        raise SchemaError(f"the body is not valid JSON: {exc}") from None


def check(value: Any, schema: Any, path: str = "") -> None:
    """Refuse unknown or differently-cased fields anywhere the schema describes."""
    if schema is ANY or value is None:
        return
    if isinstance(schema, ListOf):
        if not isinstance(value, list):
            raise SchemaError(f"{path or 'body'} must be a list")
        for index, item in enumerate(value):
            check(item, schema.item, f"{path}[{index}]")
        return
    if isinstance(schema, MapOf):
        if not isinstance(value, Mapping):
            raise SchemaError(f"{path or 'body'} must be an object")
        for key, item in value.items():
            check(item, schema.item, f"{path}.{key}")
        return
    if not isinstance(value, Mapping):
        raise SchemaError(f"{path or 'body'} must be an object")
    by_lower = {name.lower(): name for name in schema}
    for key, item in value.items():
        where = f"{path}.{key}" if path else key
        if key not in schema:
            canonical = by_lower.get(key.lower())
            if canonical:
                raise SchemaError(f"field {where!r} must be spelt {canonical!r}")
            raise SchemaError(f"field {where!r} is not understood by the ds01 gateway")
        check(item, schema[key], where)
