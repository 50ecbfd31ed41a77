"""Operations: the service layer's table of what a caller can ask, and how to call it.

An :class:`Operation` names one service function, the HTTP method and ``/v1/…`` path the API
socket serves it under, its parameters with their types, and whether only admins may call it.
The CLI (in-process for root, over the socket for everyone else) and the API socket both go
through :func:`invoke`, so parameter checking, the admin rule and error shapes are one piece of
code. Plugins add operations through the ``service_operations`` hook; the process's whole table
is gathered in :mod:`ds01_core.services.catalogue`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ds01_core.domain.model import utc_text
from ds01_core.domain.units import TimeLimit
from ds01_core.domain.users import normalize_username
from ds01_core.services.caller import Caller
from ds01_core.services.errors import Forbidden, Invalid, NotFound

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

ParamType = Literal["str", "int", "float", "bool", "list"]
Stream = Literal["bytes", "jsonl"]
_PATH_PARAM = re.compile(r"\{([a-z_]+)\}")


@attrs.frozen
class Param:
    """One parameter: its name, its type, and its default when the caller leaves it out."""

    name: str
    type: ParamType = "str"
    required: bool = False
    default: Any = None


@attrs.frozen
class Operation:
    """One thing a caller can ask of ds01.

    ``fn(ctx, **params)`` returns JSON-able data, or, for a ``stream`` operation, an iterator
    of bytes (``"bytes"``) or of JSON-able records (``"jsonl"``).
    """

    name: str
    method: Literal["GET", "POST", "DELETE"]
    path: str
    fn: Callable[..., Any]
    params: tuple[Param, ...] = ()
    admin: bool = False
    stream: Stream | None = None
    summary: str = ""

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)

    def path_for(self, params: Mapping[str, Any]) -> str:
        """The concrete path, with path parameters filled in (URL-quoted)."""
        from urllib.parse import quote

        return _PATH_PARAM.sub(lambda m: quote(str(params[m.group(1)]), safe=""), self.path)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters when ``method path`` is this operation, else None. ``path`` is
        the raw (URL-quoted) path: each segment is decoded on its own, so an encoded ``/``
        never adds a segment."""
        from urllib.parse import unquote

        if method != self.method:
            return None
        want, got = self.path.split("/"), [unquote(s) for s in path.split("/")]
        if len(want) != len(got):
            return None
        found: dict[str, str] = {}
        for pattern, segment in zip(want, got, strict=True):
            name = _PATH_PARAM.fullmatch(pattern)
            if name is not None and segment:
                found[name.group(1)] = segment
            elif pattern != segment:
                return None
        return found


@attrs.frozen
class ServiceContext:
    """What every operation gets: the process's runtime and who is asking."""

    runtime: Runtime
    caller: Caller

    def require_admin(self) -> None:
        if not self.caller.admin:
            raise Forbidden(
                f"this is an admin operation; {self.caller.name} is not in the admin group "
                f"({self.runtime.config.gateway.admin_group})"
            )

    def target_user(self, user: str | None, what: str = "another user's data") -> str:
        """``user`` when the caller may act for them (themselves, or an admin), else refused."""
        if not user:
            return self.caller.name
        name = normalize_username(user)
        if name != self.caller.name and not self.caller.admin:
            raise Forbidden(f"only admins may see or change {what}; you are {self.caller.name}")
        return name


# -- parameters ---------------------------------------------------------------------------------


def _convert(param: Param, value: Any) -> Any:
    """A parameter's value in its declared type; strings (from a query string) are parsed."""
    kind = param.type
    if kind == "list":
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(i, str) for i in items):
            raise Invalid(f"parameter {param.name!r}: expected a list of strings")
        return list(items)
    if isinstance(value, list):
        if len(value) != 1:
            raise Invalid(f"parameter {param.name!r} given {len(value)} times; give it once")
        value = value[0]
    if kind == "str":
        if not isinstance(value, str):
            raise Invalid(f"parameter {param.name!r}: expected text, got {value!r}")
        return value
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if value in ("true", "1"):
            return True
        if value in ("false", "0"):
            return False
        raise Invalid(f"parameter {param.name!r}: expected true or false, got {value!r}")
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(value) if kind == "int" else float(value)
    except (TypeError, ValueError):
        raise Invalid(f"parameter {param.name!r}: expected a number, got {value!r}") from None
    if kind == "float" and number != number:  # NaN
        raise Invalid(f"parameter {param.name!r}: expected a number, got NaN")
    return number


