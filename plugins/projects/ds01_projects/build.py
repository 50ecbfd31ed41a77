"""Build an image definition through the gateway as the user, with progress and a kept log.

The classic builder (the gateway's only one) streams ``Step 3/7 : RUN …`` lines; they are
shown as they come (a live status on a terminal, plain step lines otherwise), and the whole
stream goes to ``<definition>/.ds01/build.log`` so that a failure can be read in full later.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import attrs
from rich.console import Console

from ds01_core.api import ServiceError, Unavailable, utc_text
from ds01_projects.gateway_client import BUILD_TIMEOUT, gateway_api
from ds01_projects.imagespec import DOCKERFILE, ImageSpec
from ds01_projects.settings import Settings

if TYPE_CHECKING:
    import docker

#: ds01's own files in a definition directory (never sent to the builder)
STATE_DIR = ".ds01"
LOG_NAME = "build.log"
BUILT_NAME = "built.json"
LABEL_NAME = "ds01.image.name"
LABEL_BASE = "ds01.image.base"
LABEL_DEFINITION = "ds01.image.definition"
LABEL_HASH = "ds01.image.dockerfile-sha256"
TAIL_LINES = 15
_STEP = re.compile(r"^Step \d+/\d+ : ")


class BuildFailed(ServiceError):
    """A build that ran and failed (a step's command, the Dockerfile) or that the gateway or
    the engine refused: the message says which step and where the whole log is."""


@attrs.frozen
class BuildResult:
    """A finished build: the image's reference and id, the log, and how long it took."""

    ref: str
    image_id: str
    log_path: Path
    seconds: float


def definition_hash(directory: Path, requirements: str | None = None) -> str:
    """The sha256 of the Dockerfile (and the requirements file, when there is one): what the
    image was built from, so a hand-edited Dockerfile is noticed (``ds01 image update``)."""
    digest = hashlib.sha256((Path(directory) / DOCKERFILE).read_bytes())
    if requirements:
        path = Path(directory) / requirements
        if path.is_file():
            digest.update(b"\0" + path.read_bytes())
    return digest.hexdigest()


def last_built(directory: Path) -> dict[str, Any]:
    """What ``directory/.ds01/built.json`` says about the last successful build ({} if none)."""
    try:
        data = json.loads((Path(directory) / STATE_DIR / BUILT_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _ignore_patterns(directory: Path) -> list[str]:
    """``.dockerignore``'s patterns, as the docker SDK reads them, plus ds01's own files."""
    patterns = [STATE_DIR]
    path = directory / ".dockerignore"
    if path.is_file():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                patterns.append(line)
    return patterns


def _context(directory: Path) -> IO[bytes]:
    # lazy: the docker SDK loads only for a build, not for `ds01 --help`
    from docker.utils.build import tar

    try:
        return cast(
            IO[bytes],
            tar(directory, exclude=_ignore_patterns(directory), dockerfile=(DOCKERFILE, None)),
        )
    except OSError as exc:
        raise BuildFailed(f"cannot read the build context {directory}: {exc}") from None


class _Progress:
    """The step lines on the console: a live status on a terminal, plain lines otherwise."""

    def __init__(self, console: Console | None, quiet: bool, ref: str):
        self.console = None if quiet else (console or Console(stderr=True))
        self.ref = ref
        self.started = time.monotonic()
        self.step = "sending the build context"
        self.status: Any = None

    def __enter__(self) -> _Progress:
        if self.console is not None and self.console.is_terminal:
            self.status = self.console.status(self._text())
            self.status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.stop()

    def _text(self) -> str:
        elapsed = int(time.monotonic() - self.started)
        return f"Building {self.ref} ({elapsed}s): {self.step}"

    def line(self, text: str) -> None:
        if _STEP.match(text):
            self.step = text if len(text) <= 100 else text[:99] + "…"
            if self.status is None and self.console is not None:
                self.console.print(self.step, markup=False, highlight=False, soft_wrap=True)
        if self.status is not None:
            self.status.update(self._text())


def _chunks(
    settings: Settings, context: IO[bytes], ref: str, labels: dict[str, str], nocache: bool
) -> Iterator[dict[str, Any]]:
    # lazy: the docker SDK loads only for a build, not for `ds01 --help`
    import docker.errors
    import requests.exceptions

    api = gateway_api(settings, timeout=BUILD_TIMEOUT)
    try:
        yield from api.build(
            fileobj=context,
            custom_context=True,
            tag=ref,
            rm=True,
            forcerm=True,
            decode=True,
            nocache=nocache,
            labels=labels,
        )
    except docker.errors.APIError as exc:
        raise BuildFailed(gateway_message(exc)) from None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise Unavailable(f"the build through the ds01 gateway broke off: {exc}") from None


def gateway_message(exc: docker.errors.APIError) -> str:
    """What the gateway (or the engine) said, without the gateway's ``ds01:`` prefix: the
    CLI shows it as ``Error: <message>``."""
    return str(exc.explanation or exc).strip().removeprefix("ds01: ")


def _lines(chunk: dict[str, Any]) -> Iterable[str]:
    text = chunk.get("stream")
    if isinstance(text, str):
        yield from text.rstrip("\n").split("\n")
    status = chunk.get("status")
    if isinstance(status, str):
        yield " ".join(str(x) for x in (status, chunk.get("progress") or "") if x)


def build_image(
    settings: Settings,
    directory: Path,
    spec: ImageSpec,
    *,
    console: Console | None = None,
    nocache: bool = False,
    quiet: bool = False,
) -> BuildResult:
    """Build ``directory`` (its Dockerfile, honouring ``.dockerignore``) as the user's image
    ``ds01/<user>/<spec.name>:<spec.tag>``; :class:`BuildFailed` with the failing step and the
    log's tail when it fails."""
    directory = Path(directory).resolve()
    if not (directory / DOCKERFILE).is_file():
        raise BuildFailed(f"{directory / DOCKERFILE} does not exist: nothing to build")
    ref = f"{settings.repository(spec.name)}:{spec.tag}"
    digest = definition_hash(directory, spec.requirements)
    labels = {
        LABEL_NAME: spec.name,
        LABEL_BASE: spec.base,
        LABEL_DEFINITION: str(directory),
        LABEL_HASH: digest,
    }
    state = directory / STATE_DIR
    try:
        state.mkdir(exist_ok=True)
    except OSError as exc:
        raise BuildFailed(f"cannot create {state}: {exc.strerror}") from None
    log_path = state / LOG_NAME
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    step, error, image_id = "", "", ""
    started = time.monotonic()
    context = _context(directory)
    with log_path.open("w") as log, _Progress(console, quiet, ref) as progress:
        log.write(f"# ds01 image build of {ref} from {directory}, {utc_text(_now())}\n")
        try:
            for chunk in _chunks(settings, context, ref, labels, nocache):
                for line in _lines(chunk):
                    log.write(line + "\n")
                    tail.append(line)
                    if _STEP.match(line):
                        step = line
                    progress.line(line)
                aux = chunk.get("aux")
                if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
                    image_id = aux["ID"]
                if chunk.get("error") or (chunk.get("message") and len(chunk) == 1):
                    error = str(chunk.get("error") or chunk.get("message")).strip()
                    log.write(f"ERROR: {error}\n")
        except ServiceError as exc:
            log.write(f"ERROR: {exc.message}\n")
            error = exc.message
            if not step:  # refused before it started (the gateway, a limit)
                raise type(exc)(f"{exc.message} (the log is at {log_path})") from None
        finally:
            context.close()
            log.flush()
    seconds = time.monotonic() - started
    if error:
        raise BuildFailed(_failure(ref, step, error, list(tail), log_path))
    if not image_id:
        image_id = _inspect_id(settings, ref)
    _remember(state, ref, image_id, digest)
    return BuildResult(ref=ref, image_id=image_id, log_path=log_path, seconds=seconds)


def _failure(ref: str, step: str, error: str, tail: list[str], log_path: Path) -> str:
    where = f"at {step}" if step else "before its first step"
    shown = "\n".join(f"  | {line}" for line in tail)
    return (
        f"building {ref} failed {where}:\n  {error}\n"
        f"The last lines of the build:\n{shown}\n"
        f"The whole log is {log_path}; fix the Dockerfile or the packages "
        "(`ds01 image update NAME --remove-pip PKG` …) and rebuild"
    )


def _inspect_id(settings: Settings, ref: str) -> str:
    import docker.errors  # lazy, as above

    try:
        return str(gateway_api(settings).inspect_image(ref)["Id"])
    except docker.errors.DockerException as exc:
        raise BuildFailed(f"{ref} was built but cannot be inspected: {exc}") from None


def _remember(state: Path, ref: str, image_id: str, digest: str) -> None:
    """``.ds01/built.json``: the last good build, for when the image's labels are not there."""
    data = {"ref": ref, "id": image_id, "dockerfile_sha256": digest, "built_at": utc_text(_now())}
    fd, tmp = tempfile.mkstemp(dir=state, prefix=".built.")
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2)
    os.replace(tmp, state / BUILT_NAME)


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


__all__ = ["BuildFailed", "BuildResult", "build_image", "definition_hash"]
