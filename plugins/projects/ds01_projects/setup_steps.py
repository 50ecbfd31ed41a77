"""The steps of ``ds01 setup``: the account, Docker, the SSH key, what the user already has,
the first project, and notifications.

Each step looks first and changes only what the user agreed to (a flag, ``--yes``, or a
prompt), and returns :class:`~ds01_projects.findings.Finding` lines saying what it saw, what
it changed and what is left to do. The steps never decide a server rule: limits, channels and
containers come from the server's operations, and Docker goes through the gateway.
"""

from __future__ import annotations

import grp
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from ds01_core.api import ServiceError, format_bytes
from ds01_projects import dotfiles
from ds01_projects.findings import Finding, fail, ok, warn
from ds01_projects.settings import Settings


@attrs.define
class SetupContext:
    """What every step needs: the server, the settings, the home, and how to ask."""

    state: Any  # the command's CliState
    settings: Settings
    home: Path
    #: may prompt (a terminal, and neither --yes nor --non-interactive)
    interactive: bool
    #: ``~/.ds01/setup.json`` did not exist: offers default to yes; later runs only report
    first_run: bool
    confirm: Callable[[str, bool], bool]
    ask: Callable[[str, str], str]
    #: what the steps found that a later step uses (images, containers, projects)
    seen: dict[str, Any] = attrs.Factory(dict)

    def agree(self, flag: bool | None, question: str) -> bool:
        """A flag decides; else, on a first run, a prompt (default yes) or yes with --yes;
        later runs only report (no question, no change) unless a flag asks."""
        if flag is not None:
            return flag
        if not self.first_run:
            return False
        return self.confirm(question, True) if self.interactive else True


# -- 1. the account -------------------------------------------------------------------------


def gpu_quota_words(quota: dict[str, Any]) -> str:
    """``ds01 quota``'s GPU line in words a new user understands."""
    ge = quota["gpu_equivalents"]
    limit, used = ge["limit"], ge["in_use"]
    if limit is None:
        head = "no GPU limit: you may use as many GPUs as are free"
    elif limit == 0:
        head = "no GPUs: your quota is 0 (ask an admin if you need one)"
    else:
        whole = int(limit)
        gpus = f"{whole} whole GPU{'s' if whole != 1 else ''}" if whole >= 1 else "a MIG slice"
        head = (
            f"up to {limit:g} GPU-equivalent{'s' if limit != 1 else ''} at once ({gpus}, "
            "or MIG slices adding up to that)"
        )
    return f"GPU quota: {head}; {round(used, 2):g} in use now"


def account(ctx: SetupContext) -> list[Finding]:
    s = ctx.settings
    groups = sorted({_group_name(g) for g in os.getgroups()} | {_group_name(os.getgid())})
    role = "an admin (in the ds01 admin group)" if s.admin else "not an admin"
    found = [
        ok("account", f"{s.user} (uid {s.uid}), {role}", details=(f"groups: {', '.join(groups)}",))
    ]
    try:
        quota = ctx.state.call("quota")
    except ServiceError as exc:
        return [*found, fail("account", f"cannot read your limits: {exc.message}", _ASK_ADMIN)]
    ctx.seen["quota"] = quota
    details = [gpu_quota_words(quota)]
    limits = s.limits
    if limits.get("max_containers_per_user") is not None:
        details.append(f"containers: at most {limits['max_containers_per_user']}")
    if limits.get("max_images") is not None:
        details.append(f"images: at most {limits['max_images']}")
    if limits.get("max_image_storage") is not None:
        details.append(f"image storage: at most {format_bytes(int(limits['max_image_storage']))}")
    lines = quota.get("resources") or []
    over = [line for line in lines if line.get("over")]
    details += [f"{line['resource']}: {_used(line)}" for line in lines if line.get("limit")]
    group = quota.get("group")
    title = f"your limits (group {group})" if group else "your limits (the defaults)"
    if over:
        names = ", ".join(line["resource"] for line in over)
        found.append(
            warn(
                "quota",
                f"{title}: OVER on {names}",
                "free some space or ask an admin (`ds01 quota` shows the numbers)",
                details=tuple(details),
            )
        )
    else:
        found.append(ok("quota", title, details=tuple(details)))
    return found


def _used(line: dict[str, Any]) -> str:
    """``used of limit`` of a quota line, in its unit."""

    def show(value: Any) -> str:
        if value is None:
            return "-"
        if line.get("unit") in ("bytes", "bytes/s"):
            return format_bytes(int(value)) + ("/s" if line["unit"] == "bytes/s" else "")
        return f"{value:g}"

    return f"{show(line.get('used'))} of {show(line.get('limit'))}" + (
        " (OVER)" if line.get("over") else ""
    )


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


