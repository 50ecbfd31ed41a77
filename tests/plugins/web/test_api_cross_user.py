"""Every operation of the REST API, as bob (``ds01tb``) against alice's (``ds01ta``) things,
over real HTTP with real tokens: generated from the operation table, so a new operation is
covered as soon as it exists — or this test fails until it is classified here.

An operation that names an object (a path parameter, or a ``user``/``container``/``job``/``name``
/``id`` parameter) is attacked with alice's: refused (403/404, or a 400/409 that says the thing
is not bob's) and never an answer with her data in it. An operation that names none is called
as bob and must show nothing of hers. Admin-only operations refuse a plain user's token with
403, and each refusal is an ``access.denied`` event. These are the gateway security suite's
cross-user cases (tests/integration/test_gateway_security.py, test_gateway.py: another's
container inspected, logs read, exec'd into, started, stopped, removed; another's image used,
another's home mounted, another's objects named) over REST. Jobs are attacked against a real
Slurm in test_api_jobs.py.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from ds01_core.framework.runtime import load_runtime
from ds01_core.services.catalogue import operation_table
from tests.helpers.config import write_config
from tests.plugins.web.api_world import api_world
from tests.plugins.web.web_env import events, request

pytestmark = pytest.mark.integration

#: the answer refuses (``R``), or is bob's own and shows nothing of alice's (``H``); ``SLURM``:
#: attacked against the real Slurm in test_api_jobs.py (only one test Slurm may run at once);
#: ``MLFLOW``: against the real MLflow server in tests/plugins/mlflow/test_rest_cross_user.py
R, H, SLURM, MLFLOW = "refused", "hidden", "slurm", "mlflow"
A = "{alice}"
BOX = "{box}"

#: how bob goes after alice through each operation that is not admin-only
ATTACKS: dict[str, list[tuple[dict[str, Any], str]]] = {
    "accounting.carbon_report": [({"user": A}, R)],
    "accounting.carbon_status": [({}, H)],
    "accounting.usage": [({"user": A}, R), ({"all": "true"}, R), ({"period": "all"}, H)],
    "config.limits": [({"user": A}, R), ({}, H)],
    "containers.list": [({"user": A}, R), ({"all": "true"}, H)],
    "containers.create": [
        ({"name": "x-{tag}", "image": "{image}", "cpu_only": True, "user": A}, R),
        ({"name": "x-{tag}", "image": "{alice_image}", "cpu_only": True}, R),
        ({"name": "x-{tag}", "image": "{image}", "cpu_only": True, "workspace": "{home}"}, R),
        ({"name": BOX, "image": "{image}", "cpu_only": True}, R),
    ],
    "containers.stats": [({"user": A}, R), ({"filter": ["name=" + BOX]}, H)],
    "containers.inspect": [({"name": BOX}, R), ({"name": "{box_id}"}, R), ({"user": A}, R)],
    "containers.logs": [({"name": BOX, "tail": "5"}, R), ({"name": "{box_id}"}, R)],
    "containers.start": [({"name": BOX}, R)],
    "containers.stop": [({"name": BOX, "grace": 1}, R), ({"name": BOX, "user": A}, R)],
    "containers.remove": [({"name": BOX, "force": True}, R)],
    "containers.exec": [({"name": BOX, "command": ["cat", "/proc/1/cmdline"]}, R)],
    "containers.keepalive": [({"name": BOX, "seconds": 60}, R)],
    "events.query": [({"user": A}, R), ({"container": BOX}, H), ({"type": "container"}, H)],
    "events.follow": [({"user": A}, R)],
    "gpu.available": [({}, H)],
    "gpu.health": [({}, H)],
    "gpu.queue": [({}, H)],
    "gpu.status": [({}, H)],
    "mlflow.status": [({}, MLFLOW)],
    "mlflow.share": [
        ({"experiment": "{experiment_id}", "user": "ds01tc", "permission": "MANAGE"}, MLFLOW),
        ({"experiment": "{experiment}", "user": "ds01tc"}, MLFLOW),
    ],
    "mlflow.unshare": [({"experiment": "{experiment_id}", "user": A}, MLFLOW)],
    "notify.prefs": [({"user": A}, R)],
    "notify.test": [({"user": A}, R)],
    "projects.images": [({}, H)],
    "projects.settings": [({}, H)],
    "quota": [({"user": A}, R), ({}, H)],
    "slurm.settings": [({}, H)],
    "slurm.validate": [
        ({"image": "{alice_image}"}, R),
        ({"image": "{image}", "workspace": "{home}"}, R),
    ],
    "slurm.submit": [
        ({"image": "{alice_image}", "command": ["true"]}, R),
        ({"image": "{image}", "command": ["true"], "workspace": "{home}"}, R),
    ],
    "slurm.jobs": [({"user": A}, R), ({"all": "true"}, R)],
    "slurm.job": [({}, SLURM)],
    "slurm.cancel": [({}, SLURM)],
    "slurm.logs": [({}, SLURM)],
    "slurm.job_start": [({}, SLURM)],
    "slurm.job_finish": [({}, SLURM)],
    "web.token_list": [({}, H)],
    "web.token_create": [({"name": "stolen", "expires": "1d"}, R)],
    "web.token_revoke": [({"id": "{alice_token_id}"}, R)],
    "whoami": [({}, H)],
    "workloads": [({"user": A}, H), ({}, H), ({"snapshot": "true"}, R)],
}

#: what a 400/409 refusal says when it refuses because the thing is not the caller's
NOT_YOURS = (
    "not found",
    "of yours",
    "not yours",
    "not owned by ds01tb",
    "not on this server",
    "exists; pick another name",
)


@pytest.fixture(scope="module")
def world(tmp_path_factory, unix_users, docker_engine, test_image):
    with api_world(
        tmp_path_factory.mktemp("apicross"), unix_users, docker_engine, test_image
    ) as world:
        yield world


def fill(value: Any, world: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [fill(v, world) for v in value]
    if not isinstance(value, str):
        return value
    return value.format(
        alice="ds01ta",
        home=world["alice"].home,
        **{k: v for k, v in world.items() if isinstance(v, str | int) and k != "alice"},
    )


def call(world: dict[str, Any], op: Any, params: dict[str, Any], token: str) -> Any:
    """``op`` with ``params`` over HTTP: path parameters in the path, the rest in the query
    (GET) or a JSON body."""
    in_path = {p: params.get(p, "x") for p in op.path_params}
    rest = {k: v for k, v in params.items() if k not in in_path}
    path = "/api" + op.path_for(in_path)
    if op.method == "GET":
        query = urlencode(rest, doseq=True)
        return request(world["url"], "GET", path + (f"?{query}" if query else ""), token)
    return request(world["url"], op.method, path, token, rest)


def alices_data_in(world: dict[str, Any], answer: Any, sent: dict[str, Any]) -> list[str]:
    """What of alice's the answer shows that bob did not send himself."""
    text = answer.body.decode("utf-8", "replace")
    sent_text = json.dumps(sent)
    found = [
        what
        for what, value in (
            ("her container's output", world["secret"]),
            ("her container's id", world["box_id"][:12]),
            ("her container's name", world["box"]),
            ("her image", world["alice_image"]),
            ("her token's id", world["alice_token_id"]),
        )
        if value in text and value not in sent_text
    ]
    if answer.status == 200 and answer.body.startswith(b"{"):
        data = answer.json
        for event in data.get("events", []) if isinstance(data, dict) else []:
            if event.get("user") not in ("ds01tb", None):
                found.append(f"an event of {event['user']}")
    return found


