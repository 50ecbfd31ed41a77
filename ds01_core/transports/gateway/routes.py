"""Which Docker Engine API endpoint a request is for, decided once from a cleaned path.

The table is the gateway's whole vocabulary: a request that matches no row is refused
(fail-closed), so a new engine endpoint is unreachable for users until someone decides what it
means here. Paths are percent-decoded and must already be clean (no ``..``, ``.``, empty
segments or control characters) — the engine's router would otherwise redirect or reinterpret
them — and the forwarded path is re-encoded from the decoded form that was judged.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_to_bytes

import attrs

from ds01_core.transports.gateway.http import HttpError

#: Older API versions let ``POST /containers/{id}/start`` carry a HostConfig (privileged mode,
#: binds...) that no create check ever saw; users may not speak them.
MIN_USER_API = (1, 24)
_VERSION = re.compile(r"^/v(\d{1,2})\.(\d{1,3})(/.*)$")
_C = r"(?P<ref>[^/]+)"
_UNCLEAN = re.compile(r"[\x00-\x1f\x7f\\]|/\.\.?(?:/|$)")

#: (methods, path pattern, kind). ``ref`` names the object a per-object route acts on.
ROUTES: tuple[tuple[frozenset[str], re.Pattern[str], str], ...] = tuple(
    (frozenset(methods.split()), re.compile(f"^{pattern}$"), kind)
    for methods, pattern, kind in (
        ("GET HEAD", r"/_ping", "open"),
        ("GET", r"/version", "open"),
        ("GET", r"/info", "open"),
        ("POST", r"/auth", "open"),
        ("GET", r"/containers/json", "container.list"),
        ("POST", r"/containers/create", "container.create"),
        ("POST", r"/containers/prune", "admin"),
        ("GET", rf"/containers/{_C}/json", "container.inspect"),
        (
            "GET",
            rf"/containers/{_C}/(?P<op>logs|stats|top|changes|export)",
            "container.op",
        ),
        (
            "POST",
            rf"/containers/{_C}/(?P<op>start|stop|restart|kill|pause|unpause|rename|wait|resize)",
            "container.op",
        ),
        ("POST", rf"/containers/{_C}/(?P<op>attach)", "container.attach"),
        ("GET", rf"/containers/{_C}/(?P<op>attach/ws)", "container.attach"),
        ("POST", rf"/containers/{_C}/(?P<op>update)", "container.update"),
        ("POST", rf"/containers/{_C}/(?P<op>exec)", "container.exec"),
        ("GET HEAD PUT", rf"/containers/{_C}/(?P<op>archive)", "container.archive"),
        ("DELETE", rf"/containers/{_C}", "container.delete"),
        ("POST", rf"/exec/{_C}/(?P<op>start)", "exec.start"),
        ("POST", rf"/exec/{_C}/(?P<op>resize)", "exec.op"),
        ("GET", rf"/exec/{_C}/(?P<op>json)", "exec.op"),
        ("POST", r"/commit", "commit"),
        ("GET", r"/events", "events"),
        ("GET", r"/images/json", "image.list"),
        ("GET", r"/images/search", "open"),
        ("GET", r"/images/get", "image.save"),
        ("POST", r"/images/load", "image.load"),
        ("POST", r"/images/create", "image.pull"),
        ("POST", r"/images/prune", "admin"),
        ("GET", r"/images/(?P<ref>.+)/(?P<op>json|history|get)", "image.inspect"),
        ("POST", r"/images/(?P<ref>.+)/(?P<op>tag)", "image.tag"),
        ("POST", r"/images/(?P<ref>.+)/(?P<op>push)", "image.push"),
        ("DELETE", r"/images/(?P<ref>.+)", "image.delete"),
        ("GET", r"/distribution/(?P<ref>.+)/json", "open"),
        ("POST", r"/build", "build"),
        ("POST", r"/build/prune", "admin"),
        ("POST", r"/build/cancel", "admin"),
        ("POST GET", r"/(session|grpc)", "buildkit"),
        ("GET", r"/volumes", "volume.list"),
        ("POST", r"/volumes/create", "volume.create"),
        ("POST", r"/volumes/prune", "admin"),
        ("GET DELETE PUT", rf"/volumes/{_C}", "volume.op"),
        ("GET", r"/networks", "network.list"),
        ("POST", r"/networks/create", "network.create"),
        ("POST", r"/networks/prune", "admin"),
        ("GET DELETE", rf"/networks/{_C}", "network.op"),
        ("POST", rf"/networks/{_C}/(?P<op>connect|disconnect)", "network.connect"),
        ("GET", r"/system/df", "admin"),
        (
            "GET POST DELETE",
            r"/(swarm|nodes|services|tasks|secrets|configs|plugins)(/.*)?",
            "admin",
        ),
    )
)


def _first_segment(pattern: re.Pattern[str]) -> str:
    return pattern.pattern.removeprefix("^/").split("/", 1)[0].split("(", 1)[0].rstrip("$")


#: the rows to try for a path's first segment (a row whose first segment is a pattern of
#: alternatives, like swarm|nodes|..., is listed under each of them)
_BY_FIRST: dict[str, list[tuple[frozenset[str], re.Pattern[str], str]]] = {}
for _row in ROUTES:
    _text = _row[1].pattern.removeprefix("^/").removesuffix("$")
    _head = _text.split("/", 1)[0]
    _names = re.findall(r"[\w.]+", _head.strip("()")) if "|" in _head else [_first_segment(_row[1])]
    for _name in _names:
        _BY_FIRST.setdefault(_name, []).append(_row)


@attrs.frozen
class Route:
    kind: str
    version: str  # "/v1.41" or "" (the engine's own version)
    path: str  # decoded, without the version prefix
    query: tuple[tuple[str, str], ...]
    ref: str | None = None
    op: str | None = None

    def param(self, name: str) -> str | None:
        """A query parameter's only value; two values of one parameter are refused where the
        gateway reads it, since Go takes the first and a checker might take the last."""
        values = [v for k, v in self.query if k == name]
        if len(values) > 1:
            raise HttpError(400, f"query parameter {name!r} given more than once")
        return values[0] if values else None

    def target(
        self, path: str | None = None, query: tuple[tuple[str, str], ...] | None = None
    ) -> str:
        """The request target to forward: re-encoded from what was checked."""
        encoded = quote(self.version + (path if path is not None else self.path), safe="/:@+,=~")
        pairs = self.query if query is None else query
        if not pairs:
            return encoded
        return (
            encoded + "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
        )

    def with_ref(self, ref: str) -> str:
        """This request's target with the object reference (``/containers/{ref}/...``) replaced,
        a name by the full id it was checked as, so the engine acts on exactly that object."""
        segments = self.path.split("/")
        assert self.ref is not None and segments[2] == self.ref
        segments[2] = ref
        return self.target("/".join(segments))


def _decode(text: str, what: str) -> str:
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(400, f"the {what} is not valid UTF-8") from None


def parse_query(raw: str) -> tuple[tuple[str, str], ...]:
    if not raw:
        return ()
    if ";" in raw:
        raise HttpError(400, "';' in the query string is not accepted")
    pairs = []
    for item in raw.split("&"):
        if not item:
            continue
        key, _, value = item.partition("=")
        pairs.append(
            (_decode(key.replace("+", " "), "query"), _decode(value.replace("+", " "), "query"))
        )
    for key, value in pairs:
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key + value):
            raise HttpError(400, "control characters in the query string")
    return tuple(pairs)


def classify(method: str, target: str) -> Route:
    """The route for ``method target``; raises 400 for an unclean path, 403 for one not in the
    table (the engine has no such endpoint, or the gateway does not understand it)."""
    raw_path, _, raw_query = target.partition("?")
    if "#" in target:
        raise HttpError(400, "a fragment in the request target is not accepted")
    path = _decode(raw_path, "path")
    if _UNCLEAN.search(path) or "//" in path:
        raise HttpError(400, f"unclean path {path[:200]!r}: no '..', '.', '//' or control bytes")
    version = ""
    match = _VERSION.match(path)
    if match:
        version = f"/v{match.group(1)}.{match.group(2)}"
        path = match.group(3)
    query = parse_query(raw_query)
    if path != "/" and path.endswith("/"):
        path = path.rstrip("/")
    for methods, pattern, kind in _BY_FIRST.get(path.split("/", 2)[1], ()) or ROUTES:
        found = pattern.match(path)
        if found and method in methods:
            groups = found.groupdict()
            return Route(kind, version, path, query, groups.get("ref"), groups.get("op"))
    raise HttpError(
        403,
        f"{method} {path} is not an endpoint the ds01 gateway allows (ask an admin if you need it)",
    )


def api_version(route: Route) -> tuple[int, int] | None:
    if not route.version:
        return None
    major, minor = route.version[2:].split(".")
    return int(major), int(minor)
