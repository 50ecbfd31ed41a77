"""Hook specifications of the create paths: GPU allocation, a container's admission, a build's.

The first two are called for every container create that passes through ds01, in that order;
``check_build`` for every image build a user sends through the gateway;
``reserved_gpu_slots`` for every allocation (slots a scheduler keeps); ``doctor_checks`` for
``ds01 admin doctor`` (a plugin's checks of its part of the host). The rules common to every
hook are in :mod:`ds01_core.framework.hookspecs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ds01_core.framework.hookspecs.markers import hookspec

if TYPE_CHECKING:
    from ds01_core.domain.doctor_finding import Finding as DoctorFinding
    from ds01_core.domain.model import (
        Allocation,
        AllocationDecision,
        ContainerSpec,
        EffectiveLimits,
        GpuRequest,
        GpuSlot,
        Refusal,
    )
    from ds01_core.framework.runtime import Runtime


@hookspec(firstresult=True)
def allocate_gpu(
    runtime: Runtime,
    request: GpuRequest,
    free_slots: Sequence[GpuSlot],
    all_slots: Sequence[GpuSlot],
    held: Sequence[Allocation],
    limits: EffectiveLimits,
) -> AllocationDecision | None:
    """Choose GPU slots for a request, or refuse it.

    Called inside the state store's allocation transaction, so the free slots and the user's
    held allocations cannot change under the allocator while it decides. The core checks the
    answer before recording it: every chosen slot must be free and chosen once, and in
    ``enforcement.mode: hard`` the user's quota must hold.

    :param runtime: the process's runtime (``runtime.config.enforcement.mode`` is ``hard`` or
        ``soft``: in soft mode an allocator grants over-quota requests and says so in
        ``AllocationDecision.warning`` instead of refusing).
    :param request: what is asked for (count, MIG profile, full GPU, minimum memory) and by whom.
    :param free_slots: the slots nobody holds, from the current inventory.
    :param all_slots: every slot in the inventory, held or not (to pack onto busy GPUs or
        spread across idle ones).
    :param held: the requesting user's current allocations (held-after-stop ones included).
    :param limits: the requesting user's effective limits.
    :return: an :class:`~ds01_core.domain.model.AllocationDecision` with the chosen slots, or one whose
        ``refused`` says which limit stopped the request and the user's current usage; ``None``
        to leave the decision to the next allocator.

    firstresult: exactly one allocator decides. The built-in whole-GPU allocator is ``trylast``,
    so installing an allocator plugin (like ``ds01-mig``) replaces it.

    If an implementation raises: nothing is allocated (the transaction rolls back) and the
    request fails with the error; no later allocator is asked, since a different allocator's
    answer could break the policy the failing one enforces.
    """


@hookspec
def prepare_container(runtime: Runtime, spec: ContainerSpec) -> Refusal | None:
    """Adjust or refuse a container before it is created.

    Called for every container create that passes through ds01 (the ``ds01 container`` commands
    and the Docker API gateway), after GPU allocation.

    :param runtime: the process's runtime.
    :param spec: the create request; change ``spec.body`` in place (labels, ``HostConfig``
        cgroup parent and limits, environment).
    :return: a :class:`~ds01_core.domain.model.Refusal` to stop the create (its reason is shown to the
        user), or ``None`` to let it proceed.

    Not firstresult: every plugin sees the request; any refusal refuses it, and the first
    refusal's reason is the one reported.

    If an implementation raises: the create is refused (fail-closed: a create that a limit
    plugin could not check must not go through unchecked), with a reason naming the plugin and
    the error.
    """


@hookspec
def check_build(runtime: Runtime, user: str, images: Sequence[str]) -> Refusal | None:
    """Allow or refuse an image build a user sends through the Docker API gateway.

    Called by ``ds01-gateway`` for every build of a user who is not an admin, after the
    gateway's own checks (parameters, the user's image namespace and limits) and before the
    build reaches the engine.

    :param runtime: the gateway's runtime.
    :param user: who builds.
    :param images: every image the build's Dockerfile reads, as written after build arguments
        are filled in (``FROM``, ``COPY --from``, the bases' ``ONBUILD`` triggers), stage names
        and ``scratch`` left out; in Dockerfile order.
    :return: a :class:`~ds01_core.domain.model.Refusal` (its reason is shown to the user, e.g.
        "base X is not one the admins allow: …"), or ``None`` to let the build proceed.

    Not firstresult: every plugin is asked; any refusal refuses the build, and the first
    refusal's reason is the one reported.

    If an implementation raises: the build is refused (fail-closed: a rule that could not be
    checked must not be skipped), with a reason naming the plugin and the error.
    """


@hookspec
def reserved_gpu_slots(runtime: Runtime, slots: Sequence[GpuSlot]) -> Mapping[str, str] | None:
    """Keep some GPU slots out of ds01's own allocation, for a scheduler that hands them out.

    Called for every GPU allocation (inside its transaction, so it must answer from memory or
    configuration, quickly) except one that names its exact slots (``GpuRequest.slot_uuids``:
    a scheduler's job getting the slots it was given). The ds01-slurm plugin keeps the GPUs
    Slurm schedules, so that a ``docker run --gpus`` never takes a GPU Slurm is about to give
    a job.

    :param runtime: the allocating process's runtime.
    :param slots: every slot of the inventory (free or not).
    :return: ``{slot uuid: who keeps it}`` (e.g. ``"Slurm batch jobs (ds01 job submit)"``,
        shown to a user refused for lack of free slots), or ``None``/empty to keep none.

    Not firstresult: every plugin's reservations are merged (a slot kept by two plugins is
    kept).

    If an implementation raises: every slot is kept (fail-closed: a GPU that may belong to a
    scheduler must not be handed out twice), so allocations are refused with a reason naming
    the plugin, until it answers again.
    """


@hookspec
def doctor_checks(runtime: Runtime) -> Sequence[DoctorFinding]:
    """Add checks of a plugin's own to ``ds01 admin doctor``.

    Called once per ``ds01 admin doctor`` (in the process that serves it, as root), after the
    core's checks. The ds01-slurm plugin checks that Slurm's view of the GPUs matches ds01's.

    :param runtime: the serving process's runtime.
    :return: one :class:`~ds01_core.api.DoctorFinding` per check, passes included (``ok``
        True), each problem with the ``fix`` to run.

    Not firstresult: every plugin's findings are shown, after the core's.

    If an implementation raises: one failed finding names the plugin and the error (a check
    that could not run is not a pass); the other plugins' findings are shown.
    """
