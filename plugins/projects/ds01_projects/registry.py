"""The tags of an image in its registry (Registry HTTP API v2), anonymously.

``GET /v2/<name>/tags/list``; a ``401`` with ``WWW-Authenticate: Bearer realm=…,service=…,
scope=…`` (Docker Hub, nvcr.io, ghcr.io) is answered by fetching an anonymous token from the
realm and asking again; ``Link: <…>; rel="next"`` pages are followed. HTTPS, or plain HTTP for
the registries the admin lists in ``insecure_registries`` (a mirror on loopback).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection
from typing import Any

#: Docker Hub's names for itself, and where its API really is
HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io")
HUB_API = "registry-1.docker.io"
MAX_PAGES = 50
_CHALLENGE_PART = re.compile(r'(\w+)="([^"]*)"')
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class RegistryError(Exception):
    """A registry that cannot be asked (unreachable, refusing, an answer that is not v2)."""


def split_image(image: str) -> tuple[str, str]:
    """``(registry host, repository)`` of an image name without its tag, as Docker reads it:
    the first part is a host when it has a dot or a port or is ``localhost``; otherwise the
    image is on Docker Hub (``library/`` for official images)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, repo = first, rest
    else:
        host, repo = "docker.io", image
    if host in HUB_NAMES:
        host = HUB_API
        if "/" not in repo:
            repo = f"library/{repo}"
    return host, repo


def registry_host(image: str) -> str:
    """The registry host an image lives on (Docker Hub as ``registry-1.docker.io``)."""
    return split_image(image)[0]


def list_tags(image: str, *, timeout: float, insecure: Collection[str] = ()) -> list[str]:
    """Every tag of ``image`` (a repository, no tag) in its registry."""
    host, repo = split_image(image)
    scheme = "http" if host in insecure or _hub_alias(host) in insecure else "https"
    url: str | None = f"{scheme}://{host}/v2/{repo}/tags/list?n=1000"
    tags: list[str] = []
    token: str | None = None
    for _ in range(MAX_PAGES):
        if url is None:
            break
        status, headers, body = _get(url, token, timeout)
        if status == 401 and token is None:
            token = _anonymous_token(headers.get("WWW-Authenticate") or "", timeout)
            status, headers, body = _get(url, token, timeout)
        if status != 200:
            raise RegistryError(f"{host} answered {status} for {repo}'s tags{_why(body)}")
        try:
            data = json.loads(body)
            page = data.get("tags") or []
        except (ValueError, AttributeError):
            raise RegistryError(f"{host} did not answer with a tag list for {repo}") from None
        tags += [t for t in page if isinstance(t, str)]
        url = _next_page(url, headers.get("Link"))
    return tags


def _hub_alias(host: str) -> str:
    return "docker.io" if host == HUB_API else host


def _get(url: str, token: str | None, timeout: float) -> tuple[int, Any, bytes]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read(4 << 20)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read(64 << 10)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RegistryError(f"cannot reach {urllib.parse.urlsplit(url).netloc}: {reason}") from None


def parse_challenge(header: str) -> dict[str, str]:
    """``Bearer realm="…",service="…",scope="…"`` → its parameters; {} for another scheme."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return {}
    return dict(_CHALLENGE_PART.findall(rest))


def _anonymous_token(header: str, timeout: float) -> str:
    challenge = parse_challenge(header)
    realm = challenge.get("realm")
    if not realm:
        kind = header.split(" ", 1)[0] or "no"
        raise RegistryError(
            f"the registry wants a login ({kind} challenge), not an anonymous token"
        )
    query = {k: v for k, v in challenge.items() if k in ("service", "scope")}
    url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
    status, _, body = _get(url, None, timeout)
    if status != 200:
        raise RegistryError(f"the token service {realm} answered {status}{_why(body)}")
    try:
        data = json.loads(body)
    except ValueError:
        raise RegistryError(f"the token service {realm} did not answer with JSON") from None
    token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        raise RegistryError(f"the token service {realm} gave no token")
    return token


def _next_page(url: str, link: str | None) -> str | None:
    match = _NEXT.search(link or "")
    return urllib.parse.urljoin(url, match.group(1)) if match else None


def _why(body: bytes) -> str:
    """The first error message of a v2 error body, when there is one."""
    try:
        errors = json.loads(body).get("errors") or []
        message = errors[0].get("message") or errors[0].get("code")
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""
    return f": {message}" if message else ""
