"""One JSON request to a carbon-intensity provider, with a timeout, every failure one error.

The providers are asked from the daemon's cycle and from ``ds01-api``: a request must never
hang (``timeout`` bounds connecting and each read) and every way it can go wrong (refused,
timed out, an HTTP error status, a body that is not JSON) becomes :class:`ProviderError` with
a line an admin can act on, never the body of an error page.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
#: a provider's answer is small; anything bigger is not what was asked for
_MAX_BYTES = 4 * 1024 * 1024


class ProviderError(Exception):
    """A provider could not be asked or did not answer as documented (the message says how)."""


def basic_auth(username: str, password: str) -> str:
    """The ``Authorization`` header value for HTTP basic auth."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def _opener(url: str) -> urllib.request.OpenerDirector:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host in _LOOPBACK:  # never through a proxy from the environment
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def get_json(
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float,
    what: str,
) -> Any:
    """``GET url?params`` and its JSON body; :class:`ProviderError` naming ``what`` otherwise."""
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(
        url,
        headers={"Accept": "application/json", "User-Agent": "ds01-accounting", **(headers or {})},
    )
    try:
        with _opener(url).open(request, timeout=timeout) as response:
            body = response.read(_MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        hint = {
            401: " (check the key or password file)",
            403: " (the key may not cover this endpoint)",
            429: " (rate limited)",
        }.get(exc.code, "")
        raise ProviderError(f"{what}: HTTP {exc.code} {exc.reason}{hint}") from None
    except TimeoutError:
        raise ProviderError(f"{what}: no answer within {timeout:g}s") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise ProviderError(f"{what}: no answer within {timeout:g}s") from None
        raise ProviderError(f"{what}: cannot connect: {reason}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise ProviderError(f"{what}: {type(exc).__name__}: {exc}") from None
    if len(body) > _MAX_BYTES:
        raise ProviderError(f"{what}: the answer is larger than {_MAX_BYTES} bytes")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProviderError(f"{what}: the answer is not JSON ({exc})") from None
