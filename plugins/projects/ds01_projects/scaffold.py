"""The files ``ds01 project init`` writes into a project, rewritten only while the user left them alone.

Each generated file's hash is remembered in ``.ds01/generated.json``. Running ``init`` again
writes a file that is missing, leaves one that already says the same, updates one ds01 wrote
and nobody changed since, and keeps (and says so) one the user edited.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import attrs

from ds01_projects.project import PROJECT_FILE, Project

STATE_DIR = ".ds01"
RECORD = "generated.json"

GITIGNORE = """\
# ds01's own files (build logs, what was built)
.ds01/
# Python and Jupyter
__pycache__/
*.py[cod]
.ipynb_checkpoints/
.venv/
# data and results: keep them out of git (and out of the image's build context)
data/
checkpoints/
outputs/
runs/
wandb/
*.ckpt
*.pt
*.pth
"""

DOCKERIGNORE = """\
# not sent to the image build (ds01 project launch, VS Code): the image needs only the
# Dockerfile and the requirements
.ds01/
.git/
data/
checkpoints/
outputs/
runs/
wandb/
"""


@attrs.frozen
class Outcome:
    """What happened to one file: created, unchanged, updated, or kept (the user changed it)."""

    path: str
    action: str


def _sha(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()


def _load_record(directory: Path) -> dict[str, str]:
    try:
        data = json.loads((directory / STATE_DIR / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _save_record(directory: Path, record: dict[str, str]) -> None:
    state = directory / STATE_DIR
    state.mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=state, prefix=".generated.")
    with os.fdopen(fd, "w") as out:
        json.dump(record, out, indent=2, sort_keys=True)
    os.replace(tmp, state / RECORD)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


class Generated:
    """The generated files of one project folder, and what the last ``init`` wrote."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.record = _load_record(directory)
        self.outcomes: list[Outcome] = []

    def write(self, relpath: str, text: str) -> Outcome:
        path = self.directory / relpath
        wanted = text.encode("utf-8")
        try:
            current: bytes | None = path.read_bytes()
        except FileNotFoundError:
            current = None
        if current is None:
            write_atomic(path, text)
            action = "created"
        elif current == wanted:
            action = "unchanged"
        elif self.record.get(relpath) == _sha(current):
            write_atomic(path, text)
            action = "updated"
        else:
            action = "kept"
        if action != "kept":
            self.record[relpath] = _sha(wanted)
        outcome = Outcome(relpath, action)
        self.outcomes.append(outcome)
        return outcome

    def note(self, relpath: str, action: str) -> None:
        """A file written by someone else (the image definition, the project file)."""
        self.outcomes.append(Outcome(relpath, action))

    def save(self) -> None:
        _save_record(self.directory, self.record)


def readme_text(project: Project, repository: str) -> str:
    """A short README: how to launch, connect with VS Code, and where the image is defined."""
    if project.image_ref:
        image = f"the existing image `{project.image_ref}` (named in `{PROJECT_FILE}`)"
    else:
        image = (
            f"`{repository}`, built from the `Dockerfile` here; its packages are listed in "
            "`ds01-image.yaml` (change them with `ds01 image update "
            f"{project.image} --add-pip PKG`, or edit your own steps at the end of the "
            "Dockerfile)"
        )
    return f"""\
# {project.name}

A ds01 project: the image is {image}; the container is `{project.container}`,
with {project.gpu.describe()} and this folder mounted at `/workspace`.

## Run it

```console
$ ds01 project launch {project.name}           # builds the image if needed, starts the container
$ docker exec -it {project.container} sh -l      # a shell inside (bash where the image has it)
$ ds01 project list                            # your projects and their containers
```

## VS Code

- **Dev Containers** (recommended): open this folder on the server (Remote-SSH), then
  "Dev Containers: Reopen in Container". `.devcontainer/devcontainer.json` asks the ds01
  gateway for the GPUs and mounts this folder at `/workspace`.
- Or attach to the running container: "Dev Containers: Attach to Running Container…" →
  `{project.container}`.

Docker commands go through the ds01 gateway (`DOCKER_HOST`); build with the classic builder
(`DOCKER_BUILDKIT=0`). See `docs/projects.md` of ds01, or ask `ds01 doctor`.

## Packages installed by hand

Packages you `pip install` or `apt-get install` inside the container are lost when the
container is removed. Keep them in the image with:

```console
$ ds01 container retire {project.container} --save-packages
```
"""
