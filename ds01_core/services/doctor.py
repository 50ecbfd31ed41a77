"""``ds01 admin doctor``: every way a non-admin could still reach the real engine, and the other
pieces that keep users on the gateway and off the GPUs outside containers.

Access to the engine's socket is root on the host, so for each engine socket the question is
asked the way the kernel answers it: who can search every directory above it and write to it,
through the owner, the group, the other bits, or a POSIX ACL. Admins (root and members of
``gateway.admin_group``) may; anyone else who can is a problem, named with the command that
fixes it. Nothing here changes the host.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import re
import socket
import stat
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

#: a uid and group set that match no owner, group or ACL entry: "every other user"
NOBODY = -1


@attrs.frozen
class Finding:
    """One check's result; ``fix`` says what to run when it is a problem."""

    check: str
    subject: str
    ok: bool
    message: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class HostPaths:
    """Where the doctor looks; a test points these at a directory of its own."""

    engine_sockets: tuple[str, ...] = (
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/run/containerd/containerd.sock",
    )
    daemon_json: str = "/etc/docker/daemon.json"
    profile_snippet: str = "/etc/profile.d/ds01-docker-host.sh"
    dev_dir: str = "/dev"
    proc_dir: str = "/proc"
    mounts: str = "/proc/self/mounts"


DEFAULT_HOST = HostPaths()


# -- permissions, as the kernel checks them ------------------------------------------------------

_ACL_XATTR = "system.posix_acl_access"
_ACL_USER, _ACL_GROUP_OBJ, _ACL_GROUP, _ACL_MASK = 0x02, 0x04, 0x08, 0x10


@attrs.frozen
class Acl:
    """The named entries of a POSIX access ACL (the owner and other entries mirror the mode)."""

    users: dict[int, int]
    groups: dict[int, int]
    group_obj: int
    mask: int | None


def read_acl(path: str) -> Acl | None:
    """The file's access ACL, or None when it has none beyond its mode bits."""
    try:
        raw = os.getxattr(path, _ACL_XATTR)
    except OSError:  # ENODATA: no ACL; ENOTSUP: the filesystem has none
        return None
    users: dict[int, int] = {}
    groups: dict[int, int] = {}
    group_obj, mask = 0, None
    for offset in range(4, len(raw) - 7, 8):
        tag, perm, ident = struct.unpack_from("<HHI", raw, offset)
        if tag == _ACL_USER:
            users[ident] = perm
        elif tag == _ACL_GROUP:
            groups[ident] = perm
        elif tag == _ACL_GROUP_OBJ:
            group_obj = perm
        elif tag == _ACL_MASK:
            mask = perm
    if not users and not groups:
        return None
    return Acl(users, groups, group_obj, mask)


def permitted(st: os.stat_result, acl: Acl | None, uid: int, gids: set[int], want: int) -> bool:
    """POSIX access check (owner, named user, groups, other) for ``want`` (4 r, 2 w, 1 x)."""
    mode = st.st_mode
    if uid == 0:
        return True
    if uid == st.st_uid:
        return (mode >> 6) & want == want
    if acl is not None:
        mask = 7 if acl.mask is None else acl.mask
        if uid in acl.users:
            return acl.users[uid] & mask & want == want
        perms = [acl.group_obj] if st.st_gid in gids else []
        perms += [perm for gid, perm in acl.groups.items() if gid in gids]
        if perms:
            return any(perm & mask & want == want for perm in perms)
    elif st.st_gid in gids:
        return (mode >> 3) & want == want
    return mode & want == want


def can_connect(path: str, uid: int, gids: set[int]) -> bool:
    """Whether a process with ``uid`` and ``gids`` could connect to the socket at ``path``:
    search permission on every directory above it, write permission on it."""
    real = Path(os.path.realpath(path))
    try:
        for directory in reversed(real.parents):
            if not permitted(os.stat(directory), read_acl(str(directory)), uid, gids, 1):
                return False
        return permitted(os.stat(real), read_acl(str(real)), uid, gids, 2)
    except OSError:
        return False


# -- who is who ----------------------------------------------------------------------------------


