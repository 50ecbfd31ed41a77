"""What a Docker container is: its origin, its owner (and why we believe it), its GPUs.

Pure functions over the Docker Engine API's own JSON (a listing entry and an inspect result),
so every rule is testable without an engine and the detector stays a thin loop.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

import attrs

from ds01_core.domain.model import GpuSlot, Origin
from ds01_core.domain.users import normalize_username, uid_for_username, username_for_uid

LEGACY_USER_LABEL = "aime.mlc.USER"
OWNER_LABEL = "ds01.user"
ORIGIN_LABEL = "ds01.origin"
#: the GPU slots ds01's admission gave a container (only admission writes them: the gateway
#: drops every ``ds01.*`` label a client sends)
UUIDS_LABEL = "ds01.gpu.uuids"
SLOTS_LABEL = "ds01.gpu.slots"
ALLOCATED_AT_LABEL = "ds01.gpu.allocated_at"
#: what the container asked for (JSON: count, mig, full_gpu, min_memory), so that it can be
#: made again with the same request (``ds01 image update`` recreating it on a new build)
REQUEST_LABEL = "ds01.gpu.request"
COMPOSE_LABEL = "com.docker.compose.project"
DEVCONTAINER_FOLDER_LABEL = "devcontainer.local_folder"
_NAME_UID = re.compile(r"\._\.(\d+)$")
_NVIDIA_DEVICE = re.compile(r"^/dev/nvidia(\d+)$")


@attrs.frozen
class Owner:
    user: str
    source: str


@attrs.frozen
class GpuAccess:
    slot_uuids: tuple[str, ...] = ()
    unrestricted: bool = False
    via: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.slot_uuids) or self.unrestricted


def container_name(summary: Mapping[str, Any]) -> str:
    names = summary.get("Names") or []
    if names:
        return str(names[0]).lstrip("/")
    return str(summary.get("Name", "")).lstrip("/") or str(summary.get("Id", ""))[:12]


def classify_origin(labels: Mapping[str, str], name: str) -> Origin:
    """ds01 (or its legacy aime.mlc predecessor) > devcontainer > compose > docker, from
    labels and name alone."""
    if labels.get(ORIGIN_LABEL) == "ds01" or any(k.startswith("aime.mlc.") for k in labels):
        return "ds01"  # made by ds01, or by the aime.mlc tooling it replaces
    if any(key.startswith("devcontainer.") for key in labels) or name.startswith("vsc-"):
        return "devcontainer"
    if COMPOSE_LABEL in labels:
        return "compose"
    return "docker"


# -- owner ---------------------------------------------------------------------------------


def home_user_of(path: str, home_roots: Sequence[str]) -> str | None:
    """``alice`` for ``/home/alice/project`` when ``/home`` is a home root, else None."""
    pure = PurePosixPath(os.path.normpath(path))
    for root in home_roots:
        root_path = PurePosixPath(root)
        try:
            rest = pure.relative_to(root_path)
        except ValueError:
            continue
        if rest.parts and rest.parts[0] not in ("", ".", ".."):
            return rest.parts[0]
    return None


def path_owned_by(path: str, user: str, stat_uid: Callable[[str], int | None]) -> bool:
    """True when ``user`` owns ``path`` (or, if it does not exist, its nearest existing parent
    below the home root): a label or mount naming someone's home is believed only then."""
    uid = uid_for_username(user)
    if uid is None:
        return False
    current = os.path.normpath(path)
    while current not in ("/", ""):
        owner = stat_uid(current)
        if owner is not None:
            return owner == uid
        current = os.path.dirname(current)
    return False


def _stat_uid(path: str) -> int | None:
    try:
        return os.stat(path).st_uid
    except OSError:
        return None


