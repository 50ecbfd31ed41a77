"""The service layer's own rules: parameters, the admin rule, the caller, plugin operations."""

from __future__ import annotations

import pytest

from ds01_core.framework.hookspecs import hookimpl
from ds01_core.framework.runtime import load_runtime
from ds01_core.services.caller import Caller
from ds01_core.services.catalogue import call, operation_table
from ds01_core.services.errors import Forbidden, Invalid, NotFound
from ds01_core.services.operations import Operation, Param, ServiceContext, bind_params

ALICE = Caller("alice", 1001, admin=False)
ADMIN = Caller("root", 0, admin=True)


def echo(ctx, word, times=1, loud=False, tags=None):
    return {"by": ctx.caller.name, "said": word * times, "loud": loud, "tags": tags}


ECHO = Operation(
    "echo",
    "GET",
    "/v1/echo/{word}",
    echo,
    (
        Param("word", required=True),
        Param("times", "int", default=1),
        Param("loud", "bool"),
        Param("tags", "list"),
    ),
)


def test_parameters_are_typed_and_every_problem_is_named():
    bound = bind_params(
        ECHO, {"word": ["hi"], "times": ["3"], "loud": ["true"], "tags": ["a", "b"]}
    )
    assert bound == {"word": "hi", "times": 3, "loud": True, "tags": ["a", "b"]}
    with pytest.raises(Invalid) as info:
        bind_params(ECHO, {"times": "many", "loud": "perhaps", "colour": "red"})
    message = str(info.value)
    for part in (
        "unknown parameter 'colour'",
        "missing parameter 'word'",
        "'times': expected a number",
        "'loud': expected true or false",
    ):
        assert part in message
    with pytest.raises(Invalid, match="given 2 times"):
        bind_params(ECHO, {"word": ["a", "b"]})
    with pytest.raises(Invalid, match="NaN"):
        bind_params(Operation("f", "GET", "/v1/f", echo, (Param("x", "float"),)), {"x": "nan"})
    with pytest.raises(Invalid, match="expected a number"):
        bind_params(ECHO, {"word": "w", "times": True})


def test_paths_route_with_decoded_segments():
    assert ECHO.match("GET", "/v1/echo/caf%C3%A9") == {"word": "café"}
    assert ECHO.match("GET", "/v1/echo/a%2Fb") == {"word": "a/b"}  # never a second segment
    assert ECHO.match("POST", "/v1/echo/x") is None
    assert ECHO.match("GET", "/v1/echo") is None
    assert ECHO.match("GET", "/v1/echo/") is None
    assert ECHO.path_for({"word": "a b/c"}) == "/v1/echo/a%20b%2Fc"


@pytest.fixture
def runtime(tmp_config):
    class Plugin:
        @hookimpl
        def service_operations(self):
            return [
                ECHO,
                Operation("secret", "GET", "/v1/secret", lambda ctx: 42, admin=True),
            ]

    runtime = load_runtime(str(tmp_config()), extra_plugins=(("echo-plugin", Plugin()),))
    yield runtime
    runtime.close()


def test_hook_service_operations(runtime):
    """A plugin's operations are in the table, served with the core's rules."""
    table = operation_table(runtime)
    assert table.get("echo") is ECHO and "quota" in table.by_name
    assert table.route("GET", "/v1/echo/yo") == (ECHO, {"word": "yo"})
    said = call(ServiceContext(runtime, ALICE), "echo", word="hi", times=2)
    assert said == {"by": "alice", "said": "hihi", "loud": None, "tags": None}
    with pytest.raises(Forbidden, match="admin operation; alice is not in the admin group"):
        call(ServiceContext(runtime, ALICE), "secret")
    assert call(ServiceContext(runtime, ADMIN), "secret") == 42
    with pytest.raises(NotFound, match="no operation 'nothing'"):
        call(ServiceContext(runtime, ADMIN), "nothing")


def test_a_name_declared_twice_is_refused(runtime):
    from ds01_core.services.operations import OperationTable

    with pytest.raises(ValueError, match="'echo' is declared twice"):
        OperationTable([ECHO, ECHO])


def test_target_user_is_the_caller_unless_an_admin_asks(runtime):
    ctx = ServiceContext(runtime, ALICE)
    assert ctx.target_user(None) == "alice"
    assert ctx.target_user("Alice@EXAMPLE.ORG") == "alice"
    with pytest.raises(
        Forbidden, match="only admins may see or change bob's things; you are alice"
    ):
        ctx.target_user("bob", "bob's things")
    assert ServiceContext(runtime, ADMIN).target_user("bob") == "bob"


def test_a_caller_comes_from_the_account_database():
    assert Caller.from_uid(0, "ds01-admin") == Caller("root", 0, True)
    assert Caller.from_uid(54321, "ds01-admin") is None  # no account: nobody to act for