class Accounts:
    """Users and groups, read once per run; admins are root and ``admin_group``'s members."""

    def __init__(self, admin_group: str):
        self.by_name = {p.pw_name: p for p in pwd.getpwall()}
        self.admin_group = admin_group
        try:
            admin = grp.getgrnam(admin_group)
            self.admins = {"root", *admin.gr_mem} | self.primary_members(admin.gr_gid)
        except KeyError:
            self.admins = {"root"}

    def user(self, name: str) -> pwd.struct_passwd | None:
        if name not in self.by_name:
            with contextlib.suppress(KeyError):  # not enumerable (LDAP without enumeration)
                self.by_name[name] = pwd.getpwnam(name)
        return self.by_name.get(name)

    def primary_members(self, gid: int) -> set[str]:
        return {name for name, p in self.by_name.items() if p.pw_gid == gid}

    def supplementary_members(self, gid: int) -> set[str]:
        try:
            return set(grp.getgrgid(gid).gr_mem)
        except KeyError:
            return set()

    def gids(self, name: str) -> set[int]:
        entry = self.user(name)
        return set(os.getgrouplist(name, entry.pw_gid)) if entry else set()

    def is_admin(self, name: str) -> bool:
        entry = self.user(name)
        return name in self.admins or (entry is not None and entry.pw_uid == 0)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _describe(st: os.stat_result) -> str:
    return f"{_user_name(st.st_uid)}:{_group_name(st.st_gid)} {stat.S_IMODE(st.st_mode):04o}"


# -- engine sockets ------------------------------------------------------------------------------


def _strip_unix(address: str) -> str:
    return address.removeprefix("unix://") or "/var/run/docker.sock"


def hosts_from_args(args: Sequence[str]) -> list[str]:
    """The ``-H``/``--host`` addresses on a dockerd command line."""
    hosts = []
    for i, arg in enumerate(args):
        if arg in ("-H", "--host") and i + 1 < len(args):
            hosts.append(args[i + 1])
        elif arg.startswith("--host="):
            hosts.append(arg.split("=", 1)[1])
        elif arg.startswith("-H") and len(arg) > 2:
            hosts.append(arg[2:].lstrip("="))
    return hosts


def _dockerd_args(proc_dir: str) -> list[list[str]]:
    found = []
    for entry in Path(proc_dir).iterdir() if Path(proc_dir).is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in args if a]
        if words and os.path.basename(words[0]) == "dockerd":
            found.append(words[1:])
    return found


def engine_addresses(
    runtime: Runtime, host: HostPaths
) -> tuple[dict[str, list[str]], list[str], bool, list[Finding]]:
    """(unix sockets by real path → the names they were found under, TCP addresses, whether
    TLS client verification is on, problems reading the Docker configuration)."""
    findings: list[Finding] = []
    named = [runtime.config.gateway.upstream, *host.engine_sockets]
    tcp: list[str] = []
    tlsverify = False
    daemon_json = Path(host.daemon_json)
    listed: list[str] = []
    if daemon_json.exists():
        try:
            settings = json.loads(daemon_json.read_text())
            listed += [str(h) for h in settings.get("hosts") or ()]
            tlsverify = bool(settings.get("tlsverify"))
        except (OSError, ValueError, AttributeError) as exc:
            findings.append(
                Finding(
                    "engine-config",
                    str(daemon_json),
                    False,
                    f"cannot read {daemon_json}: {exc}",
                    f"fix the JSON in {daemon_json}, then `systemctl restart docker`",
                )
            )
    for args in _dockerd_args(host.proc_dir):
        listed += hosts_from_args(args)
        tlsverify = tlsverify or "--tlsverify" in args or "--tlsverify=true" in args
    for address in listed:
        if address.startswith("unix://") or address.startswith("/"):
            named.append(_strip_unix(address))
        elif address.startswith("tcp://"):
            tcp.append(address)
    sockets: dict[str, list[str]] = {}
    for name in named:
        name = _strip_unix(name)
        if os.path.lexists(name):
            sockets.setdefault(os.path.realpath(name), [])
            if name not in sockets[os.path.realpath(name)]:
                sockets[os.path.realpath(name)].append(name)
    return sockets, sorted(set(tcp)), tlsverify, findings


