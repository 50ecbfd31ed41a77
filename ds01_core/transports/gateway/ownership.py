"""Who owns a container, volume or network, asked of the engine the gateway fronts.

Containers are judged by detection's own owner rules (:func:`resolve_owner`: the ``ds01.user``
label, which only ds01 and admins can set once users go through the gateway; then the legacy
label, the home a bind mount is in, the name pattern, the main process's uid). Volumes and
networks are owned through the ``ds01.user`` label the gateway puts on them at creation; those
without one (the engine's built-in networks aside) belong to no user and are admins' only.

An owner that came from a label never changes for that id, so it is cached by full id; the
rest is re-derived each time, since a process uid appears only once a container runs.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from ds01_core.domain.container_facts import OWNER_LABEL, container_name, resolve_owner

BUILTIN_NETWORKS = frozenset({"bridge", "host", "none", "default"})
USABLE_BUILTIN_NETWORKS = frozenset({"bridge", "none", "default", ""})


class EngineUnavailable(Exception):
    """The engine socket could not be reached."""


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket (the engine's, or the gateway's)."""

    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


class Engine:
    """Small JSON calls to the engine for the gateway's own questions (not users' requests)."""

    def __init__(self, socket_path: str, timeout: float = 30.0):
        self.socket_path = socket_path
        self.timeout = timeout
        self._local = threading.local()  # one kept-open connection per gateway thread

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"User-Agent": "ds01-gateway"}  # the gateway's own questions, in logs too
        if payload is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = UnixHTTPConnection(self.socket_path, self.timeout)
            try:
                conn.request(method, path, body=payload, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._local.conn = None
                if attempt == 2 or isinstance(exc, (ConnectionRefusedError, FileNotFoundError)):
                    raise EngineUnavailable(
                        f"the Docker engine at {self.socket_path}: {exc}"
                    ) from None
        try:
            return answer.status, json.loads(data) if data else None
        except ValueError:
            return answer.status, {"message": data.decode("utf-8", "replace")}

    def inspect_container(self, ref: str) -> dict[str, Any] | None:
        status, body = self.call("GET", f"/containers/{quote(ref, safe='')}/json")
        return body if status == 200 and isinstance(body, dict) else None

    def inspect(self, kind: str, ref: str) -> dict[str, Any] | None:
        status, body = self.call("GET", f"/{kind}/{quote(ref, safe='')}")
        return body if status == 200 and isinstance(body, dict) else None


def _pid_uid(pid: Any) -> int | None:
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def _mounts(items: Sequence[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    return [m for m in items or [] if isinstance(m, Mapping)]


class Owners:
    """Owner lookups with a per-id cache of label-derived answers."""

    def __init__(self, engine: Engine, home_roots: Sequence[str]):
        self.engine = engine
        self.home_roots = tuple(home_roots)
        self._stable: dict[str, str] = {}
        self._lock = threading.Lock()

    def _remember(self, cid: str, owner: str, source: str) -> str:
        if source.startswith("label:"):
            with self._lock:
                if len(self._stable) > 100_000:
                    self._stable.clear()
                self._stable[cid] = owner
        return owner

    def cached(self, cid: str) -> str | None:
        """The label-given owner of a full container id seen before, or None."""
        return self._stable.get(cid) if len(cid) == 64 else None

    def of_inspect(self, inspect: Mapping[str, Any]) -> str:
        cid = str(inspect.get("Id", ""))
        if cid in self._stable:
            return self._stable[cid]
        config = inspect.get("Config") or {}
        owner = resolve_owner(
            str(inspect.get("Name", "")).lstrip("/"),
            config.get("Labels") or {},
            _mounts(inspect.get("Mounts")),
            _pid_uid((inspect.get("State") or {}).get("Pid")),
            home_roots=self.home_roots,
        )
        return self._remember(cid, owner.user, owner.source)

    def of_summary(self, summary: Mapping[str, Any]) -> str:
        """From a listing row; falls back to an inspect only when no rule gave an answer (the
        process uid is not in listings)."""
        cid = str(summary.get("Id", ""))
        if cid in self._stable:
            return self._stable[cid]
        owner = resolve_owner(
            container_name(summary),
            summary.get("Labels") or {},
            _mounts(summary.get("Mounts")),
            None,
            home_roots=self.home_roots,
        )
        if owner.user != "unknown" or summary.get("State") != "running":
            return self._remember(cid, owner.user, owner.source)
        inspect = self.engine.inspect_container(cid)
        return self.of_inspect(inspect) if inspect else "unknown"

    def of_container_id(self, cid: str, attributes: Mapping[str, Any] | None = None) -> str:
        if cid in self._stable:
            return self._stable[cid]
        if attributes and attributes.get(OWNER_LABEL):
            return self._remember(cid, str(attributes[OWNER_LABEL]), "label:ds01.user")
        inspect = self.engine.inspect_container(cid)
        return self.of_inspect(inspect) if inspect else "unknown"

    @staticmethod
    def of_labelled(obj: Mapping[str, Any] | None) -> str:
        """A volume's or network's owner: its ``ds01.user`` label."""
        labels = obj.get("Labels") if isinstance(obj, Mapping) else None
        if not isinstance(labels, Mapping):
            return "unknown"
        return str(labels.get(OWNER_LABEL) or "unknown")
