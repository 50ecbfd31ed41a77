"""The per-endpoint policy: which handler judges each kind of route (see :mod:`..routes`).

A handler takes the :class:`~ds01_core.transports.gateway.call.Call`, raises
:class:`~ds01_core.transports.gateway.call.Refused` for what the caller may not do, and forwards
the rest; it returns whether the client's connection can take another request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ds01_core.transports.gateway.call import Call
from ds01_core.transports.gateway.handlers import (
    containers,
    exec_instances,
    images,
    objects,
    system,
)

Handler = Callable[[Call], bool]

#: route kind → its handler; a route kind without one is a bug (tested), never a pass
HANDLERS: Mapping[str, Handler] = {
    "open": system.open_endpoint,
    "admin": system.admin_only,
    "buildkit": system.buildkit,
    "events": system.events,
    "container.list": containers.container_list,
    "container.create": containers.container_create,
    "container.inspect": containers.container_inspect,
    "container.op": containers.container_op,
    "container.attach": containers.container_attach,
    "container.archive": containers.container_archive,
    "container.update": containers.container_update,
    "container.exec": containers.container_exec,
    "container.delete": containers.container_delete,
    "commit": containers.commit,
    "exec.start": exec_instances.exec_start,
    "exec.op": exec_instances.exec_op,
    "image.list": images.image_list,
    "image.inspect": images.image_inspect,
    "image.save": images.image_save,
    "image.load": images.image_load,
    "image.tag": images.image_tag,
    "image.push": images.image_push,
    "image.pull": images.image_pull,
    "image.delete": images.image_delete,
    "build": images.build,
    "volume.list": objects.volume_list,
    "volume.create": objects.volume_create,
    "volume.op": objects.volume_op,
    "network.list": objects.network_list,
    "network.create": objects.network_create,
    "network.op": objects.network_op,
    "network.connect": objects.network_connect,
}
