"""What a non-admin's container create may ask for, decided before it reaches the engine.

Everything that would reach the host or another user is refused, by name.

Pure functions over a Docker Engine API create body, so every rule is tested on its own; the
gateway (issue #7) calls :func:`refusals` and turns a non-empty answer into a 403. Fail-closed:
a field whose shape is not understood is a refusal too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

#: Capabilities Docker grants by default anyway; adding them again changes nothing.
DEFAULT_SAFE_CAPS = frozenset(
    {
        "CHOWN",
        "DAC_OVERRIDE",
        "FSETID",
        "FOWNER",
        "MKNOD",
        "NET_RAW",
        "SETGID",
        "SETUID",
        "SETFCAP",
        "SETPCAP",
        "NET_BIND_SERVICE",
        "SYS_CHROOT",
        "KILL",
        "AUDIT_WRITE",
    }
)
#: Trees no user may mount, whatever their home: the engine and its socket, the host's system,
#: its devices and runtime state (and ``/`` itself).
ALWAYS_REFUSED = (
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/root",
    "/var/lib/docker",
    "/run",
    "/var/run",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/var/log",
    "/var/lib/ds01",
)
_HOST_NAMESPACES = ("PidMode", "IpcMode", "UTSMode", "UsernsMode", "NetworkMode", "CgroupnsMode")


@attrs.frozen
class CreateRules:
    """What a user may mount and use; built from the configuration and the user's account."""

    home: str
    workspace_roots: tuple[str, ...] = ()
    read_only_paths: tuple[str, ...] = ()
    safe_caps: frozenset[str] = DEFAULT_SAFE_CAPS
    runtimes: tuple[str, ...] = ("runc", "nvidia")
    other_homes_root: str = "/home"


def _never(_ref: str) -> bool:
    return False


@attrs.frozen
class Lookups:
    """Whether a container, network, named volume or image the body refers to is the caller's
    own (or, for networks, volumes and images, free to use); the gateway answers from the
    engine."""

    own_container: Callable[[str], bool] = _never
    usable_network: Callable[[str], bool] = _never
    usable_volume: Callable[[str], bool] = _never
    usable_image: Callable[[str], bool] = _never


_USABLE_NETWORK_MODES = frozenset({"", "default", "bridge", "none"})
_LOG_DRIVERS = frozenset({"", "json-file", "local", "none"})


def _norm(path: str) -> str:
    return os.path.normpath(path) if path.startswith("/") else path


