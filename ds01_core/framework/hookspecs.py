"""Hook specifications: every point where a plugin can take part in ds01.

A plugin is any object or module with functions named like the hooks below and decorated with
:data:`hookimpl`. Built-in plugins and third-party plugins (entry point group ``ds01``) are
equal. Plugins may accept any subset of a hook's arguments, by name.

The core never calls ``pm.hook.<name>`` directly outside :mod:`ds01_core.framework.hooks`; it goes
through the typed methods of :class:`ds01_core.framework.hooks.Hooks` (re-exported by
:mod:`ds01_core.framework.manager`), so each call site is checked and searchable.

Failures: a hook that is not firstresult is called one implementation at a time, so a plugin
that raises costs only its own answer; the other plugins still run and their results are kept.
Each hook below says what the failure means ("If an implementation raises: …"); where it
happens in the daemon's cycle it is logged, listed in the cycle's errors and written to the
audit log as a ``plugin.failed`` event (details: ``plugin``, ``hook``, ``error``). Hook
wrappers (``wrapper=True``/``hookwrapper=True``) are only allowed on firstresult hooks: a
plugin with a wrapper on another hook is refused at start-up (``ds01 plugins`` shows it as
failed).

Ordering: within a hook, implementations marked ``tryfirst`` run first and ``trylast`` last;
between those, plugins run in the order the admin lists them in ``plugins.order`` and then in
load order (built-ins before entry points).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from ds01_core.cycle.steps import CycleStep
    from ds01_core.domain.model import (
        Action,
        Allocation,
        AllocationDecision,
        ContainerSpec,
        DeliveryResult,
        EffectiveLimits,
        Event,
        GpuRequest,
        GpuSlot,
        Notice,
        QuotaLine,
        Refusal,
        Workload,
    )
    from ds01_core.domain.policy import Policy
    from ds01_core.framework.runtime import Runtime
    from ds01_core.services.operations import Operation

PROJECT = "ds01"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- set-up -------------------------------------------------------------------------------


@hookspec
def plugin_config_sections() -> Mapping[str, type]:
    """Declare the configuration section(s) this plugin reads.

    Called once while the configuration is loaded, before it is validated.

    :return: a mapping from section name to an attrs class. The YAML under
        ``plugins.<name>`` is structured into that class with the same converter (and the same
        strict rules) as the core configuration; its errors are reported with their full path
        (``plugins.<name>.<field>: …``). A section missing from the file is built from the
        class's defaults, so every field needs one. Two plugins declaring the same section name
        is a start-up error.

    Not firstresult: every plugin's mapping is merged.

    If an implementation raises: the plugin is disabled (``ds01 plugins`` shows it as failed,
    with the error) and its ``plugins.<name>`` section is ignored; the other plugins' sections
    are read. A plugin listed in ``plugins.required`` stops start-up instead.
    """


@hookspec
def configure(runtime: Runtime) -> None:
    """Take the loaded configuration and get ready to work.

    Called once per process after the configuration has been validated and the plugin manager
    built, and again after every successful configuration reload in the daemon.

    :param runtime: the process's :class:`~ds01_core.framework.runtime.Runtime`: ``runtime.config`` is the
        validated :class:`~ds01_core.domain.config.Config`, ``runtime.plugin_config(name)`` a plugin's
        own section.

    Not firstresult: every plugin is configured.

    If an implementation raises: the plugin is disabled (unregistered, so no later hook runs it
    half-configured; ``ds01 plugins`` shows it as failed, with the error) and the others are
    configured as usual. A plugin listed in ``plugins.required`` stops start-up instead (the
    daemon keeps its last good configuration on a reload).
    """


@hookspec
def add_cli_commands(cli: click.Group) -> None:
    """Add commands or command groups to the ``ds01`` command line.

    Called once when the CLI starts, after the built-in commands are registered.

    :param cli: the root ``ds01`` click group; call ``cli.add_command(...)``. Adding a command
        whose name is already taken is an error reported with the plugin's name.

    Not firstresult: every plugin adds its commands.

    If an implementation raises: ``ds01`` prints a one-line warning naming the plugin, and the
    commands of every other plugin (and whatever this one added before it raised) are there.
    """


@hookspec
def service_operations() -> Sequence[Operation]:
    """Declare service operations: what the plugin lets a caller do, over every transport.

    Called once per process when the operation table is first needed (the API socket serves
    each operation under its ``/v1/…`` path; the CLI calls it in-process for root and over the
    socket for everyone else). An operation's function receives a
    :class:`~ds01_core.services.operations.ServiceContext` (the runtime and the caller) and
    its parameters, and decides what that caller may see and do (``ctx.target_user``,
    ``ctx.require_admin``, or ``admin=True`` on the operation).

    :return: operations whose names (``<plugin>.<what>``) and paths are not used by the core
        or another plugin.

    Not firstresult: every plugin's operations are served (a name declared twice stops the
    table from being built, naming the operation).

    If an implementation raises: its operations are missing (logged with the plugin's name)
    and the others' are still served.
    """


@hookspec(firstresult=True)
def user_group(runtime: Runtime, user: str) -> str | None:
    """Say which ds01 group a user is in, from a source outside the configuration file.

    Called whenever a user's limits are resolved (allocation, enforcement, ``ds01 config show``,
    ``ds01 quota``), so it must answer from a cache, never from a slow network call.

    :param runtime: the process's runtime.
    :param user: the normalised user name.
    :return: the name of a group defined in ``limits.groups``, or ``None`` to let the next
        source answer. When no plugin answers, the configuration's own membership
        (``members`` lists and ``users.<name>.group``) decides.

    firstresult: the first group named wins, so plugins listed earlier in ``plugins.order``
    take precedence.

    If an implementation raises: the error is logged and the configuration's own membership
    decides for that lookup (no later plugin is asked: a lower-precedence source must not
    answer for a higher one that failed).
    """


@hookspec
def explain_user_group(runtime: Runtime, user: str) -> str | None:
    """Say in one line why a user is in their group, for ``ds01 config show --user``.

    Called only when a person asks (``ds01 config show --user NAME``), so it may read the
    plugin's cache but should not contact a server.

    :param runtime: the process's runtime.
    :param user: the normalised user name.
    :return: a line such as ``LDAP: in student (precedence 10) and researcher (precedence 20):
        researcher wins``, or ``None`` when this plugin has nothing to say about the user.

    Not firstresult: every plugin's line is shown.

    If an implementation raises: its place is taken by the line ``<plugin>: could not explain:
    <error>``; the other plugins' lines are shown.
    """


@hookspec
def user_known(runtime: Runtime, user: str) -> bool | None:
    """Say whether a user name exists in an account source this plugin reads (a directory).

    Called by admin commands that record something for a user by name (``ds01 admin override
    set``, ``ds01 admin exempt set --user``) when the host's passwd/NSS does not know the name,
    so that a misspelt name is refused instead of silently helping nobody. Only an admin runs
    these commands, so an implementation may ask its server (within its own timeouts); it must
    catch its own errors and answer ``None`` when it cannot tell.

    :param runtime: the process's runtime.
    :param user: the normalised user name.
    :return: ``True`` when this plugin's source has the user; ``False`` when it looked and the
        user is not there; ``None`` when it cannot say (not configured, server unreachable).

    Not firstresult: the user is known when any plugin answers ``True``; the admin command
    refuses an unknown user unless given ``--allow-unknown-user``.

    If an implementation raises: it is logged and counts as ``None`` (cannot say); the other
    plugins' answers still decide.
    """


# -- the lifecycle cycle: detect → reconcile → enforce → idle → notify -------------------


@hookspec
def detect_workloads(runtime: Runtime) -> Sequence[Workload]:
    """Report the GPU workloads this detector sees right now.

    Called at the start of every lifecycle cycle (and for the live ``ds01 workloads`` listing),
    by every detector: Docker containers, host GPU processes, or anything a third party adds
    (Slurm jobs, VMs …).

    :param runtime: the process's runtime (config, GPU provider, state store, Docker adapter).
    :return: the workloads seen, possibly empty. The core merges all detectors' results by
        ``(kind, id)``: for a duplicate, the first reporter's record wins and later ones only
        add GPU slots and pids.

    Not firstresult: every detector reports.

    If an implementation raises: that detector is skipped for the cycle (its workloads are
    missing from this inventory); the failure is logged, listed in the cycle's errors and
    written to the audit log as ``plugin.failed``. The other detectors' workloads are kept.
    """


@hookspec
def reconcile(runtime: Runtime, workloads: Sequence[Workload]) -> Sequence[Event]:
    """Bring recorded state in line with what is really there.

    Called once per cycle after detection, and once when the daemon starts. Typical work:
    release allocations whose container is gone, record allocations found only on containers,
    expire grants and overrides.

    :param runtime: the process's runtime.
    :param workloads: the merged inventory from ``detect_workloads``.
    :return: the events describing what was changed (the core writes them to the audit log).

    Not firstresult: every reconciler runs.

    If an implementation raises: its events are lost for that cycle (what it wrote before
    raising stays written) and it is tried again next cycle; the failure is logged, listed in the
    cycle's errors (``ds01d --once`` exits 1) and written to the audit log as
    ``plugin.failed``. The other reconcilers run and their events are kept, so one broken
    plugin never stops allocations from being released.
    """


@hookspec
def enforce_limits(
    runtime: Runtime, user: str, limits: EffectiveLimits, workloads: Sequence[Workload]
) -> Sequence[Action]:
    """Make one user's resource limits hold (cgroups, quotas, …).

    Called every cycle for every user who owns a workload or has limits configured, and when a
    container of that user is about to be created.

    :param runtime: the process's runtime.
    :param user: the (normalised) user name.
    :param limits: the user's effective limits, resolved from defaults, group, user and any
        unexpired override.
    :param workloads: that user's workloads from this cycle's inventory.
    :return: the actions taken (an empty sequence when nothing had to change).

    Not firstresult: every enforcer runs.

    If an implementation raises: its actions for that user are lost for that cycle and it is
    tried again next cycle; the failure is logged, listed in the cycle's errors and written to
    the audit log as ``plugin.failed`` (with the user). The other enforcers' actions are kept.
    """


@hookspec
def cycle_steps() -> Sequence[CycleStep]:
    """Add named steps to the daemon's cycle (``detect → reconcile → enforce-limits → idle``).

    Called once per runtime, when the daemon first plans its cycle (at start-up and after each
    configuration reload), and by ``ds01 plugins --cycle`` and ``ds01 config check``, which show
    and check the order. It declares; it must not do the work itself.

    :return: :class:`~ds01_core.cycle.steps.CycleStep` objects: each a unique ``name`` the
        admin uses in ``cycle.order`` and ``cycle.disabled``, the ``run(ctx)`` function called
        once per cycle with a :class:`~ds01_core.cycle.steps.CycleContext` (the runtime, the
        inventory in ``ctx.workloads``, the moment the cycle began) that returns the events to
        write to the audit log, a one-line ``description``, a default place (``before``: the
        step it goes in front of), the steps it ``needs`` earlier in the cycle (``detect`` by
        default) and whether it also runs in the ``partial`` cycle after a Docker event. The
        core sets ``provider`` to the plugin's name.

    Not firstresult: every plugin's steps are in the cycle, in the order the admin gives in
    ``cycle.order`` (steps not named there keep their default place). A step whose name is
    already taken (by the core or a plugin called earlier) is left out, and the cycle reports
    it as an error.

    If an implementation raises: none of that plugin's steps run; the failure is logged,
    listed in every cycle's errors and written to the audit log as ``plugin.failed``. The
    other plugins' steps run. A step's ``run`` that raises costs only that step in that cycle
    (the same error and ``plugin.failed`` event, the hook named ``cycle step <name>``).
    """


@hookspec(firstresult=True)
def on_idle(
    runtime: Runtime, workload: Workload, idle_seconds: float, policy: Policy
) -> str | None:
    """Decide what to do about a workload that has been idle.

    Called every cycle for each container whose activity signals have all been below their
    thresholds for the configured idle window (``lifecycle.idle_window`` cycles), once it is
    past ``lifecycle.start_grace`` and not kept alive or exempted. A container with no known
    signal is never idle, so never reaches this hook.

    :param runtime: the process's runtime.
    :param workload: the idle workload.
    :param idle_seconds: how long it has been idle.
    :param policy: the :class:`ds01_core.domain.policy.Policy` in force for it, resolved for
        its origin and its owner's limits: ``policy.idle_timeout`` is the timeout in force
        (seconds, already multiplied by ``policy.demand_factor`` while GPUs are in high
        demand), and ``policy.warn_at`` the fractions of it at which the owner is warned.
    :return: ``"warn"``, ``"stop"`` or ``"none"``; ``None`` to let the next plugin decide.

    firstresult: the first non-None answer is taken. The built-in policy is ``trylast``, so a
    plugin can overrule it (for example to keep a class of containers alive).

    Only idleness is asked about: a container at its ``max_runtime`` is stopped without this
    hook (an admin's hard cap, lifted only by a logged exemption; see
    :mod:`ds01_core.cycle.runtime_limits`), so keeping a container alive here never lets it
    run past its cap.

    If an implementation raises: nothing is done about that container in that cycle (no warning,
    no stop) and a ``lifecycle.error`` event names it; the next cycle asks again.
    """


@hookspec
def notify(runtime: Runtime, notice: Notice) -> Sequence[DeliveryResult]:
    """Deliver a notice to a user through the channels this plugin provides.

    Called whenever a user must be told something (a warning before an idle stop, a quota
    refusal, a stop that happened).

    :param runtime: the process's runtime.
    :param notice: what to say, to whom, how urgently, and about which container.
    :return: one result per channel tried; the core logs each as an event. A channel must catch
        its own errors and report them as a failed :class:`~ds01_core.domain.model.DeliveryResult`, so
        that one failing channel never blocks the others.

    Not firstresult: every notifier gets every notice.

    If an implementation raises: it counts as one failed delivery on a channel named after the
    plugin (a ``notify.failed`` event) and a ``plugin.failed`` event is written; the other
    notifiers' deliveries are kept, and the action that sent the notice goes on.
    """


@hookspec
def quota_usage(runtime: Runtime, user: str, limits: EffectiveLimits) -> Sequence[QuotaLine]:
    """Report a user's usage of the resources this plugin limits, for ``ds01 quota``.

    Called when a person runs ``ds01 quota`` (for themselves, or an admin for a user); it may
    read files and caches but should answer within a second.

    :param runtime: the process's runtime.
    :param user: the normalised user name.
    :param limits: the user's effective limits.
    :return: one :class:`~ds01_core.domain.model.QuotaLine` per resource (``memory``, ``disk /home`` …).

    Not firstresult: every plugin's lines are shown, after the core's GPU line.

    If an implementation raises: its place is taken by one line named after the plugin that
    says ``unavailable: <error>``; the other plugins' lines are shown.
    """


# -- the container create path -----------------------------------------------------------


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
