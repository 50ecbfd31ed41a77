"""The gateway's request counts: allowed, denied (by a bounded reason code) or an error.

Refusals are written for people (``container x belongs to another user; …``), and a metric's
label must come from a short fixed list, so :func:`denial_reason` maps a refusal's message to
one of :data:`DENIAL_REASONS` by the words the policy uses. A refusal of a create body that
breaks several rules is counted once, under the first reason in :data:`DENIAL_REASONS`' order.
Nothing about the caller is counted (no user names: the counts are world-readable).
"""

from __future__ import annotations

from ds01_core.framework.telemetry import TELEMETRY

#: every reason a denial is counted under, the order deciding for a message matching several
DENIAL_REASONS = (
    "no_account",  # the caller's uid has no account on the host
    "connection_cap",  # over gateway.max_connections_per_user
    "privileged",  # privileged container or exec
    "host_mount",  # a bind mount outside the user's home and workspaces, or a host path
    "host_access",  # capabilities, devices, host namespaces, security options, sysctls, ...
    "gpu_request",  # --gpus all, NVIDIA_VISIBLE_DEVICES=all, unsupported device requests
    "quota",  # over the user's GPU quota
    "image_limit",  # over max_images or max_image_storage, an image archive over max_image_upload
    "gpu_unavailable",  # no free GPU slot (also after waiting in the queue)
    "not_owner",  # another user's container, network, volume or image, or their image namespace
    "forbidden_endpoint",  # an endpoint for admins only, unknown to the gateway, BuildKit
    "old_client",  # an API version older than the gateway accepts
    "bad_request",  # a body the gateway cannot check (400)
    "other",
)
OUTCOMES = ("allowed", "denied", "error")

_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("no_account", ("has no account on this host",)),
    ("connection_cap", ("connections open to the gateway",)),
    ("privileged", ("privileged",)),
    (
        "host_mount",
        (
            "mounting ",
            "mounted read-only",
            "paths you may mount",
            "another user's home",
            "(binds, named volumes and tmpfs only)",
            "volume driver options",
        ),
    ),
    (
        "host_access",
        (
            "capabilities",
            "host devices",
            "device cgroup",
            "share the host's namespace",
            "UsernsMode",
            "cgroup",
            "OOM",
            "MaskedPaths",
            "ReadonlyPaths",
            "log driver",
            "volume driver",
            "network driver",
            "host port",
            "security option",
            "sysctls",
            "runtime ",
            "network options",
            "only local networks",
            "build parameters",
            "building with network",
        ),
    ),
    (
        "gpu_request",
        ("--gpus all", "NVIDIA_VISIBLE_DEVICES=all", "device request", "can reach every GPU"),
    ),
    ("quota", ("GPU quota",)),
    ("image_limit", ("(max_images)", "(max_image_storage)", "(gateway.max_image_upload)")),
    ("gpu_unavailable", ("no free ", "not enough free", "GPU queue", "GPU slot(s)", "GPU was")),
    (
        "not_owner",
        ("belongs to another user", "is not yours", "your own containers", "No such image"),
    ),
    (
        "forbidden_endpoint",
        (
            "for admins",
            "BuildKit",
            "not an endpoint the ds01 gateway allows",
            "not allowed through the gateway",
        ),
    ),
    ("old_client", ("update your Docker client",)),
    ("bad_request", ("form-encoded requests",)),
)

REQUESTS = TELEMETRY.counter(
    "ds01_gateway_requests_total",
    "Requests the Docker API gateway answered: allowed (forwarded), denied, error.",
    ("outcome",),
    seed=[(o,) for o in OUTCOMES],
)
DENIALS = TELEMETRY.counter(
    "ds01_gateway_denials_total",
    "Requests the Docker API gateway denied, by reason.",
    ("reason",),
    seed=[(r,) for r in DENIAL_REASONS],
)


def denial_reason(message: str, status: int = 403) -> str:
    """The reason code of a refusal with this message (and HTTP status)."""
    if status == 400:
        return "bad_request"
    for code, words in _WORDS:
        if any(word in message for word in words):
            return code
    return "other"


#: count one request answered as it asked (the hot path: one C call, no lock)
allowed = REQUESTS.incrementer("allowed")
#: count one request the gateway answered with an error of its own
error = REQUESTS.incrementer("error")
_denied = REQUESTS.incrementer("denied")


def denied(message: str, status: int = 403) -> None:
    """Count one denial, under the reason its message names."""
    _denied()
    DENIALS.inc(denial_reason(message, status))
