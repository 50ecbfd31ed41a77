"""Move the caller's containers from an image's old build to its new one.

A container cannot change its image, so after ``ds01 image update`` each container ds01 made
from the old build is removed and created again under the same name with the same GPU request,
workspace, project and command (``containers.create``: the GPU admission decides again), and
started if it was running. Containers made some other way (``docker run``, a dev container)
are only listed, with what to do: ds01 does not know how to make them again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from rich.console import Console

from ds01_core.api import ServiceError
from ds01_projects.gateway_client import gateway_api
from ds01_projects.images import docker_call
from ds01_projects.settings import Settings

ORIGIN_LABEL = "ds01.origin"
WORKSPACE_LABEL = "ds01.workspace"
PROJECT_LABEL = "ds01.project"
UUIDS_LABEL = "ds01.gpu.uuids"
#: the request ds01's admission recorded (count, mig, full_gpu, min_memory)
REQUEST_LABEL = "ds01.gpu.request"


@attrs.frozen
class Recipe:
    """How one container was made, enough to make it again on another image."""

    name: str
    running: bool
    by_ds01: bool
    gpus: int | None = None
    mig: str | None = None
    cpu_only: bool = False
    full_gpu: bool = False
    min_memory: int | None = None
    workspace: str | None = None
    project: str | None = None
    command: tuple[str, ...] | None = None

    def create_params(self, image: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "image": image,
            "gpus": self.gpus,
            "mig": self.mig,
            "cpu_only": self.cpu_only,
            "full_gpu": self.full_gpu,
            "min_memory": self.min_memory,
            "workspace": self.workspace,
            "project": self.project,
            "command": list(self.command) if self.command else None,
        }


def _mig_profiles(state: Any) -> dict[str, str]:
    """MIG slot uuid -> profile (``1g.10gb``), from ``gpu.status``; {} when it cannot be read."""
    try:
        status = state.call("gpu.status")
    except ServiceError:
        return {}
    profiles = {}
    for gpu in status.get("gpus") or []:
        for slot in gpu.get("slots") or []:
            if slot.get("profile") and slot.get("uuid"):
                profiles[str(slot["uuid"])] = str(slot["profile"])
    return profiles


def _recorded_request(text: str | None) -> dict[str, Any] | None:
    """The admission's record of a GPU request, or None (none recorded, or unreadable)."""
    import json

    try:
        data = json.loads(text) if text else None
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    count = data.get("count")
    memory = data.get("min_memory")
    return {
        "count": count if isinstance(count, int) and count > 0 else 1,
        "mig": str(data["mig"]) if data.get("mig") else None,
        "full_gpu": data.get("full_gpu") is True,
        "min_memory": memory if isinstance(memory, int) else None,
    }


def recipe(
    inspect: Mapping[str, Any],
    image_cmd: Iterable[str] | None,
    listed: Mapping[str, Any] | None,
    profiles: Mapping[str, str],
) -> Recipe:
    """The recipe of one container from its ``docker inspect``, its old image's command (a
    different command was given at creation), its ``containers.list`` entry (the slots it holds
    now) and the MIG profiles by slot uuid."""
    config = inspect.get("Config") or {}
    labels: Mapping[str, str] = config.get("Labels") or {}
    name = str(inspect.get("Name") or "").lstrip("/")
    running = bool((inspect.get("State") or {}).get("Running"))
    by_ds01 = labels.get(ORIGIN_LABEL) == "ds01"
    uuids = [u for u in (labels.get(UUIDS_LABEL) or "").split(",") if u]
    if listed and listed.get("gpu_slots"):
        uuids = [str(u) for u in listed["gpu_slots"]]
    cmd = config.get("Cmd")
    command = tuple(cmd) if cmd and list(cmd) != list(image_cmd or []) else None
    asked = _recorded_request(labels.get(REQUEST_LABEL))
    if asked is not None:  # the request as it was made, not what it happened to get
        gpus, mig = (None, asked["mig"]) if asked["mig"] else (asked["count"], None)
        full_gpu, min_memory = asked["full_gpu"], asked["min_memory"]
    else:  # made before ds01 recorded requests: one MIG slice is a --mig request
        mig = profiles.get(uuids[0]) if len(uuids) == 1 else None
        gpus, full_gpu, min_memory = (None if mig or not uuids else len(uuids)), False, None
    return Recipe(
        name=name,
        running=running,
        by_ds01=by_ds01,
        gpus=gpus if not full_gpu else None,
        mig=mig,
        cpu_only=asked is None and not uuids,
        full_gpu=full_gpu,
        min_memory=min_memory,
        workspace=labels.get(WORKSPACE_LABEL),
        project=labels.get(PROJECT_LABEL),
        command=command,
    )


def recreate_containers(
    state: Any,
    settings: Settings,
    api: Any,
    old_image_ids: Iterable[str],
    new_ref: str,
    *,
    console: Console,
) -> list[str]:
    """Recreate the caller's ds01-made containers of ``old_image_ids`` on ``new_ref``; returns
    the names recreated. Others are listed with a hint. A container that is removed but cannot
    be created again is said so, with the command that would make it."""
    api = api or gateway_api(settings)
    old = set(old_image_ids)
    with docker_call("listing your containers"):
        summaries = [c for c in api.containers(all=True) if c.get("ImageID") in old]
    if not summaries:
        return []
    listed = {c["name"]: c for c in state.call("containers.list", all=True)}
    profiles = _mig_profiles(state)
    done: list[str] = []
    for summary in summaries:
        with docker_call("inspecting a container"):
            inspect = api.inspect_container(summary["Id"])
            image_cmd = (api.inspect_image(inspect["Image"]).get("Config") or {}).get("Cmd")
        item = recipe(inspect, image_cmd, listed.get(inspect["Name"].lstrip("/")), profiles)
        if not item.by_ds01:
            console.print(
                f"[yellow]{item.name}[/] was not made by ds01 (docker run, a dev container …): "
                f"remove it and make it again from {new_ref} yourself",
                highlight=False,
            )
            continue
        console.print(f"recreating {item.name} on {new_ref} …", highlight=False)
        state.call("containers.remove", client_timeout=None, name=item.name, force=True)
        try:
            state.call("containers.create", client_timeout=600.0, **item.create_params(new_ref))
            if item.running:
                state.call("containers.start", name=item.name)
        except ServiceError as exc:
            raise ServiceError(
                f"{item.name} was removed but could not be made again on {new_ref}: "
                f"{exc.message}; try `{_create_command(item, new_ref)}`"
            ) from None
        done.append(item.name)
    return done


def _create_command(item: Recipe, image: str) -> str:
    words = ["ds01 container create", item.name, f"--image {image}"]
    if item.mig:
        words.append(f"--mig {item.mig}")
    elif item.full_gpu:
        words.append("--full-gpu")
    elif item.gpus:
        words.append(f"--gpus {item.gpus}")
    elif item.cpu_only:
        words.append("--cpu-only")
    if item.workspace:
        words.append(f"--workspace {item.workspace}")
    if item.project:
        words.append(f"--project {item.project}")
    return " ".join(words)
