"""A small client of MLflow's REST API (tracking and the basic-auth app's users and permissions).

ds01 talks to the server over HTTP only: the ``mlflow`` package (hundreds of megabytes, its own
dependency pins) stays in the server's venv. Every call is as one account (HTTP basic auth):
the admin account for provisioning and run metrics, a user's own account for what they see.
The permission calls use MLflow 3's ``/api/3.0/mlflow/users/permissions/*`` and fall back to
MLflow 2's ``/api/2.0/mlflow/experiments/permissions/*`` where the server lacks them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import requests


class MlflowError(Exception):
    """The server answered with an error: ``code`` is MLflow's (``RESOURCE_DOES_NOT_EXIST``,
    ``PERMISSION_DENIED`` …), ``status`` the HTTP status."""

    def __init__(self, message: str, code: str = "", status: int = 0):
        super().__init__(message)
        self.code = code
        self.status = status


class MlflowUnavailable(MlflowError):
    """The server could not be reached (down, wrong URL, timed out)."""


@attrs.frozen
class Experiment:
    experiment_id: str
    name: str
    lifecycle_stage: str = "active"


@attrs.frozen
class Run:
    run_id: str
    experiment_id: str
    status: str  # RUNNING, FINISHED, FAILED, KILLED, SCHEDULED
    start_time: int  # milliseconds since the epoch
    tags: Mapping[str, str] = attrs.Factory(dict)


def _experiment(raw: Mapping[str, Any]) -> Experiment:
    return Experiment(str(raw["experiment_id"]), raw["name"], raw.get("lifecycle_stage", ""))


def _run(raw: Mapping[str, Any]) -> Run:
    info = raw.get("info") or {}
    tags = {t["key"]: t.get("value", "") for t in (raw.get("data") or {}).get("tags") or []}
    return Run(
        run_id=str(info.get("run_id") or info.get("run_uuid")),
        experiment_id=str(info.get("experiment_id")),
        status=str(info.get("status", "")),
        start_time=int(info.get("start_time") or 0),
        tags=tags,
    )


class MlflowClient:
    """Calls as ``username`` with ``password`` (None: no authentication, for ``/health``).

    :param url: the server's base URL (``http://172.17.0.1:5000``).
    :param timeout: seconds for each request.
    """

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 5.0,
    ):
        self.url = url.rstrip("/")
        self.username = username
        self._auth = (username, password) if username is not None and password is not None else None
        self.timeout = timeout
        self._http = requests.Session()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MlflowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport --------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        try:
            response = self._http.request(
                method,
                self.url + path,
                json=json,
                params=params,
                auth=self._auth,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            reason = type(exc).__name__.replace("Error", " error").lower()
            raise MlflowUnavailable(
                f"the MLflow server at {self.url} did not answer ({reason}); "
                "is ds01-mlflow.service running? (systemctl status ds01-mlflow)"
            ) from None
        if response.status_code >= 400:
            code, message = "", response.text.strip()[:300]
            try:
                body = response.json()
                code = str(body.get("error_code", ""))
                message = str(body.get("message", message))
            except ValueError:
                pass
            # the first line only: MLflow appends the SQL of a failed insert (a password hash)
            message = message.split("\n", 1)[0].split(" Error: ", 1)[0][:200]
            if response.status_code == 401:
                code = code or "UNAUTHENTICATED"
                message = f"the MLflow server refused the credentials of {self.username!r}"
            elif response.status_code == 403:
                code = code or "PERMISSION_DENIED"
            raise MlflowError(message or f"HTTP {response.status_code}", code, response.status_code)
        if not response.content:
            return {}
        try:
            result = response.json()
        except ValueError:
            return {}
        return result if isinstance(result, dict) else {"result": result}

    def accepts_credentials(self) -> bool:
        """One request as this account: False when the server refuses its credentials."""
        try:
            self._call("POST", "/api/2.0/mlflow/experiments/search", json={"max_results": 1})
        except MlflowError as exc:
            if exc.status == 401:
                return False
            raise
        return True

    def health(self) -> bool:
        """The server answers ``/health`` (no credentials needed)."""
        try:
            response = self._http.get(self.url + "/health", timeout=self.timeout)
        except requests.RequestException:
            return False
        return response.status_code == 200

    # -- the auth app's users ---------------------------------------------------------------

    def get_user(self, username: str) -> dict[str, Any] | None:
        try:
            found = self._call("GET", "/api/2.0/mlflow/users/get", params={"username": username})
        except MlflowError as exc:
            if exc.code == "RESOURCE_DOES_NOT_EXIST" or exc.status == 404:
                return None
            raise
        return found.get("user")

    def create_user(self, username: str, password: str) -> None:
        self._call(
            "POST",
            "/api/2.0/mlflow/users/create",
            json={"username": username, "password": password},
        )

    def update_password(self, username: str, password: str) -> None:
        self._call(
            "PATCH",
            "/api/2.0/mlflow/users/update-password",
            json={"username": username, "password": password},
        )

    def update_admin(self, username: str, is_admin: bool) -> None:
        self._call(
            "PATCH",
            "/api/2.0/mlflow/users/update-admin",
            json={"username": username, "is_admin": is_admin},
        )

    def delete_user(self, username: str) -> None:
        self._call("DELETE", "/api/2.0/mlflow/users/delete", json={"username": username})

    # -- experiment permissions ---------------------------------------------------------------

    def grant(self, username: str, experiment_id: str, permission: str) -> None:
        """Give ``username`` ``permission`` on the experiment (replacing what they had)."""
        body = {
            "username": username,
            "resource_type": "experiment",
            "resource_id": experiment_id,
            "permission": permission,
        }
        try:
            self._call("POST", "/api/3.0/mlflow/users/permissions/grant", json=body)
            return
        except MlflowError as exc:
            if exc.code == "RESOURCE_ALREADY_EXISTS":  # MLflow 3 grants once: replace it
                self.revoke(username, experiment_id)
                self._call("POST", "/api/3.0/mlflow/users/permissions/grant", json=body)
                return
            if exc.status != 404 or exc.code == "RESOURCE_DOES_NOT_EXIST":
                raise
        v2 = {"experiment_id": experiment_id, "username": username, "permission": permission}
        try:
            self._call("POST", "/api/2.0/mlflow/experiments/permissions/create", json=v2)
        except MlflowError as exc:
            if exc.code != "RESOURCE_ALREADY_EXISTS":
                raise
            self._call("PATCH", "/api/2.0/mlflow/experiments/permissions/update", json=v2)

    def revoke(self, username: str, experiment_id: str) -> None:
        body = {"username": username, "resource_type": "experiment", "resource_id": experiment_id}
        try:
            self._call("POST", "/api/3.0/mlflow/users/permissions/revoke", json=body)
            return
        except MlflowError as exc:
            if exc.status != 404 or exc.code == "RESOURCE_DOES_NOT_EXIST":
                raise
        self._call(
            "DELETE",
            "/api/2.0/mlflow/experiments/permissions/delete",
            json={"experiment_id": experiment_id, "username": username},
        )

    def permission(self, username: str, experiment_id: str) -> str | None:
        """``username``'s effective permission on the experiment (None: none at all)."""
        params = {"username": username, "resource_type": "experiment", "resource_id": experiment_id}
        try:
            found = self._call("GET", "/api/3.0/mlflow/users/permissions/get", params=params)
        except MlflowError as exc:
            if exc.code == "RESOURCE_DOES_NOT_EXIST":
                return None
            if exc.status != 404:
                raise
            try:
                found = self._call(
                    "GET",
                    "/api/2.0/mlflow/experiments/permissions/get",
                    params={"experiment_id": experiment_id, "username": username},
                )
            except MlflowError as inner:
                if inner.code == "RESOURCE_DOES_NOT_EXIST" or inner.status == 404:
                    return None
                raise
            return (found.get("experiment_permission") or {}).get("permission")
        value = found.get("permission")
        if isinstance(value, Mapping):
            value = value.get("permission")
        return str(value) if value and value != "NO_PERMISSIONS" else None

    # -- tracking ------------------------------------------------------------------------------

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return self._experiment("get-by-name", {"experiment_name": name})

    def get_experiment(self, experiment_id: str) -> Experiment | None:
        return self._experiment("get", {"experiment_id": experiment_id})

    def _experiment(self, call: str, params: Mapping[str, str]) -> Experiment | None:
        """One experiment by ``experiments/<call>`` (None: there is none)."""
        try:
            found = self._call("GET", f"/api/2.0/mlflow/experiments/{call}", params=params)
        except MlflowError as exc:
            if exc.code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        return _experiment(found.get("experiment") or {})

    def create_experiment(self, name: str) -> str:
        return str(
            self._call("POST", "/api/2.0/mlflow/experiments/create", json={"name": name})[
                "experiment_id"
            ]
        )

    def search_experiments(self, max_results: int = 1000) -> list[Experiment]:
        """Every active experiment this account may read (paged)."""
        found: list[Experiment] = []
        token: str | None = None
        while True:
            body: dict[str, Any] = {"max_results": max_results, "view_type": "ACTIVE_ONLY"}
            if token:
                body["page_token"] = token
            page = self._call("POST", "/api/2.0/mlflow/experiments/search", json=body)
            found += [_experiment(e) for e in page.get("experiments") or []]
            token = page.get("next_page_token")
            if not token:
                return found

    def search_runs(
        self, experiment_ids: Sequence[str], filter_string: str = "", max_results: int = 1000
    ) -> list[Run]:
        """The runs of the experiments matching ``filter_string`` (MLflow's search syntax)."""
        if not experiment_ids:
            return []
        found: list[Run] = []
        token: str | None = None
        while True:
            body: dict[str, Any] = {
                "experiment_ids": list(experiment_ids),
                "filter": filter_string,
                "max_results": max_results,
            }
            if token:
                body["page_token"] = token
            page = self._call("POST", "/api/2.0/mlflow/runs/search", json=body)
            found += [_run(r) for r in page.get("runs") or []]
            token = page.get("next_page_token")
            if not token:
                return found

    def get_run(self, run_id: str) -> Run:
        return _run(self._call("GET", "/api/2.0/mlflow/runs/get", params={"run_id": run_id})["run"])

    def log_batch(
        self,
        run_id: str,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        *,
        step: int = 0,
        timestamp_ms: int | None = None,
    ) -> None:
        """Metrics (at one time and step) and tags, in one request."""
        stamp = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        body = {
            "run_id": run_id,
            "metrics": [
                {"key": k, "value": float(v), "timestamp": stamp, "step": step}
                for k, v in (metrics or {}).items()
            ],
            "tags": [{"key": k, "value": str(v)} for k, v in (tags or {}).items()],
        }
        self._call("POST", "/api/2.0/mlflow/runs/log-batch", json=body)

    def metric_history(self, run_id: str, key: str) -> list[dict[str, Any]]:
        found = self._call(
            "GET",
            "/api/2.0/mlflow/metrics/get-history",
            params={"run_id": run_id, "metric_key": key},
        )
        return list(found.get("metrics") or [])