def resolve_owner(
    name: str,
    labels: Mapping[str, str],
    mounts: Sequence[Mapping[str, Any]],
    main_pid_uid: int | None,
    *,
    home_roots: Sequence[str] = ("/home",),
    stat_uid: Callable[[str], int | None] = _stat_uid,
) -> Owner:
    """Who owns a container, by the first rule that gives an answer.

    1. the ``ds01.user`` label; 2. the legacy ``aime.mlc.USER`` label; 3. the home directory of
    ``devcontainer.local_folder`` or of a bind mount, if that user really owns the path;
    4. a ``<name>._.<uid>`` container name; 5. the uid of the main process, if not root;
    otherwise ``unknown``.
    """
    for label, source in (
        (OWNER_LABEL, "label:ds01.user"),
        (LEGACY_USER_LABEL, "label:aime.mlc.USER"),
    ):
        value = labels.get(label, "").strip()
        if value:
            return Owner(normalize_username(value), source)
    folder = labels.get(DEVCONTAINER_FOLDER_LABEL)
    candidates: list[tuple[str, str]] = []
    if folder:
        candidates.append((folder, "devcontainer.local_folder"))
    for mount in mounts:
        if mount.get("Type", "bind") == "bind" and mount.get("Source"):
            candidates.append((str(mount["Source"]), "bind_mount"))
    for path, source in candidates:
        user = home_user_of(path, home_roots)
        if user and path_owned_by(path, user, stat_uid):
            return Owner(normalize_username(user), source)
    match = _NAME_UID.search(name)
    if match:
        user = username_for_uid(int(match.group(1)))
        if user:
            return Owner(user, "name_pattern")
    if main_pid_uid not in (None, 0):
        user = username_for_uid(main_pid_uid)
        return Owner(user or f"uid:{main_pid_uid}", "process_uid")
    return Owner("unknown", "none")


# -- GPUs ------------------------------------------------------------------------------------


def _env(inspect: Mapping[str, Any]) -> dict[str, str]:
    env = {}
    for item in (inspect.get("Config") or {}).get("Env") or []:
        key, _, value = str(item).partition("=")
        env[key] = value
    return env


def mig_by_index(gpu_slots: Sequence[GpuSlot], mig_index: int) -> list[GpuSlot]:
    """The MIG slot ``G:M`` names among GPU ``G``'s slots: the one NVML enumerates at index
    ``M`` (``nvmlDeviceGetMigDeviceHandleByIndex(G, M)``, as the NVIDIA container toolkit
    resolves it). Indexes can have holes, so ``M`` is not a position. Only for slots whose
    provider knows no NVML index is it taken as the position in instance-id order."""
    migs = [s for s in gpu_slots if s.kind == "mig"]
    if any(s.mig_index is not None for s in migs):
        return [s for s in migs if s.mig_index == mig_index]
    return migs[mig_index : mig_index + 1]


def device_node_slots(minor: int, slots: Sequence[GpuSlot]) -> list[GpuSlot]:
    """The slots behind ``/dev/nvidia<minor>``: those of the GPU with that device minor number
    (``nvmlDeviceGetMinorNumber``), which need not be the GPU with that NVML index. A GPU
    whose minor number could not be read is taken by its index."""
    found = [s for s in slots if s.minor_number == minor]
    return found or [s for s in slots if s.minor_number is None and s.gpu_index == minor]


def resolve_gpu_ids(ids: Sequence[str], slots: Sequence[GpuSlot]) -> tuple[list[str], list[str]]:
    """Map the ways Docker and NVIDIA name GPUs to slot UUIDs.

    Accepts an index (``3``: the whole GPU, or all its MIG instances), ``GPU:MIG`` indexes
    (``3:1``, NVML's MIG index, see :func:`mig_by_index`), a GPU UUID, a MIG UUID in either
    form. Returns (slot UUIDs, ids not understood).
    """
    found: list[str] = []
    unknown: list[str] = []
    by_gpu: dict[int, list[GpuSlot]] = {}
    for slot in slots:
        by_gpu.setdefault(slot.gpu_index, []).append(slot)
    for raw in ids:
        ident = raw.strip()
        if not ident:
            continue
        matched: list[GpuSlot] = []
        if ident.isdigit():
            matched = by_gpu.get(int(ident), [])
        elif re.fullmatch(r"\d+:\d+", ident):
            gpu, mig = (int(x) for x in ident.split(":"))
            matched = mig_by_index(by_gpu.get(gpu, []), mig)
        else:
            matched = [s for s in slots if s.matches(ident)] or [
                s for s in slots if s.gpu_uuid == ident
            ]
        if matched:
            found.extend(s.uuid for s in matched if s.uuid not in found)
        else:
            unknown.append(ident)
    return found, unknown