def cases() -> list[Any]:
    """Every attack but the job operations' (``SLURM``) and MLflow's (``MLFLOW``): their own
    modules make those against a real Slurm and a real MLflow, from the same ATTACKS entries."""
    return [
        pytest.param(name, i, id=f"{name}-{i}")
        for name, attacks in sorted(ATTACKS.items())
        for i, (_, expect) in enumerate(attacks)
        if expect not in (SLURM, MLFLOW)
    ]


def test_every_operation_is_classified(world):
    table = operation_table(world["runtime"])
    missing = sorted(op.name for op in table if not op.admin and op.name not in ATTACKS)
    assert not missing, (
        f"operations {missing} are not classified for the cross-user sweep: add each to ATTACKS "
        "in tests/plugins/web/test_api_cross_user.py with how bob goes after alice's object "
        "through it (refused) or that it shows nothing of hers (hidden)"
    )
    stale = sorted(set(ATTACKS) - {op.name for op in table if not op.admin})
    assert not stale, f"ATTACKS names operations that are gone or admin-only now: {stale}"


@pytest.mark.parametrize("name, index", cases())
def test_bob_never_reaches_alices_things(world, name, index):
    table = operation_table(world["runtime"])
    if name not in table.by_name:
        pytest.skip(f"{name} is not served here (its plugin is not installed)")
    op = table.get(name)
    raw, expect = ATTACKS[name][index]
    params = {k: fill(v, world) for k, v in raw.items()}
    if op.path_params and not all(p in params for p in op.path_params):
        params = {**{p: world["box"] for p in op.path_params}, **params}
    before = len(events(world["runtime"], "access.denied"))
    answer = call(world, op, params, world["tokens"]["ds01tb"])
    assert answer.status != 500, answer
    leaked = alices_data_in(world, answer, params)
    assert not leaked, f"{name} {params} showed bob {leaked}: {answer}"
    if expect == H:
        assert answer.status == 200, answer
        return
    assert answer.status in (400, 403, 404, 409), answer
    error = answer.json["error"]
    if answer.status in (400, 409):
        assert any(words in error["message"] for words in NOT_YOURS), error
    if answer.status == 403:
        denied = events(world["runtime"], "access.denied")[before:]
        assert any(
            e["user"] == "ds01tb" and e["details"]["endpoint"].startswith(f"{op.method} /api")
            for e in denied
        ), denied