def _within(path: str, root: str) -> bool:
    path, root = _norm(path), _norm(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def mount_refusal(source: str, read_only: bool, rules: CreateRules) -> str | None:
    """Why a host path may not be mounted, or None. Symlinks are resolved first, so a link in
    the user's home pointing at /etc is judged as /etc."""
    if not source.startswith("/"):
        return None  # a named volume, judged separately
    real = os.path.realpath(source)
    for path in {_norm(source), real}:
        if path == "/" or any(_within(path, tree) for tree in ALWAYS_REFUSED):
            return f"mounting {source} would expose the host ({path}); not allowed"
    allowed = [rules.home, *rules.workspace_roots]
    if any(_within(real, root) and _within(_norm(source), root) for root in allowed):
        return None
    if any(_within(real, root) for root in rules.read_only_paths):
        return None if read_only else f"{source} may only be mounted read-only (:ro)"
    if _within(real, rules.other_homes_root):
        return f"{source} is in another user's home; not allowed"
    return f"{source} is outside the paths you may mount (your home, your workspace)"


def mount_sources(host: Mapping[str, Any]) -> Iterable[tuple[str, str, bool]]:
    """(kind, source, read-only) of each mount: kind ``bind`` (a host path), ``volume`` (a
    named volume) or ``bad`` (not understood, so refused)."""
    for bind in host.get("Binds") or []:
        if not isinstance(bind, str):
            yield "bad", "<unparsable bind>", False
            continue
        parts = bind.split(":")
        if len(parts) == 1:
            continue  # "/data": an anonymous volume at that container path
        options = parts[2].split(",") if len(parts) > 2 else []
        kind = "bind" if parts[0].startswith("/") else "volume"
        yield kind, parts[0], "ro" in options
    for mount in host.get("Mounts") or []:
        if not isinstance(mount, Mapping):
            yield "bad", "<unparsable mount>", False
            continue
        kind = mount.get("Type", "volume")
        read_only = bool(mount.get("ReadOnly"))
        if kind == "bind":
            yield "bind", str(mount.get("Source", "")), read_only
        elif kind == "volume":
            driver = (mount.get("VolumeOptions") or {}).get("DriverConfig") or {}
            driver_options = driver.get("Options") if isinstance(driver, Mapping) else None
            device = driver_options.get("device") if isinstance(driver_options, Mapping) else None
            if device:  # a local-driver volume that is really a bind of `device`
                yield "bind", str(device), read_only
            if driver and (driver_options or driver.get("Name") not in (None, "", "local")):
                yield "bad", "<volume driver options>", False
            if mount.get("Source"):
                yield "volume", str(mount["Source"]), read_only
        elif kind != "tmpfs":
            yield "bad", f"<mount type {kind}>", False


def refusals(
    body: Mapping[str, Any], rules: CreateRules, lookups: Lookups | None = None
) -> list[str]:
    """Every reason this create body may not go through for a non-admin (empty: allowed)."""
    lookups = lookups or Lookups()
    if not isinstance(body, Mapping):
        return ["the create request is not a JSON object"]
    host = body.get("HostConfig") or {}
    if not isinstance(host, Mapping):
        return ["HostConfig is not an object"]
    found: list[str] = []
    image = str(body.get("Image") or "")
    if image and not lookups.usable_image(image):
        found.append(f"image {image} belongs to another user")
    if host.get("Privileged"):
        found.append("privileged containers are not allowed")
    extra = {str(c).upper().removeprefix("CAP_") for c in host.get("CapAdd") or []}
    if "ALL" in extra or extra - rules.safe_caps:
        found.append(
            f"adding capabilities {sorted(extra - rules.safe_caps) or ['ALL']} is not allowed"
        )
    if host.get("Devices"):
        found.append("host devices may not be added (GPUs are given by ds01)")
    if host.get("DeviceCgroupRules"):
        found.append("device cgroup rules are not allowed")
    for key in _HOST_NAMESPACES:
        value = str(host.get(key) or "")
        if value == "host":
            found.append(f"{key}=host would share the host's namespace; not allowed")
        elif value.startswith("container:"):
            if not lookups.own_container(value.removeprefix("container:")):
                found.append(
                    f"{key}={value}: sharing a namespace is allowed only with your own containers"
                )
        elif key == "NetworkMode" and value not in _USABLE_NETWORK_MODES:
            if not lookups.usable_network(value):
                found.append(f"network {value!r} is not yours; use one of your own networks")
        elif key == "UsernsMode" and value:
            found.append(f"UsernsMode={value} is not allowed")
    if host.get("Cgroup"):
        found.append("the Cgroup (cgroup namespace) option is not allowed")
    for ref in host.get("VolumesFrom") or []:
        if not lookups.own_container(str(ref).split(":", 1)[0]):
            found.append(f"--volumes-from {ref}: only your own containers")
    for link in host.get("Links") or []:
        if not lookups.own_container(str(link).split(":", 1)[0].lstrip("/")):
            found.append(f"--link {link}: only your own containers")
    endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    for network in endpoints if isinstance(endpoints, Mapping) else ["<unparsable>"]:
        if network not in _USABLE_NETWORK_MODES and not lookups.usable_network(network):
            found.append(f"network {network!r} is not yours; use one of your own networks")
    if isinstance(host.get("OomScoreAdj"), int) and host["OomScoreAdj"] < 0:
        found.append("a negative OOM score (protecting this container over others) is not allowed")
    if host.get("OomKillDisable"):
        found.append("disabling the OOM killer is not allowed")
    for key in ("MaskedPaths", "ReadonlyPaths"):
        if key in host and host[key] is not None:
            found.append(f"{key} may not be changed (it unmasks the host's /proc and /sys)")
    log_driver = str((host.get("LogConfig") or {}).get("Type") or "")
    if log_driver not in _LOG_DRIVERS:
        found.append(f"log driver {log_driver!r} is not allowed (json-file, local or none)")
    if host.get("VolumeDriver") not in (None, "", "local"):
        found.append(f"volume driver {host['VolumeDriver']!r} is not allowed")
    for port, bindings in (host.get("PortBindings") or {}).items():
        for binding in bindings or []:
            text = str((binding or {}).get("HostPort") or "0").split("-")[0]
            if text.isdigit() and 0 < int(text) < 1024:
                found.append(
                    f"publishing {port} on host port {text} is not allowed: host ports below "
                    "1024 belong to the host's services; use 1024 or above"
                )
    for option in host.get("SecurityOpt") or []:
        text = str(option).replace("=", ":").lower()
        if text.startswith(
            (
                "apparmor:unconfined",
                "seccomp:unconfined",
                "label:disable",
                "label:type:",
                "systempaths:unconfined",
            )
        ):
            found.append(f"security option {option!r} would weaken isolation; not allowed")
    if host.get("Sysctls"):
        found.append("sysctls are not allowed")
    if host.get("CgroupParent"):
        found.append("the cgroup parent is set by ds01, not by the client")
    runtime = host.get("Runtime")
    if runtime and runtime not in rules.runtimes:
        found.append(f"runtime {runtime!r} is not allowed (allowed: {', '.join(rules.runtimes)})")
    for kind, source, read_only in mount_sources(host):
        if kind == "bad":
            found.append(f"mount {source} is not allowed (binds, named volumes and tmpfs only)")
        elif kind == "bind":
            problem = mount_refusal(source, read_only, rules)
            if problem:
                found.append(problem)
        elif not lookups.usable_volume(source):
            found.append(f"volume {source!r} belongs to another user")
    for request in host.get("DeviceRequests") or []:
        if not isinstance(request, Mapping):
            found.append("an unparsable device request")
        elif request.get("Count") == -1:
            found.append("all GPUs (--gpus all) may not be requested: ask for a number")
    env: Sequence[Any] = body.get("Env") or []
    for item in env:
        key, _, value = str(item).partition("=")
        if key == "NVIDIA_VISIBLE_DEVICES" and value.strip().lower() == "all":
            found.append("NVIDIA_VISIBLE_DEVICES=all is not allowed: ask for a number of GPUs")
    return found
