"""The policy for exec instances: started, resized and inspected only in one's own containers.

(Creating one is a container route, ``POST /containers/{id}/exec``: see :mod:`.containers`.)
"""

from __future__ import annotations

from ds01_core.transports.gateway import schema
from ds01_core.transports.gateway.call import Call


def exec_start(call: Call) -> bool:
    body = call.json_body(schema.EXEC_START)
    call.own_exec(str(call.route.ref))
    return call.forward(body=body, hijack=not body.get("Detach"))


def exec_op(call: Call) -> bool:
    call.no_body()
    call.own_exec(str(call.route.ref))
    return call.forward()