def gpu_access(inspect: Mapping[str, Any], slots: Sequence[GpuSlot]) -> GpuAccess:
    """Which GPU slots a container can reach, and whether it can reach all of them.

    Reads Docker device requests (``--gpus``), the nvidia runtime with ``NVIDIA_VISIBLE_DEVICES``,
    the variable alone (the NVIDIA hook honours it under the nvidia runtime or as the default
    runtime), ``/dev/nvidia*`` device nodes, device cgroup rules for the NVIDIA major (195),
    and privileged mode (which exposes every device).
    """
    host = inspect.get("HostConfig") or {}
    ids: list[str] = []
    via: list[str] = []
    unrestricted = False
    for request in host.get("DeviceRequests") or []:
        caps = [c for group in request.get("Capabilities") or [] for c in group]
        if request.get("Driver") not in ("nvidia", "", None) or (caps and "gpu" not in caps):
            continue
        via.append("device_request")
        if request.get("Count") == -1:
            unrestricted = True
        elif request.get("DeviceIDs"):
            ids.extend(str(i) for i in request["DeviceIDs"])
        elif request.get("Count"):
            ids.extend(str(i) for i in range(int(request["Count"])))  # the toolkit takes 0..N-1
    visible = _env(inspect).get("NVIDIA_VISIBLE_DEVICES")
    if visible is not None:
        value = visible.strip().lower()
        if value == "all":
            unrestricted = True
            via.append("env")
        elif value not in ("", "none", "void"):
            ids.extend(visible.split(","))
            via.append("env")
    if host.get("Runtime") == "nvidia":
        via.append("runtime")
    device_slots: list[GpuSlot] = []
    for device in host.get("Devices") or []:
        match = _NVIDIA_DEVICE.match(str(device.get("PathOnHost", "")))
        if match:
            via.append("devices")
            device_slots += device_node_slots(int(match.group(1)), slots)
    gpu_indexes = {s.gpu_index for s in slots}
    if gpu_indexes and gpu_indexes <= {s.gpu_index for s in device_slots}:
        unrestricted = True
    for rule in host.get("DeviceCgroupRules") or []:
        if re.match(r"^[ca] (195|\*):\*", str(rule)):
            unrestricted = True
            via.append("device_cgroup_rule")
    if host.get("Privileged"):
        unrestricted = True
        via.append("privileged")
    found, _unknown = resolve_gpu_ids(ids, slots)
    found += [s.uuid for s in device_slots if s.uuid not in found]
    if unrestricted:
        found = [s.uuid for s in slots]
    return GpuAccess(tuple(found), unrestricted, tuple(dict.fromkeys(via)))


def gpu_managed(origin: Origin, labels: Mapping[str, str], access: GpuAccess) -> bool:
    """Whether a container's GPU access is ds01's doing, whichever client asked for it.

    True when it was made by ds01 (``ds01 container create``, or the aime.mlc tooling it
    replaces), or when ds01's admission gave it its slots: the ``ds01.gpu.uuids`` label, which
    only admission writes (the gateway drops any ``ds01.*`` label a client sends), covers every
    slot it can reach. A container that can reach all GPUs, or more than it was given, is not.
    """
    if origin == "ds01":
        return True
    given = {u for u in str(labels.get(UUIDS_LABEL, "")).split(",") if u}
    return bool(given) and not access.unrestricted and set(access.slot_uuids) <= given