def _routes(
    accounts: Accounts, st: os.stat_result, acl: Acl | None, path: str
) -> dict[str, list[tuple[str, str]]]:
    """Non-admins with a way to the socket's write bit: user → [(how, fix)]."""
    routes: dict[str, list[tuple[str, str]]] = {}

    def add(name: str, how: str, fix: str) -> None:
        if not accounts.is_admin(name):
            routes.setdefault(name, []).append((how, fix))

    owner = _user_name(st.st_uid)
    if st.st_uid != 0:
        add(owner, f"owns {path}", f"chown root {path}")
    group = _group_name(st.st_gid)
    for name in accounts.supplementary_members(st.st_gid):
        add(name, f"is in group {group}", f"gpasswd -d {name} {group}")
    for name in accounts.primary_members(st.st_gid):
        add(
            name,
            f"has {group} as primary group",
            f"usermod -g <another group> {name}",
        )
    if acl is not None:
        for uid in acl.users:
            add(_user_name(uid), "is named in its ACL", f"setfacl -x u:{_user_name(uid)} {path}")
        for gid in acl.groups:
            gname = _group_name(gid)
            for name in accounts.supplementary_members(gid) | accounts.primary_members(gid):
                add(
                    name,
                    f"is in group {gname}, named in its ACL",
                    f"gpasswd -d {name} {gname} (or setfacl -x g:{gname} {path})",
                )
    return routes


def check_engine_socket(accounts: Accounts, real: str, names: Sequence[str]) -> list[Finding]:
    subject = ", ".join(names)
    try:
        st = os.stat(real)
    except OSError as exc:
        return [Finding("engine-socket", subject, True, f"cannot be read: {exc}")]
    acl = read_acl(real)
    desc = _describe(st) + (" +ACL" if acl else "")
    if can_connect(real, NOBODY, set()):
        return [
            Finding(
                "engine-socket",
                subject,
                False,
                f"{subject} ({desc}) can be opened by every user, and access to it is root on "
                "this host",
                f"chmod o-rwx {real} (and check SocketMode= in docker.socket, or the daemon's "
                "group setting, so a restart does not undo it)",
            )
        ]
    findings = []
    for name, ways in sorted(_routes(accounts, st, acl, real).items()):
        entry = accounts.user(name)
        if entry is None or not can_connect(real, entry.pw_uid, accounts.gids(name)):
            continue  # a directory above it, or the ACL mask, stops them after all
        findings.append(
            Finding(
                "engine-socket",
                subject,
                False,
                f"user {name} can connect to {subject} ({desc}): {name} "
                + " and ".join(how for how, _ in ways),
                "; ".join(f"`{fix}`" for _, fix in ways),
            )
        )
    if not findings:
        findings.append(
            Finding("engine-socket", subject, True, f"{desc}: only root and admins can connect")
        )
    return findings


def check_tcp(addresses: Iterable[str], tlsverify: bool) -> list[Finding]:
    findings = []
    for address in addresses:
        if tlsverify:
            findings.append(
                Finding(
                    "engine-tcp",
                    address,
                    True,
                    "TLS client verification is on: only holders of a client certificate from "
                    "its CA connect; make sure no non-admin has one",
                )
            )
            continue
        findings.append(
            Finding(
                "engine-tcp",
                address,
                False,
                f"the engine listens on {address} without TLS client verification: anyone who "
                "reaches it is root on this host",
                f'remove {address} from "hosts" in /etc/docker/daemon.json (and any -H in the '
                "docker service's command line), then `systemctl restart docker`",
            )
        )
    return findings


# -- the gateway and the users' environment ------------------------------------------------------


def check_gateway(path: str) -> list[Finding]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return [
            Finding(
                "gateway",
                path,
                False,
                "the gateway is not running: its socket is not there",
                "start it: `systemctl enable --now ds01-gateway`",
            )
        ]
    except OSError as exc:
        return [
            Finding("gateway", path, False, f"cannot read {path}: {exc}", "check its directory")
        ]
    if not stat.S_ISSOCK(st.st_mode):
        return [
            Finding(
                "gateway",
                path,
                False,
                f"{path} is not a socket",
                f"remove it and restart the gateway: `rm {path} && systemctl restart ds01-gateway`",
            )
        ]
    findings = []
    mode = stat.S_IMODE(st.st_mode)
    if mode != 0o666:
        findings.append(
            Finding(
                "gateway",
                path,
                False,
                f"mode {mode:04o}: users need 0666 to reach the gateway (it knows who they are "
                "from the connection, not from the file)",
                f"`chmod 0666 {path}`, or restart ds01-gateway, which sets it",
            )
        )
    elif not can_connect(path, NOBODY, set()):
        findings.append(
            Finding(
                "gateway",
                path,
                False,
                f"a directory above {path} cannot be searched by other users, so they cannot "
                "reach the gateway",
                f"`chmod o+x` the directories above {path} (/run/ds01 is 0755)",
            )
        )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(path)
        except OSError as exc:
            findings.append(
                Finding(
                    "gateway",
                    path,
                    False,
                    f"nothing answers on {path} ({exc.strerror or exc}): a stale socket",
                    "`systemctl restart ds01-gateway`",
                )
            )
    if not findings:
        findings.append(Finding("gateway", path, True, "listening, mode 0666"))
    return findings


