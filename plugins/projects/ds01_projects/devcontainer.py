"""The project's ``.devcontainer/devcontainer.json``: VS Code Dev Containers through the gateway.

What is in it and why (docs/projects.md explains each key to users):

- ``build`` (the project's own Dockerfile, context the project folder) or ``image`` (a project
  made with ``--image``);
- the folder mounted at ``/workspace`` (a bind mount of the user's own folder: the gateway
  allows it);
- the GPU request as ``runArgs: ["--gpus", "N"]``: the gateway allocates N GPUs under the
  user's quota. Not ``hostRequirements.gpu``: the Dev Containers CLI turns that into
  ``--gpus all``, which the gateway refuses (ds01 never hands out every GPU). The gateway
  takes a count only, so a MIG project's dev container asks for one GPU, and the allocator
  picks the slot;
- the user's own uid and gid (``containerUser``), so that files written into the workspace
  belong to the user, not to root; ``updateRemoteUserUID`` off, since it rebuilds the image to
  edit a named user's uid, and images such as busybox have no user tools; ``HOME`` set to a
  writable folder, since the uid has no entry in the image's ``/etc/passwd``.
"""

from __future__ import annotations

import json
from typing import Any

from ds01_projects.project import Project

DEVCONTAINER_DIR = ".devcontainer"
DEVCONTAINER_FILE = "devcontainer.json"
#: where the user's home is inside the dev container (the uid has no passwd entry there)
CONTAINER_HOME = "/tmp/ds01-home"
WORKSPACE = "/workspace"
EXTENSIONS = ("ms-python.python", "ms-toolsai.jupyter")


def gpu_run_args(project: Project) -> list[str]:
    """``--gpus N`` as the gateway admits it (a count; nothing for a CPU-only project)."""
    if project.gpu.cpu_only:
        return []
    count = 1 if project.gpu.mig else (project.gpu.gpus or 1)
    return ["--gpus", str(count)]


def devcontainer_config(project: Project, uid: int, gid: int) -> dict[str, Any]:
    """The devcontainer.json of ``project`` for the user ``uid:gid``."""
    config: dict[str, Any] = {"name": project.name}
    if project.image_ref:
        config["image"] = project.image_ref
    else:
        config["build"] = {"dockerfile": "../Dockerfile", "context": ".."}
    config.update(
        {
            "workspaceFolder": WORKSPACE,
            "workspaceMount": f"source=${{localWorkspaceFolder}},target={WORKSPACE},type=bind",
            "runArgs": gpu_run_args(project),
            "containerUser": f"{uid}:{gid}",
            "updateRemoteUserUID": False,
            "containerEnv": {"HOME": CONTAINER_HOME, "DS01_PROJECT": project.name},
            "customizations": {"vscode": {"extensions": list(EXTENSIONS)}},
        }
    )
    return config


def render_devcontainer(project: Project, uid: int, gid: int) -> str:
    """The file's text: indented JSON (the format Dev Containers reads; comments are in the
    docs, since a JSON file has none)."""
    return json.dumps(devcontainer_config(project, uid, gid), indent=2) + "\n"
