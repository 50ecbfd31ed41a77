"""The CLI's side of the API socket: one HTTP/1.1 request per operation, over AF_UNIX."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

from ds01_core.services.errors import ServiceError, Unavailable, from_kind
from ds01_core.services.operations import Operation

DEFAULT_SOCKET = "/run/ds01/api.sock"


class ServiceDown(Unavailable):
    """The service cannot be reached at all (not running, socket missing)."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class ApiClient:
    """Calls operations on the ds01 service listening at ``path``."""

    def __init__(self, path: str = DEFAULT_SOCKET):
        self.path = path

    def _request(
        self, op: Operation, params: Mapping[str, Any], timeout: float | None
    ) -> tuple[_UnixConnection, http.client.HTTPResponse]:
        given = {k: v for k, v in params.items() if v is not None}
        target = op.path_for(given)
        rest = {k: v for k, v in given.items() if k not in op.path_params}
        body: bytes | None = None
        headers = {"Accept": "application/json"}
        if op.method == "GET":
            if rest:
                query = {
                    k: ([_query_value(i) for i in v] if isinstance(v, list) else _query_value(v))
                    for k, v in rest.items()
                }
                target += "?" + urlencode(query, doseq=True)
        else:
            body = json.dumps(rest).encode()
            headers["Content-Type"] = "application/json"
        conn = _UnixConnection(self.path, timeout)
        try:
            conn.request(op.method, target, body=body, headers=headers)
            response = conn.getresponse()
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            conn.close()
            raise ServiceDown(
                f"the ds01 service is not running (nothing answers at {self.path}: "
                f"{exc.strerror or exc}). Ask an admin to start it: "
                "systemctl start ds01-api.socket"
            ) from None
        except PermissionError:
            conn.close()
            raise ServiceDown(
                f"cannot open the ds01 service's socket {self.path} (permission denied); "
                "ask an admin to check it (mode 0666, as ds01-api.socket makes it)"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise ServiceDown(f"the ds01 service at {self.path} did not answer: {exc}") from None
        if response.status >= 400:
            raw = response.read()
            conn.close()
            raise _error_of(response.status, raw)
        return conn, response

    def call(self, op: Operation, params: Mapping[str, Any], timeout: float | None = 120.0) -> Any:
        conn, response = self._request(op, params, timeout)
        try:
            return json.loads(response.read())
        except ValueError as exc:
            raise ServiceError(f"the ds01 service sent an answer that is not JSON: {exc}") from None
        finally:
            conn.close()

    def stream(self, op: Operation, params: Mapping[str, Any]) -> Iterator[Any]:
        """The items of a streamed answer as they come: bytes, or decoded JSON records
        (heartbeats skipped)."""
        conn, response = self._request(op, params, None)
        try:
            if op.stream == "bytes":
                while chunk := response.read1(65536):
                    yield chunk
                return
            for line in response:
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()


def _error_of(status: int, raw: bytes) -> ServiceError:
    try:
        error = json.loads(raw)["error"]
        return from_kind(str(error["kind"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        text = raw.decode(errors="replace").strip()[:200]
        return ServiceError(f"the ds01 service answered {status}: {text or '(no message)'}")