def check_profile(path: str, gateway_socket: str) -> list[Finding]:
    snippet = Path(path)
    try:
        text = snippet.read_text()
    except FileNotFoundError:
        return [
            Finding(
                "profile",
                path,
                False,
                "missing: users' docker clients do not find the gateway by themselves",
                f"`install -m 0644 packaging/profile.d/ds01-docker-host.sh {path}`",
            )
        ]
    except OSError as exc:
        return [Finding("profile", path, False, f"cannot read {path}: {exc}", f"check {path}")]
    if f"unix://{gateway_socket}" not in text:
        return [
            Finding(
                "profile",
                path,
                False,
                f"does not point DOCKER_HOST at unix://{gateway_socket}",
                f"install packaging/profile.d/ds01-docker-host.sh as {path} and set the socket "
                "path in it to gateway.socket",
            )
        ]
    return [Finding("profile", path, True, f"sets DOCKER_HOST=unix://{gateway_socket}")]


# -- bare-metal GPU access -----------------------------------------------------------------------

_DEVICE = re.compile(r"^nvidia")


def gpu_device_nodes(dev_dir: str) -> list[Path]:
    """``/dev/nvidia*`` and ``/dev/nvidia-caps/*``, directories left out."""
    base = Path(dev_dir)
    nodes = [p for p in sorted(base.glob("nvidia*")) if not p.is_dir()]
    nodes += [p for p in sorted((base / "nvidia-caps").glob("*")) if not p.is_dir()]
    return [p for p in nodes if _DEVICE.match(p.name)]


#: below this uid, an account is a service's (nvidia-persistenced --user …), not a person's
FIRST_PERSON_UID = 1000


def _system_account(accounts: Accounts, name: str) -> bool:
    entry = accounts.user(name)
    return entry is not None and entry.pw_uid < FIRST_PERSON_UID


def check_bare_metal(runtime: Runtime, accounts: Accounts, dev_dir: str) -> list[Finding]:
    from ds01_core.services.bare_metal_grants import granted_users

    group = runtime.config.bare_metal.group
    setup = (
        "install packaging/udev/70-ds01-gpu-direct.rules and the module options from "
        "packaging/modprobe.d/ds01-nvidia.conf.in (docs/bare-metal.md)"
    )
    try:
        entry = grp.getgrnam(group)
    except KeyError:
        return [
            Finding(
                "bare-metal",
                group,
                False,
                f"the group {group} (bare_metal.group) does not exist",
                f"`groupadd --system {group}`, then {setup}",
            )
        ]
    findings = []
    stray = sorted(
        name
        for name in set(entry.gr_mem) - granted_users(runtime)
        if not accounts.is_admin(name) and not _system_account(accounts, name)
    )
    for name in stray:
        findings.append(
            Finding(
                "bare-metal",
                group,
                False,
                f"user {name} is in {group} without an active ds01 grant: direct GPU access that "
                "never expires",
                f"`ds01 admin bare-metal revoke {name}`, or grant it for a while: "
                f"`ds01 admin bare-metal grant {name} 8h --reason …`",
            )
        )
    nodes = gpu_device_nodes(dev_dir)
    if not nodes:
        findings.append(
            Finding("gpu-devices", f"{dev_dir}/nvidia*", True, "no NVIDIA device nodes")
        )
        return findings
    wrong_group, open_to_all = [], []
    for node in nodes:
        try:
            st = node.stat()
        except OSError:
            continue
        if st.st_gid != entry.gr_gid or st.st_uid != 0:
            wrong_group.append(f"{node} ({_describe(st)})")
        if stat.S_IMODE(st.st_mode) & 0o007:
            open_to_all.append(f"{node} ({_describe(st)})")
    if open_to_all:
        findings.append(
            Finding(
                "gpu-devices",
                f"{dev_dir}/nvidia*",
                False,
                "every user can open " + ", ".join(open_to_all) + ", so anyone can use the GPUs "
                "outside containers",
                f"{setup}, then `udevadm control --reload && udevadm trigger` and reload the nvidia "
                f"modules; for now: `chmod o-rwx {dev_dir}/nvidia* {dev_dir}/nvidia-caps/*`",
            )
        )
    if wrong_group:
        findings.append(
            Finding(
                "gpu-devices",
                f"{dev_dir}/nvidia*",
                False,
                f"not root:{group}: " + ", ".join(wrong_group),
                f"{setup}; for now: `chown root:{group} {dev_dir}/nvidia* {dev_dir}/nvidia-caps/*`",
            )
        )
    if not (open_to_all or wrong_group):
        findings.append(
            Finding(
                "gpu-devices",
                f"{dev_dir}/nvidia*",
                True,
                f"{len(nodes)} device node(s), root:{group}, closed to other users",
            )
        )
    return findings


