"""MLflow's operations over the REST API (ds01-web on real uvicorn, real tokens) as bob
(``ds01tb``) against alice's (``ds01ta``) experiment on the real MLflow server: the
``MLFLOW``-marked entries of tests/plugins/web/test_api_cross_user.py's ATTACKS, so a new MLflow
operation is attacked as soon as it is classified there. Bob can neither give anyone (himself
included) nor take from alice any permission on it, and his status shows nothing of hers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ds01_core.framework.runtime import load_runtime
from ds01_core.services.catalogue import operation_table
from ds01_core.transports.api_socket.server import ThreadedRuntime
from ds01_mlflow.provision import ensure_experiment, ensure_user, mlflow_config
from tests.helpers.config import write_config
from tests.plugins.mlflow.mlflow_env import MlflowServer
from tests.plugins.web.test_api_cross_user import ATTACKS, MLFLOW, call, fill
from tests.plugins.web.web_env import events, request, serving, token_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory, mlflow_server: MlflowServer, unix_users) -> Any:
    base = tmp_path_factory.mktemp("mlflowrest")
    base.chmod(0o755)
    config = write_config(
        base, {"plugins": {"mlflow": mlflow_server.section, "web": {"rate_limit": 100_000}}}
    )
    runtime = load_runtime(str(config), runtime_class=ThreadedRuntime)
    alice, bob = unix_users["ds01ta"], unix_users["ds01tb"]
    settings = mlflow_config(runtime)
    name = f"ds01ta/rest-{base.name}"
    with mlflow_server.admin() as admin:
        ensure_user(settings, admin, alice.name)
        bobs = ensure_user(settings, admin, bob.name)
        experiment_id = ensure_experiment(settings, admin, alice.name, name)
    tokens = {
        u.name: token_for(runtime, u.uid, "mlflow", ["read", "write"])["token"]
        for u in (alice, bob)
    }
    try:
        with serving(runtime) as url:
            yield {
                "url": url,
                "runtime": runtime,
                "tokens": tokens,
                "experiment": name,
                "experiment_id": experiment_id,
                "bob_password": bobs.password,
                "server": mlflow_server,
                "alice": alice,
            }
    finally:
        runtime.close()


def denied(world: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``access.denied`` events so far (none before the log's first line)."""
    try:
        return events(world["runtime"], "access.denied")
    except FileNotFoundError:
        return []


def cases() -> list[Any]:
    return [
        pytest.param(name, i, id=f"{name}-{i}")
        for name, attacks in sorted(ATTACKS.items())
        for i, (_, expect) in enumerate(attacks)
        if expect == MLFLOW
    ]


def test_every_mlflow_operation_is_attacked(world) -> None:
    served = {op.name for op in operation_table(world["runtime"]) if op.name.startswith("mlflow.")}
    assert served and served <= {name for name, _ in (c.values for c in cases())}


@pytest.mark.parametrize("name, index", cases())
def test_bob_never_reaches_alices_experiment(world, name: str, index: int) -> None:
    op = operation_table(world["runtime"]).get(name)
    raw, _ = ATTACKS[name][index]
    params = {k: fill(v, world) for k, v in raw.items()}
    before = len(denied(world))
    answer = call(world, op, params, world["tokens"]["ds01tb"])
    assert answer.status != 500, answer
    body = answer.body.decode()
    sent = json.dumps(params)
    for hers in (world["experiment"], json.dumps(world["experiment_id"])):  # name, "id"
        assert hers not in body or hers in sent, f"{name} showed bob {hers}: {answer}"
    with world["server"].admin() as admin:  # whatever bob asked, nothing changed
        assert admin.permission("ds01tb", world["experiment_id"]) is None
        assert admin.permission("ds01tc", world["experiment_id"]) is None
        assert admin.permission("ds01ta", world["experiment_id"]) == "MANAGE"
    with world["server"].as_user("ds01tb", world["bob_password"]) as bob:
        visible = bob.search_experiments()
    assert world["experiment_id"] not in [e.experiment_id for e in visible]
    if op.method == "GET":  # bob's own status: what MLflow lets bob see, nothing of alice's
        assert answer.status == 200, answer
        assert answer.json["user"] == "ds01tb"
        assert answer.json["experiments"] == len(visible)
        return
    assert answer.status in (403, 404), answer
    if answer.status == 403:
        refusals = denied(world)[before:]
        assert any(e["user"] == "ds01tb" for e in refusals), refusals


def test_alice_shares_over_rest_and_bob_then_reads(world) -> None:
    """The same operation works for its owner (so the refusals above are about bob)."""
    shared = request(
        world["url"],
        "POST",
        "/api/v1/mlflow/share",
        world["tokens"]["ds01ta"],
        {"experiment": world["experiment_id"], "user": "ds01tb", "permission": "READ"},
    )
    try:
        assert shared.status == 200, shared
        with world["server"].as_user("ds01tb", world["bob_password"]) as bob:
            assert world["experiment_id"] in [e.experiment_id for e in bob.search_experiments()]
    finally:
        taken = request(
            world["url"],
            "POST",
            "/api/v1/mlflow/unshare",
            world["tokens"]["ds01ta"],
            {"experiment": world["experiment_id"], "user": "ds01tb"},
        )
        assert taken.status == 200, taken