# -- 2. Docker --------------------------------------------------------------------------------


def gateway_socket(settings: Settings) -> str:
    return os.environ.get("DS01_GATEWAY_SOCKET") or settings.gateway_socket


def docker_env_finding(settings: Settings, check: str = "docker") -> Finding | None:
    """A finding when this shell's DOCKER_HOST or DOCKER_BUILDKIT is not what the gateway
    needs; None when both are right."""
    want = f"unix://{gateway_socket(settings)}"
    have = os.environ.get("DOCKER_HOST")
    if have != want:
        seen = f"is {have}" if have else "is not set"
        return warn(check, f"DOCKER_HOST {seen}; the ds01 gateway is {want}", _DOCKER_FIX)
    if os.environ.get("DOCKER_BUILDKIT") != "0":
        return warn(
            check,
            "DOCKER_BUILDKIT is not 0: the gateway builds with the classic builder only",
            _DOCKER_FIX,
        )
    return None


def docker(ctx: SetupContext, add_block: bool | None) -> list[Finding]:
    socket = gateway_socket(ctx.settings)
    found: list[Finding] = []
    env_problem = docker_env_finding(ctx.settings)
    files = dotfiles.startup_files(ctx.home)
    states = {path: dotfiles.block_state(path, socket) for path in files}
    if any(v != "current" for v in states.values()):
        if ctx.agree(add_block, f"Point Docker at the ds01 gateway in {_names(files)}?"):
            try:
                changed = tuple(
                    f"{path}: DOCKER_HOST block {'updated' if states[path] == 'outdated' else 'added'}"
                    for path in files
                    if dotfiles.write_block(path, socket)
                )
            except OSError as exc:
                where = exc.filename or ctx.home
                return [
                    fail("docker", f"cannot write {where}: {exc.strerror}", f"check {where}"),
                    engine_through_gateway(ctx.settings),
                ]
            found.append(
                ok(
                    "docker",
                    f"DOCKER_HOST=unix://{socket} and DOCKER_BUILDKIT=0 in your start-up files",
                    fix="new shells get it; this one: `source ~/.profile`" if env_problem else "",
                    changed=changed,
                )
            )
        elif env_problem:
            found.append(env_problem)
    elif env_problem:
        found.append(
            warn(
                "docker",
                f"{_names(files)} set DOCKER_HOST, but this shell has not read them",
                "`source ~/.profile` (or log in again)",
            )
        )
    else:
        found.append(ok("docker", f"DOCKER_HOST=unix://{socket}, DOCKER_BUILDKIT=0"))
    found.append(engine_through_gateway(ctx.settings))
    return found


def engine_through_gateway(settings: Settings, check: str = "docker") -> Finding:
    """``docker version`` as the user, through the gateway."""
    from ds01_projects.gateway_client import gateway_api

    try:
        version = gateway_api(settings, timeout=20).version()
    except ServiceError as exc:
        return fail(check, exc.message, _ASK_ADMIN)
    except Exception as exc:  # the SDK's many ways to fail: one line, never a traceback
        return fail(check, f"Docker through the gateway does not answer: {exc}", _ASK_ADMIN)
    return ok(check, f"Docker {version.get('Version', '?')} answers through the ds01 gateway")


def _names(files: list[Path]) -> str:
    return ", ".join(f"~/{p.name}" for p in files)


_DOCKER_FIX = "`ds01 setup --docker-host` writes it into ~/.profile and ~/.bashrc"
_ASK_ADMIN = "tell an admin (`ds01 doctor` shows what is wrong with your setup)"


# -- 3. SSH -----------------------------------------------------------------------------------


def ssh(ctx: SetupContext, key_file: str | None) -> list[Finding]:
    changed: tuple[str, ...] = ()
    if key_file:
        path = Path(os.path.expanduser(key_file))
        try:
            line = path.read_text().strip().splitlines()[0]
        except (OSError, IndexError) as exc:
            return [fail("ssh", f"cannot read {path}: {getattr(exc, 'strerror', None) or 'empty'}")]
        try:
            added = dotfiles.add_public_key(ctx.home, line)
        except dotfiles.KeyError_ as exc:
            return [fail("ssh", f"{path}: {exc}", "give the .pub file of your key")]
        except OSError as exc:
            where = exc.filename or f"{ctx.home}/.ssh"
            return [fail("ssh", f"cannot write {where}: {exc.strerror}", f"check {where}")]
        if added:
            changed = (f"{ctx.home}/.ssh/authorized_keys: the key in {path} added",)
    count, problems = dotfiles.ssh_problems(ctx.home, os.getuid())
    if problems:
        return [warn("ssh", text, fix, changed=changed) for text, fix in problems]
    return [
        ok(
            "ssh",
            f"{count} key{'s' if count != 1 else ''} in ~/.ssh/authorized_keys (VS Code Remote"
            " - SSH can log in)",
            changed=changed,
        )
    ]