# -- all together --------------------------------------------------------------------------------


def _userns_remap(daemon_json: str, proc_dir: str) -> bool:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        if json.loads(Path(daemon_json).read_text()).get("userns-remap"):
            return True
    return any(arg.startswith("--userns-remap") for args in _dockerd_args(proc_dir) for arg in args)


def _mount_options(mounts: str, path: str) -> tuple[str, set[str]] | None:
    """(mount point, options) of the filesystem ``path`` is on, from a mounts table."""
    best: tuple[str, set[str]] | None = None
    with contextlib.suppress(OSError):
        for line in Path(mounts).read_text().splitlines():
            fields = line.split()
            if len(fields) < 4:
                continue
            point = fields[1].replace("\\040", " ")
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and (best is None or len(point) >= len(best[0])):
                best = (point, set(fields[3].split(",")))
    return best


def check_user_mounts(runtime: Runtime, host: HostPaths) -> list[Finding]:
    """A container's root can write root-owned set-uid programs and device nodes into a
    bind-mounted home; its owner can then run them on the host. Homes and workspaces must be
    on ``nosuid,nodev`` filesystems, or the engine must map container root to an unprivileged
    uid (``userns-remap``)."""
    if _userns_remap(host.daemon_json, host.proc_dir):
        return [Finding("user-mounts", "userns-remap", True, "the engine remaps container root")]
    config = runtime.config
    roots = [*config.detection.home_roots]
    roots += [r.split("{user}")[0].rstrip("/") or "/" for r in config.gateway.workspace_roots]
    findings = []
    for root in dict.fromkeys(roots):
        found = _mount_options(host.mounts, os.path.realpath(root))
        if found is None:
            continue
        point, options = found
        missing = sorted({"nosuid", "nodev"} - options)
        if missing:
            remount = (
                f"put {root} on a filesystem of its own mounted nosuid,nodev"
                if point == "/"
                else f"mount {point} with nosuid,nodev (in /etc/fstab, then `mount -o "
                f"remount,nosuid,nodev {point}`)"
            )
            findings.append(
                Finding(
                    "user-mounts",
                    root,
                    False,
                    f"{root} is on {point}, mounted without {','.join(missing)}: a container's "
                    "root can leave set-uid programs or device nodes there for its owner",
                    f'{remount}, or set "userns-remap": "default" in /etc/docker/daemon.json',
                )
            )
        else:
            findings.append(Finding("user-mounts", root, True, f"{point} is nosuid,nodev"))
    return findings


def run_doctor(runtime: Runtime, host: HostPaths | None = None) -> list[Finding]:
    """Every check's findings, problems and passes alike, in a stable order."""
    host = host or DEFAULT_HOST
    gateway = runtime.config.gateway
    accounts = Accounts(gateway.admin_group)
    sockets, tcp, tlsverify, findings = engine_addresses(runtime, host)
    gateway_real = os.path.realpath(gateway.socket)
    if not os.path.lexists(gateway.upstream.removeprefix("unix://")):
        findings.append(
            Finding(
                "engine-socket",
                gateway.upstream,
                True,
                "gateway.upstream is not there: is the engine running, and is this its socket?",
            )
        )
    for real, names in sockets.items():
        if real != gateway_real:
            findings += check_engine_socket(accounts, real, names)
    findings += check_tcp(tcp, tlsverify)
    findings += check_gateway(gateway.socket)
    findings += check_profile(host.profile_snippet, gateway.socket)
    findings += check_bare_metal(runtime, accounts, host.dev_dir)
    findings += check_user_mounts(runtime, host)
    return findings