def bind_params(op: Operation, given: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``given`` against the operation's parameters: unknown names, missing required
    ones and wrong types are refused, every problem in one message."""
    known = {p.name: p for p in op.params}
    problems = [f"unknown parameter {name!r}" for name in given if name not in known]
    bound: dict[str, Any] = {}
    for param in op.params:
        if param.name not in given or given[param.name] is None:
            if param.required:
                problems.append(f"missing parameter {param.name!r}")
            bound[param.name] = param.default
            continue
        try:
            bound[param.name] = _convert(param, given[param.name])
        except Invalid as exc:
            problems.append(exc.message)
    if problems:
        raise Invalid(f"{op.name}: " + "; ".join(problems))
    return bound


# -- results ------------------------------------------------------------------------------------


def json_default(value: Any) -> Any:
    """How ds01's own types appear in JSON: times in UTC with ``Z``, attrs classes as objects."""
    if isinstance(value, dt.datetime):
        return utc_text(value)
    if attrs.has(type(value)):
        return attrs.asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def never_as_word(data: Any) -> Any:
    """JSON has no infinity: a time limit of ``never`` is written as the word."""
    if isinstance(data, TimeLimit) and data.is_never:
        return "never"
    if isinstance(data, dict):
        return {k: never_as_word(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [never_as_word(v) for v in data]
    return data


def to_json(value: Any, **options: Any) -> str:
    """``value`` as JSON text, the one way ds01 writes it (socket answers and ``--json``)."""
    return json.dumps(never_as_word(value), default=json_default, **options)


def parameters_from_json(raw: bytes) -> dict[str, Any]:
    """A request body's operation parameters: a JSON object (empty body: none), or
    :class:`Invalid` saying what is wrong — the same words on the socket and over HTTP."""
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise Invalid(f"request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Invalid("request body must be a JSON object of parameters")
    return body


def jsonable(value: Any) -> Any:
    """``value`` as it would arrive over the API socket, so in-process callers see the same."""
    return json.loads(to_json(value))


# -- the table ----------------------------------------------------------------------------------


class OperationTable:
    """Every operation of one process: the core's and its active plugins'."""

    def __init__(self, operations: Iterable[Operation]):
        self.by_name: dict[str, Operation] = {}
        for op in operations:
            if op.name in self.by_name:
                raise ValueError(f"operation {op.name!r} is declared twice")
            self.by_name[op.name] = op

    def get(self, name: str) -> Operation:
        try:
            return self.by_name[name]
        except KeyError:
            raise NotFound(
                f"this ds01 service has no operation {name!r} (is the plugin that provides it "
                "enabled on the server, and are the client and server the same version?)"
            ) from None

    def route(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        for op in self.by_name.values():
            found = op.match(method, path)
            if found is not None:
                return op, found
        return None

    def __iter__(self) -> Iterator[Operation]:
        return iter(self.by_name.values())


def invoke(ctx: ServiceContext, op: Operation, params: Mapping[str, Any]) -> Any:
    """Run ``op`` for ``ctx.caller``: parameters checked, admin rule applied."""
    bound = bind_params(op, params)
    if op.admin:
        ctx.require_admin()
    return op.fn(ctx, **bound)


#: :func:`invoke` under the name ``ds01_core.api`` offers it to plugins (another transport)
invoke_operation = invoke


__all__: Sequence[str] = (
    "Operation",
    "OperationTable",
    "Param",
    "ServiceContext",
    "bind_params",
    "invoke",
    "invoke_operation",
    "json_default",
    "jsonable",
)
