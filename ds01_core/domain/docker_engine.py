"""The one adapter over the docker SDK.

Everything in ds01 that talks to the Docker engine goes through :class:`DockerAdapter`, so
there is one place that chooses the endpoint, negotiates the API version and turns the SDK's
assorted exceptions into :class:`DockerError`. It stays deliberately thin: it speaks the
Docker Engine API's own JSON (listing summaries, inspect results, create bodies) rather than
the SDK's high-level objects, because ds01's detectors, reconcilers and gateway all reason
about that JSON, and a create body must reach the engine untouched (HostConfig fields such
as ``CgroupParent``, ``DeviceRequests`` or ``Memory`` are ds01's enforcement).

The engine is contacted lazily, on the first call: building a :class:`~ds01_core.framework.runtime.Runtime`
never fails because dockerd is down, and a daemon can keep retrying until it comes up.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

from ds01_core.domain.images import is_image_reference

if TYPE_CHECKING:
    # imported where used: the SDK (with requests) costs ~0.2 s, and every CLI start-up
    # imports this module (through the detectors) while most commands never reach the engine
    import docker

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "unix:///var/run/docker.sock"
CONNECT_HINT = "is dockerd running? check DOCKER_HOST"


class DockerError(Exception):
    """A Docker engine call failed; the message carries the engine's own explanation.

    ``status`` is the HTTP status the engine answered with (None when it was not reached);
    ``hint`` says what to check when the engine could not be reached at all.
    """

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class DockerNotFound(DockerError):
    """The engine answered 404: the container (or image) does not exist (any more)."""


class ExecResult(NamedTuple):
    """What ``docker exec`` gave back: unpacks as ``exit_code, output``."""

    exit_code: int
    output: str


Timestamp = dt.datetime | float | int | str


def _timestamp(value: Timestamp | None) -> str | None:
    """The engine's ``since``/``until`` form: Unix seconds with nanoseconds, or as given."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        value = value.timestamp()  # naive datetimes are local time, as Python means them
    seconds = int(value // 1)
    nanos = round((value - seconds) * 1e9)
    if nanos >= 1_000_000_000:
        seconds, nanos = seconds + 1, 0
    return f"{seconds}.{nanos:09d}"


class EventStream:
    """Docker events as they arrive: iterate for dicts (or raw bytes without decoding).

    ``close()`` may be called from another thread to end a blocking iteration (the daemon
    does this on shutdown). Errors while reading become :class:`DockerError`.
    """

    def __init__(self, adapter: DockerAdapter, stream: Any):
        self._adapter = adapter
        self._stream = stream
        self._iter = iter(stream)
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            with self._adapter._errors("read docker events"):
                return next(self._iter)
        except Exception:
            if self._closed:  # reading a stream that close() cut off is an ordinary end
                raise StopIteration from None
            raise

    def close(self) -> None:
        self._closed = True
        self._stream.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DockerAdapter:
    """A connection to one Docker engine, speaking the Engine API's JSON.

    Build it with :meth:`from_env`. Every method raises :class:`DockerError` on failure
    (:class:`DockerNotFound` for a 404), except :meth:`ping`, which answers a plain bool, and
    :meth:`inspect_container` / :meth:`inspect_image`, which answer None for what is gone.
    """

    def __init__(
        self,
        base_url: str,
        *,
        tls: Any = False,
        timeout: float = 60,
        version: str = "auto",
    ):
        self.base_url = base_url
        self._tls = tls
        self._timeout = timeout
        self._version = version
        self._api: docker.APIClient | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, base_url: str | None = None, *, timeout: float = 60) -> DockerAdapter:
        """The engine named by ``base_url``, else ``DOCKER_HOST`` (with ``DOCKER_TLS_VERIFY``
        and ``DOCKER_CERT_PATH``), else the local Unix socket. Nothing is contacted yet."""
        import docker.utils

        kwargs = docker.utils.kwargs_from_env()
        url = base_url or kwargs.get("base_url") or DEFAULT_BASE_URL
        tls = kwargs.get("tls", False) if base_url is None else False
        return cls(url, tls=tls, timeout=timeout)

    # -- plumbing -------------------------------------------------------------------------------

    @property
    def api(self) -> docker.APIClient:
        """The SDK's low-level client, connected on first use (API version negotiated).

        An escape hatch: add a method to this class rather than calling it from elsewhere,
        so that engine access and error handling stay in one place.
        """
        import docker

        with self._lock:
            if self._api is None:
                with self._errors("connect to the Docker engine"):
                    self._api = docker.APIClient(
                        base_url=self.base_url,
                        version=self._version,
                        # the SDK hands the timeout to requests, which takes float seconds;
                        # types-docker narrows it to int
                        timeout=self._timeout,  # type: ignore[arg-type]
                        tls=self._tls,
                    )
            return self._api

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn the SDK's and requests' exceptions into :class:`DockerError`."""
        import docker.errors
        import requests.exceptions
        import urllib3.exceptions

        try:
            yield
        except docker.errors.NotFound as err:
            raise DockerNotFound(f"{action}: {_explanation(err)}", status=err.status_code) from err
        except docker.errors.APIError as err:
            raise DockerError(f"{action}: {_explanation(err)}", status=err.status_code) from err
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as err:
            # refused, timed out, or cut off mid-stream (a dockerd that died or restarted)
            raise DockerError(
                f"{action}: cannot reach the Docker engine at {self.base_url}: {err}",
                hint=CONNECT_HINT,
            ) from err
        except docker.errors.DockerException as err:
            # the SDK wraps a failed connection during version negotiation this way
            connecting = "fetching server API version" in str(err)
            raise DockerError(
                f"{action}: {err}" if not connecting else f"{action} at {self.base_url}: {err}",
                hint=CONNECT_HINT if connecting else None,
            ) from err

    def close(self) -> None:
        """Drop the connection pool; a later call reconnects."""
        with self._lock:
            if self._api is not None:
                self._api.close()
                self._api = None

    def __enter__(self) -> DockerAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the engine -----------------------------------------------------------------------------

    def ping(self) -> bool:
        """Whether the engine answers at all; never raises."""
        try:
            with self._errors("ping"):
                return bool(self.api.ping())
        except DockerError:
            return False

    def version(self) -> dict[str, Any]:
        """``GET /version``: ``Version``, ``ApiVersion``, ``Os``, ``KernelVersion`` …"""
        with self._errors("docker version"):
            return dict(self.api.version())

    def info(self) -> dict[str, Any]:
        """``GET /info``: ``CgroupDriver``, ``CgroupVersion``, ``Runtimes`` …"""
        with self._errors("docker info"):
            return dict(self.api.info())

    # -- containers -----------------------------------------------------------------------------

    def list_containers(
        self, all: bool = True, filters: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """``GET /containers/json``: the engine's summaries (``Id``, ``Names``, ``Labels``,
        ``State`` …) in one call; with ``all`` also stopped and created ones."""
        with self._errors("list containers"):
            return list(self.api.containers(all=all, filters=dict(filters) if filters else None))

    def inspect_container(self, container: str) -> dict[str, Any] | None:
        """``GET /containers/{id}/json``, or None when the container no longer exists."""
        try:
            with self._errors(f"inspect container {container}"):
                return dict(self.api.inspect_container(container))
        except DockerNotFound:
            return None

    def create_container(self, spec: Mapping[str, Any], name: str | None = None) -> str:
        """``POST /containers/create`` with ``spec`` as the body, untouched; returns the id.

        ``spec`` is an Engine API create body (``Image``, ``Cmd``, ``Labels``,
        ``HostConfig`` …), as ds01 and its gateway build them; top-level None values are
        dropped.
        """
        with self._errors(f"create container {name or ''}".rstrip()):
            result = self.api.create_container_from_config(dict(spec), name=name)
        for warning in result.get("Warnings") or ():
            log.warning("docker create %s: %s", name or result["Id"][:12], warning)
        return str(result["Id"])

    def start(self, container: str) -> None:
        """``POST /containers/{id}/start``."""
        with self._errors(f"start container {container}"):
            self.api.start(container)

    def stop(self, container: str, timeout: int = 10) -> None:
        """``POST /containers/{id}/stop``: SIGTERM (or the image's stop signal), then SIGKILL
        after ``timeout`` seconds."""
        with self._errors(f"stop container {container}"):
            self.api.stop(container, timeout=timeout)

    def remove(self, container: str, force: bool = False) -> None:
        """``DELETE /containers/{id}``; ``force`` kills a running container first."""
        with self._errors(f"remove container {container}"):
            self.api.remove_container(container, force=force)

    def exec_run(
        self,
        container: str,
        cmd: str | Sequence[str],
        *,
        user: str = "",
        environment: Mapping[str, str] | None = None,
        workdir: str | None = None,
    ) -> ExecResult:
        """Run ``cmd`` in a running container and wait: its exit code and its combined
        stdout and stderr (decoded as UTF-8, undecodable bytes replaced)."""
        with self._errors(f"exec in container {container}"):
            created = self.api.exec_create(
                container,
                cmd if isinstance(cmd, str) else list(cmd),
                user=user,
                environment=dict(environment) if environment else None,
                workdir=workdir,
            )
            raw = self.api.exec_start(created["Id"])
            exit_code = self.api.exec_inspect(created["Id"])["ExitCode"]
        output = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return ExecResult(int(exit_code if exit_code is not None else -1), output)

    # -- images ---------------------------------------------------------------------------------

    def inspect_image(self, image: str) -> dict[str, Any] | None:
        """``GET /images/{name}/json``, or None when the engine has no such image (or ``image``
        is no image name at all: such a name is never put in an engine URL)."""
        if not is_image_reference(image):
            return None
        try:
            with self._errors(f"inspect image {image}"):
                return dict(self.api.inspect_image(image))
        except DockerNotFound:
            return None

    # -- events ---------------------------------------------------------------------------------

    def events(
        self,
        since: Timestamp | None = None,
        until: Timestamp | None = None,
        filters: Mapping[str, Any] | None = None,
        decode: bool = True,
    ) -> EventStream:
        """``GET /events``: the engine's events from ``since``, live, until ``until`` (never
        ending without it). Timestamps are datetimes, Unix seconds, or the engine's strings;
        ``filters`` as the engine takes them (``{"type": ["container"], "container": [id]}``).
        """
        with self._errors("read docker events"):
            # the engine takes since/until as "seconds.nanos" strings, which the SDK passes
            # through; types-docker allows only datetime | int there (and a literal decode)
            stream = self.api.events(  # type: ignore[call-overload]
                since=_timestamp(since),
                until=_timestamp(until),
                filters=dict(filters) if filters else None,
                decode=decode,
            )
        return EventStream(self, stream)


def _explanation(err: docker.errors.APIError) -> str:
    """The engine's own message, with the HTTP status."""
    text = err.explanation if err.explanation else str(err)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{str(text).strip()} (HTTP {err.status_code})" if err.status_code else str(text)


def docker_host() -> str:
    """The endpoint :meth:`DockerAdapter.from_env` uses when none is named."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_BASE_URL
