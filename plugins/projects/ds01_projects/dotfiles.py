"""The user's own dotfiles that ``ds01 setup`` touches: a marked block in the shell start-up
files, and ``~/.ssh/authorized_keys`` for VS Code Remote.

Every change is idempotent and confined: the block between ``# >>> ds01 >>>`` and
``# <<< ds01 <<<`` is the only part of a start-up file ever written (replaced when it differs,
appended when missing), and a public key is appended only when it is valid and not already
there. Nothing here generates keys: a private key belongs on the user's laptop.
"""

from __future__ import annotations

import base64
import os
import re
import stat
import struct
from pathlib import Path

BEGIN, END = "# >>> ds01 >>>", "# <<< ds01 <<<"

#: start-up files that always get the block; the others only when they exist (bash reads
#: ~/.bash_profile instead of ~/.profile when it exists)
ALWAYS = (".profile", ".bashrc")
IF_PRESENT = (".bash_profile", ".bash_login", ".zshenv")

KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
_KEY_LINE = re.compile(r"^(\S+) ([A-Za-z0-9+/]+={0,3})(?: (.*))?$")


def block_text(socket: str) -> str:
    """The lines ``ds01 setup`` keeps in the start-up files, markers included."""
    return "\n".join(
        (
            BEGIN,
            "# written by `ds01 setup`: Docker through the ds01 gateway, where your limits apply",
            "# (the gateway takes the classic builder). Remove the block to undo.",
            f"export DOCKER_HOST=unix://{socket}",
            "export DOCKER_BUILDKIT=0",
            END,
        )
    )


def startup_files(home: Path) -> list[Path]:
    return [home / n for n in ALWAYS] + [home / n for n in IF_PRESENT if (home / n).exists()]


def _split(text: str) -> tuple[str, str | None, str]:
    """(before, the block or None, after)."""
    start = text.find(BEGIN)
    if start < 0:
        return text, None, ""
    end = text.find(END, start)
    if end < 0:  # a begin marker without its end: treat the rest as the block
        return text[:start], text[start:], ""
    end += len(END)
    return text[:start], text[start:end], text[end:]


def block_state(path: Path, socket: str) -> str:
    """``current`` (the block as it should be), ``outdated`` (another block) or ``missing``."""
    try:
        _, block, _ = _split(path.read_text())
    except FileNotFoundError:
        return "missing"
    if block is None:
        return "missing"
    return "current" if block.strip() == block_text(socket) else "outdated"


def write_block(path: Path, socket: str) -> bool:
    """Put the current block into ``path`` (created 0644 when missing); True if it changed."""
    wanted = block_text(socket)
    try:
        text = path.read_text()
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        text, mode = "", 0o644
    before, block, after = _split(text)
    if block is not None and block.strip() == wanted:
        return False
    if block is None:
        new = text + ("" if not text or text.endswith("\n") else "\n") + wanted + "\n"
    else:
        new = before + wanted + after
    tmp = path.with_name(f".{path.name}.ds01-setup.tmp")
    tmp.write_text(new)
    tmp.chmod(mode)
    os.replace(tmp, path)
    return True


# -- SSH ------------------------------------------------------------------------------------


class KeyError_(ValueError):
    """A public key line that is not one; the message says what was wrong."""


def parse_public_key(line: str) -> str:
    """The normalised ``TYPE BASE64 [comment]`` line, or :class:`KeyError_` saying why not."""
    line = line.strip()
    if "PRIVATE KEY" in line:
        raise KeyError_("this is a PRIVATE key: give the .pub file, and keep the private one")
    match = _KEY_LINE.match(line)
    if not match:
        raise KeyError_("not a public key line (expected 'ssh-ed25519 AAAA… comment')")
    kind, blob, comment = match.groups()
    if kind not in KEY_TYPES:
        raise KeyError_(f"unknown key type {kind!r} (expected one of {', '.join(KEY_TYPES)})")
    try:
        raw = base64.b64decode(blob, validate=True)
        (size,) = struct.unpack(">I", raw[:4])
        inner = raw[4 : 4 + size].decode()
    except (ValueError, struct.error, UnicodeDecodeError):
        raise KeyError_("the key's base64 part is damaged (copy the whole line)") from None
    if inner != kind:
        raise KeyError_(f"the key says it is {inner!r} but the line says {kind!r}")
    return f"{kind} {blob}" + (f" {comment.strip()}" if comment and comment.strip() else "")


def key_blob(line: str) -> str | None:
    """The base64 part of an ``authorized_keys`` line (options may precede the type)."""
    parts = line.split()
    for i, part in enumerate(parts[:-1]):
        if part in KEY_TYPES:
            return parts[i + 1]
    return None


def add_public_key(home: Path, line: str) -> bool:
    """Append a valid key to ``~/.ssh/authorized_keys`` (0700 dir, 0600 file when created);
    False when the same key is already there."""
    key = parse_public_key(line)
    ssh = home / ".ssh"
    if not ssh.exists():
        ssh.mkdir(mode=0o700)
    path = ssh / "authorized_keys"
    existing = path.read_text() if path.exists() else ""
    blob = key.split()[1]
    if any(key_blob(row) == blob for row in existing.splitlines()):
        return False
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        prefix = "" if not existing or existing.endswith("\n") else "\n"
        os.write(fd, (prefix + key + "\n").encode())
    finally:
        os.close(fd)
    return True


def ssh_problems(home: Path, uid: int) -> tuple[int, list[tuple[str, str]]]:
    """(number of keys, [(problem, fix)]) for ``~/.ssh`` and its ``authorized_keys``: sshd
    ignores the file (StrictModes) when either is writable by others or owned by another."""
    ssh, path = home / ".ssh", home / ".ssh" / "authorized_keys"
    found: list[tuple[str, str]] = []
    for target, want in ((home, None), (ssh, 0o700), (path, 0o600)):
        try:
            st = target.stat()
        except FileNotFoundError:
            return 0, [*found, (f"{target} does not exist", _HOW_TO_ADD)]
        except PermissionError:
            return 0, [*found, (f"cannot read {target}", f"check the owner of {target}")]
        if st.st_uid != uid:
            found.append((f"{target} is not owned by you", "ask an admin to chown it to you"))
        if st.st_mode & 0o022:
            fix = f"chmod go-w {target}" if want is None else f"chmod {want:o} {target}"
            found.append((f"{target} is writable by others (sshd then ignores your keys)", fix))
        elif want is not None and stat.S_IMODE(st.st_mode) & ~want:
            found.append(
                (f"{target} has mode {stat.S_IMODE(st.st_mode):o}", f"chmod {want:o} {target}")
            )
    try:
        rows = [r for r in path.read_text().splitlines() if r.strip() and not r.startswith("#")]
    except OSError as exc:
        return 0, [*found, (f"cannot read {path}: {exc.strerror}", f"chmod 600 {path}")]
    keys = [r for r in rows if key_blob(r)]
    if not keys:
        found.append((f"{path} has no public key", _HOW_TO_ADD))
    return len(keys), found


_HOW_TO_ADD = (
    "on your laptop run `ssh-copy-id <you>@<this server>` (make a key first with "
    "`ssh-keygen -t ed25519` if you have none), or `ds01 setup --ssh-key-file ~/id_ed25519.pub` "
    "here with a copy of your PUBLIC key"
)
