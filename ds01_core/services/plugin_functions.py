"""Functions the core offers plugins over its internals (re-exported by :mod:`ds01_core.api`).

Each imports what it needs on first use, so that a plugin importing the API loads nothing it
does not call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ds01_core.domain.model import Allocation, EffectiveLimits, QuotaLine, Workload
    from ds01_core.framework.runtime import Runtime


def current_workloads(runtime: Runtime, errors: list[str] | None = None) -> list[Workload]:
    """Every workload the active detectors see now, merged the way the daemon's cycle merges
    them. A detector that raises is left out and named in ``errors`` (when given): a plugin
    that checks or shows workloads still works with the others' answers."""
    from ds01_core.cycle.pipeline import detect  # lazy: the cycle (docker SDK, ~230 ms)

    return detect(runtime, errors)


def find_user_container(runtime: Runtime, user: str, name_or_id: str) -> Workload:
    """One of ``user``'s containers, by name or id prefix (at least 6 characters).

    Another user's container is "not found" too, so that an operation never discloses names of
    others' containers. Raises :class:`NotFound` (none, or several match),
    :class:`Unavailable` (Docker cannot be reached) or :class:`Conflict` (Docker refused).
    """
    from ds01_core.domain.docker_engine import DockerError  # lazy: the docker SDK (~130 ms)
    from ds01_core.services.errors import Conflict, NotFound, Unavailable  # lazy: on use only
    from ds01_core.services.user_containers import ContainerError, ContainerService  # lazy: ~250 ms

    try:
        return ContainerService(runtime, user).find(name_or_id)
    except ContainerError as exc:
        raise NotFound(str(exc)) from None
    except DockerError as exc:
        if exc.status is None:
            raise Unavailable(f"cannot reach Docker: {exc}") from None
        raise Conflict(f"Docker: {exc}") from None


def live_allocations(runtime: Runtime) -> list[Allocation]:
    """Every GPU allocation not released (held-after-stop ones included), as the state store
    has them now: one read, for plugins that publish or check who holds which slot."""
    from ds01_core.domain.state.allocations import Allocations  # lazy: state tables on use

    return Allocations(runtime).live()


def allocation_history(
    runtime: Runtime, ids: Iterable[int] = (), *, after: int | None = None
) -> list[Allocation]:
    """The state store's allocations with one of ``ids`` or (when given) an id above ``after``,
    released ones included (``released_at`` set), oldest first: for a plugin that follows every
    allocation from allocation to release (accounting) without missing one that came and went
    between two cycles. Ids only grow, so ``after`` = the highest id seen finds every new one."""
    # lazy: the state tables load only when a plugin asks
    from ds01_core.domain.state.allocation_history import allocation_history as history

    return history(runtime, ids, after)


def gpu_queue_users(runtime: Runtime) -> list[str]:
    """The user of each live ticket in the GPU wait queue, in queue order (a user waiting with
    two requests appears twice); tickets whose process is gone are left out."""
    from ds01_core.domain.state.gpu_queue import waiting  # lazy: state tables on use

    return [ticket.user for ticket in waiting(runtime.state.db)]


def quota_lines(runtime: Runtime, user: str, limits: EffectiveLimits) -> list[QuotaLine]:
    """Every plugin's ``quota_usage`` lines for ``user`` (what ``ds01 quota`` shows: memory and
    processes of the user's cgroup, disk use, …); a plugin that fails is a line naming it, with
    ``used`` None. For plugins that publish usage (the exporter)."""
    return list(runtime.hooks.quota_usage(runtime, user, limits))


def create_container(
    runtime: Runtime,
    user: str,
    *,
    name: str,
    image: str,
    command: Sequence[str] = (),
    slot_uuids: Sequence[str] = (),
    gpus: int | None = None,
    workspace: str | None = None,
    labels: Mapping[str, str] | None = None,
    env: Sequence[str] = (),
    as_user: bool = False,
    source: str = "ds01",
) -> dict[str, Any]:
    """Create (not start) a container for ``user`` through ds01's admission, as
    ``ds01 container create`` does: the image must be one ``user`` may use, the workspace
    theirs, the GPUs allocated under their quota, every plugin's ``prepare_container`` asked.

    :param slot_uuids: exactly these GPU slots (a scheduler's choice the calling service has
        verified, e.g. a Slurm job's GPUs); empty with ``gpus`` None: no GPU.
    :param gpus: a number of GPUs for ds01's allocator to choose (when ``slot_uuids`` is empty).
    :param labels: labels of the caller's own (``ds01.owner`` and the GPU labels are ds01's).
    :param env: ``KEY=VALUE`` entries for the container.
    :param as_user: run as ``user``'s uid and primary gid rather than the image's user (files
        written to the workspace are then the user's).
    :return: ``id``, ``name``, ``slots``, ``uuids``, ``warning``.
    :raises ServiceError: :class:`~ds01_core.services.errors.Invalid` for a refusal (quota,
        image, name, workspace), :class:`Unavailable`/:class:`Conflict` when Docker fails.
    """
    from ds01_core.services.containers import create_for  # lazy: the docker SDK (~250 ms)

    return create_for(
        runtime,
        user,
        name=name,
        image=image,
        command=tuple(command),
        slot_uuids=tuple(slot_uuids),
        gpus=gpus,
        cpu_only=not slot_uuids and not gpus,
        workspace=workspace,
        labels=dict(labels or {}),
        env=tuple(env),
        as_user=as_user,
        source=source,
    )


def release_gpus(runtime: Runtime, container_id: str, reason: str) -> list[Allocation]:
    """Release at once every live GPU allocation of a container a service has stopped or
    removed (a cancelled Slurm job's), instead of at the next cycle's reconcile; ``reason`` is
    the release's (shown in ``ds01 events``). Idempotent: nothing live, nothing released."""
    from ds01_core.domain.state.allocations import Allocations  # lazy: state tables on use

    return Allocations(runtime).release_container(container_id, reason)
