"""The REST API fuzzed with schemathesis from the live app's own ``/api/v1/openapi.json``, as a
real plain user with a read+write token: every operation, a few generated requests each; none
may answer 500, and every answer must be one the schema declares (status, content type, body).

Skipped, and why:

- ``events.follow``: a stream that never ends while its caller listens (heartbeats every 5 s);
  a generated request would only time out. Its refusals are tested in test_api_cross_user.py.
- ``admin.gpu.release`` and ``admin.gpu.resume``: they hand the machine's GPUs to the driver and
  back. A plain user is refused them (test_api_cross_user.py proves it); were that ever broken,
  a fuzzer must not be what takes the GPUs away from everyone.
"""

from __future__ import annotations

import pytest

from ds01_core.services.catalogue import operation_table
from tests.plugins.web.api_world import api_world
from tests.plugins.web.test_api_cross_user import operation_names

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis import checks  # noqa: E402

pytestmark = pytest.mark.integration

#: never fuzzed (left out of the parametrization, each for its reason; each is tested elsewhere:
#: events.follow in test_tokens_http.py, the GPU release in tests/core and tests/integration)
SKIPPED = {
    "events.follow": "an endless stream: a generated request would only time out",
    "admin.gpu.release": "hands every GPU to the driver: never fuzzed",
    "admin.gpu.resume": "takes the GPUs back after a release: never fuzzed",
}
#: generated requests per operation (the whole file stays well under two minutes)
EXAMPLES = 8


def no_500(ctx, response, case):
    """No internal error: a 5xx other than 503 ``DS01_UNAVAILABLE`` (a service this world does
    not run, e.g. Slurm: said in one line) fails."""
    status = response.status_code
    if status >= 500 and not (status == 503 and b"DS01_UNAVAILABLE" in response.content):
        raise AssertionError(
            f"{case.method} {case.formatted_path} answered {status}: {response.text}"
        )


CHECKS = [
    no_500,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def world(tmp_path_factory, unix_users, docker_engine, test_image):
    with api_world(
        tmp_path_factory.mktemp("apifuzz"), unix_users, docker_engine, test_image
    ) as world:
        world["schema"] = schemathesis.openapi.from_url(f"{world['url']}/api/v1/openapi.json")
        yield world


def test_the_operations_never_fuzzed_still_exist(world):
    """The exclusions name operations that are served (a renamed one would be fuzzed again)."""
    assert set(SKIPPED) <= set(operation_table(world["runtime"]).by_name), SKIPPED


@pytest.mark.parametrize("name", [n for n in operation_names() if n not in SKIPPED])
def test_no_operation_answers_500_or_off_its_schema(world, name):
    table = operation_table(world["runtime"])
    if name not in table.by_name:
        pytest.skip(f"{name} is not served here (its plugin is not installed)")
    op = table.get(name)
    operation = world["schema"]["/api" + op.path][op.method]
    headers = {"Authorization": f"Bearer {world['tokens']['ds01ta']}"}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def fuzz(case):
        case.call_and_validate(base_url=world["url"], headers=headers, checks=CHECKS, timeout=30)

    fuzz()