def _value(param: Any) -> Any:
    return {"str": "ds01ta", "int": 1, "float": 1.0, "bool": False, "list": ["ds01ta"]}[param.type]


def operation_names(admin_only: bool = False) -> list[str]:
    """The operations this installation serves (read at collection, for parametrize)."""
    with tempfile.TemporaryDirectory() as directory:
        runtime = load_runtime(str(write_config(Path(directory))))
        try:
            return sorted(op.name for op in operation_table(runtime) if op.admin or not admin_only)
        finally:
            runtime.close()


def admin_operations() -> list[str]:
    return operation_names(admin_only=True)


@pytest.mark.parametrize("name", admin_operations())
def test_admin_operations_refuse_a_plain_users_token(world, name):
    op = operation_table(world["runtime"]).get(name)
    params = {p.name: _value(p) for p in op.params if p.required or p.name in op.path_params}
    before = len(events(world["runtime"], "access.denied"))
    answer = call(world, op, params, world["tokens"]["ds01tb"])
    assert answer.status == 403, answer
    assert answer.json["error"]["code"] == "DS01_FORBIDDEN"
    assert "admin" in answer.json["error"]["message"]
    denied = events(world["runtime"], "access.denied")[before:]
    assert [e["user"] for e in denied] == ["ds01tb"], denied


def test_alices_things_are_untouched(world):
    """After every attack: her container still runs with its output, her token still works."""
    url, alice = world["url"], world["tokens"]["ds01ta"]
    mine = request(url, "GET", f"/api/v1/containers/{world['box']}", alice)
    assert mine.status == 200 and mine.json["status"] == "running", mine
    logs = request(url, "GET", f"/api/v1/containers/{world['box']}/logs?tail=5", alice)
    assert world["secret"].encode() in logs.body
    assert request(url, "GET", "/api/v1/whoami", alice).json["name"] == "ds01ta"
    tokens = request(url, "GET", "/api/v1/tokens", alice).json
    assert world["alice_token_id"] in {t["id"] for t in tokens}
    assert all(t["state"] == "active" for t in tokens if t["id"] == world["alice_token_id"])