# -- 4. what the user already has -------------------------------------------------------------


def existing(ctx: SetupContext) -> list[Finding]:
    """The user's images (exactly theirs: their namespace through the gateway), containers
    and projects, so that a returning user is not offered what they have (FIX-04)."""
    found: list[Finding] = []
    try:
        from ds01_projects.gateway_client import gateway_api
        from ds01_projects.images import user_images

        images = user_images(ctx.settings, gateway_api(ctx.settings))
    except ServiceError as exc:
        images = []
        found.append(fail("images", f"cannot list your images: {exc.message}", _ASK_ADMIN))
    except Exception as exc:
        images = []
        found.append(fail("images", f"cannot list your images: {exc}", _ASK_ADMIN))
    else:
        lines = tuple(
            f"{row.ref}  {format_bytes(int(row.size or 0))}"
            + (f"  used by {', '.join(row.containers)}" if row.containers else "")
            for row in images
        )
        found.append(
            ok("images", _count(len(images), "image", ctx.settings.namespace), details=lines)
        )
    try:
        containers = ctx.state.call("containers.list", all=True)
    except ServiceError as exc:
        containers = []
        found.append(fail("containers", f"cannot list your containers: {exc.message}"))
    else:
        found.append(
            ok(
                "containers",
                _count(len(containers), "container", None),
                details=tuple(f"{c['name']}  {c['status']}  {c['image']}" for c in containers),
            )
        )
    try:
        from ds01_projects.listing import list_projects

        projects = list_projects(ctx.settings)
    except ServiceError as exc:
        projects = []
        found.append(fail("projects", f"cannot list your projects: {exc.message}"))
    else:
        found.append(
            ok(
                "projects",
                _count(len(projects), "project", ctx.settings.workspace_root),
                details=tuple(f"{p['name']}  {p['state']}  {p['directory']}" for p in projects),
            )
        )
    ctx.seen.update(images=images, containers=containers, projects=projects)
    return found


def _count(n: int, what: str, where: str | None) -> str:
    place = f" in {where}" if where else ""
    return f"{'no' if n == 0 else n} {what}{'' if n == 1 else 's'}{place}"


# -- 6. notifications ----------------------------------------------------------------------


def notifications(ctx: SetupContext, channels: list[str] | None) -> list[Finding]:
    """Which channels reach the user; ``--notify-channels`` keeps exactly those on."""
    try:
        current = ctx.state.call("notify.prefs")
    except (ServiceError, KeyError) as exc:
        why = getattr(exc, "message", None) or "the notify plugin is not installed"
        return [warn("notify", f"notifications: {why}", "ask an admin which channels reach you")]
    changed: tuple[str, ...] = ()
    if channels is not None:
        available = [c["channel"] for c in current["channels"] if c["available"]]
        unknown = [c for c in channels if c not in available]
        if unknown:
            return [
                fail(
                    "notify",
                    f"{', '.join(unknown)} cannot be chosen on this server",
                    f"choose among: {', '.join(available) or 'none'}",
                )
            ]
        enable = [c for c in available if c in channels]
        disable = [c for c in available if c not in channels]
        before = {c["channel"]: c["used"] for c in current["channels"]}
        current = ctx.state.call("notify.prefs", enable=enable, disable=disable)
        changed = tuple(
            f"{c['channel']} turned {'on' if c['used'] else 'off'}"
            for c in current["channels"]
            if before.get(c["channel"]) != c["used"]
        )
    used = [c for c in current["channels"] if c["used"]]
    details = tuple(f"{c['channel']}: {c['detail']}" for c in used)
    if not used:
        return [
            warn(
                "notify",
                "no channel reaches you: you will not hear about idle stops",
                "`ds01 notify prefs --enable terminal` (see `ds01 notify prefs`)",
                changed=changed,
            )
        ]
    names = ", ".join(c["channel"] for c in used)
    return [
        ok(
            "notify",
            f"you are told through: {names}",
            details=(*details, "change: `ds01 notify prefs --enable/--disable CHANNEL`"),
            changed=changed,
        )
    ]
