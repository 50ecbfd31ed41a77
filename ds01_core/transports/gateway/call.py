"""One user's request as the policy sees it, and the checks every handler shares.

A :class:`Call` carries who asks (a :class:`~ds01_core.services.caller.Caller`), the route it
matched and the connection it came on; its methods answer the questions handlers ask of every
kind of object — is there no body, is the JSON body well-formed, is this container (network,
volume, exec instance) the caller's own — and forward the request once the handler is done.
A :class:`Refused` raised anywhere becomes a 403 and an ``access.denied`` event.
"""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING, Any

import attrs

from ds01_core.transports.gateway import schema
from ds01_core.transports.gateway.forwarding import FirstChunkCheck
from ds01_core.transports.gateway.http import Head, HttpError, Stream
from ds01_core.transports.gateway.ownership import USABLE_BUILTIN_NETWORKS, Engine, Owners
from ds01_core.transports.gateway.relay import BufferedHook, LineFilter
from ds01_core.transports.gateway.routes import Route

if TYPE_CHECKING:
    from ds01_core.services.caller import Caller
    from ds01_core.transports.gateway.server import Gateway


class Refused(HttpError):
    """A policy refusal: 403 for the client, an ``access.denied`` event for the admin;
    ``as_engine``: worded as the engine's own answer (a hidden object's 404), without ``ds01:``."""

    def __init__(self, message: str, status: int = 403, *, as_engine: bool = False):
        super().__init__(status, message)
        self.as_engine = as_engine


@attrs.define
class Call:
    """A non-admin's request, matched to its route, waiting for its handler's verdict."""

    gateway: Gateway
    caller: Caller
    home: str
    client: Stream
    head: Head
    route: Route
    framing: tuple[str, int]

    @property
    def user(self) -> str:
        return self.caller.name

    @property
    def engine(self) -> Engine:
        return self.gateway.engine

    @property
    def owners(self) -> Owners:
        return self.gateway.owners

    def forward(
        self,
        target: str | None = None,
        *,
        body: dict[str, Any] | None = None,
        hijack: bool = False,
        stream: bool = False,
        buffered: BufferedHook | None = None,
        passes: FirstChunkCheck | None = None,
        lines: LineFilter | None = None,
        upload: IO[bytes] | None = None,
    ) -> bool:
        """Send the request on — to ``target`` (default: the route's own, re-encoded), with
        the checked ``body`` (or the spooled ``upload``) in place of the client's — and relay
        the answer; whether the client connection can take another request."""
        return self.gateway.forwarder.forward(
            self.client,
            self.head,
            self.route.target() if target is None else target,
            self.framing,
            body=None if body is None else json.dumps(body).encode(),
            hijack=hijack,
            stream=stream,
            buffered=buffered,
            passes=passes,
            lines=lines,
            upload=upload,
        )

    # -- the request's body ---------------------------------------------------------------

    def no_body(self) -> None:
        """Endpoints that take no body get none: old API versions read a HostConfig from
        ``start``'s body, and a body nobody checks is a body nobody should send."""
        kind, size = self.framing
        if (kind == "length" and size) or (
            kind == "chunked" and self.client.read_body(self.framing, 0)
        ):
            raise Refused("this endpoint takes no request body", 400)

    def json_body(self, shape: Any) -> dict[str, Any]:
        """The body, checked field by field against ``shape`` (see :mod:`.schema`)."""
        limit = int(self.gateway.runtime.config.gateway.max_request_body)
        raw = self.client.read_body(self.framing, limit)
        try:
            body = schema.loads(raw)
            schema.check(body, shape)
        except schema.SchemaError as exc:
            raise Refused(str(exc), 400) from None
        if not isinstance(body, dict):
            raise Refused("the request body must be a JSON object", 400)
        return body

    # -- whose objects ----------------------------------------------------------------------

    def own_container(self, ref: str) -> str:
        """The full id of the caller's container ``ref`` (name, id or id prefix); 403 for
        another user's, 404 for none."""
        inspect = self.engine.inspect_container(ref)
        if inspect is None:
            raise HttpError(404, f"No such container: {ref}")
        if self.owners.of_inspect(inspect) != self.user:
            raise Refused(f"container {ref} belongs to another user; you may only use your own")
        return str(inspect["Id"])

    def owns_container(self, ref: str) -> bool:
        inspect = self.engine.inspect_container(ref)
        return inspect is not None and self.owners.of_inspect(inspect) == self.user

    def own_exec(self, exec_id: str) -> None:
        """Refuse an exec instance in another user's container (404 for none)."""
        status, info = self.engine.call("GET", f"/exec/{exec_id}/json")
        if status != 200 or not isinstance(info, dict):
            raise HttpError(404, f"No such exec instance: {exec_id}")
        self.own_container(str(info.get("ContainerID", "")))

    def network_usable(self, ref: str) -> bool:
        """A built-in network a user may join, or the caller's own."""
        if ref in USABLE_BUILTIN_NETWORKS:
            return True
        network = self.engine.inspect("networks", ref)
        return network is not None and self.owners.of_labelled(network) == self.user

    def volume_usable(self, name: str) -> bool:
        """The caller's own volume, or a name not taken yet."""
        volume = self.engine.inspect("volumes", name)
        return volume is None or self.owners.of_labelled(volume) == self.user
