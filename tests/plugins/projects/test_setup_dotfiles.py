"""The files ``ds01 setup`` writes in a home: the marked DOCKER_HOST block (added once,
replaced when outdated, the rest of the file kept) and public keys (validated, never twice)."""

from __future__ import annotations

import base64
import os
import stat
import struct
import subprocess
from pathlib import Path

import pytest

from ds01_projects import dotfiles


def _key(kind: str = "ssh-ed25519", body: bytes = b"\x01" * 32) -> str:
    raw = struct.pack(">I", len(kind)) + kind.encode() + struct.pack(">I", len(body)) + body
    return f"{kind} {base64.b64encode(raw).decode()} me@laptop"


def test_the_block_is_added_once_and_the_file_kept(tmp_path: Path) -> None:
    profile = tmp_path / ".profile"
    profile.write_text("# mine\nexport EDITOR=vim")
    profile.chmod(0o640)
    assert dotfiles.block_state(profile, "/run/ds01/docker.sock") == "missing"
    assert dotfiles.write_block(profile, "/run/ds01/docker.sock") is True
    text = profile.read_text()
    assert text.startswith("# mine\nexport EDITOR=vim\n# >>> ds01 >>>\n")
    assert "export DOCKER_HOST=unix:///run/ds01/docker.sock\nexport DOCKER_BUILDKIT=0\n" in text
    assert stat.S_IMODE(profile.stat().st_mode) == 0o640
    assert dotfiles.write_block(profile, "/run/ds01/docker.sock") is False
    assert profile.read_text() == text
    assert dotfiles.block_state(profile, "/run/ds01/docker.sock") == "current"
    # another socket: the block is replaced in place, nothing else moves
    profile.write_text(text + "alias ll='ls -l'\n")
    assert dotfiles.block_state(profile, "/srv/gw.sock") == "outdated"
    assert dotfiles.write_block(profile, "/srv/gw.sock") is True
    new = profile.read_text()
    assert new.count(dotfiles.BEGIN) == 1 and new.count(dotfiles.END) == 1
    assert "unix:///srv/gw.sock" in new and "/run/ds01/docker.sock" not in new
    assert new.startswith("# mine\n") and new.endswith("alias ll='ls -l'\n")
    # the block works in a shell
    out = subprocess.run(
        ["sh", "-c", f". {profile} && echo $DOCKER_HOST $DOCKER_BUILDKIT"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["unix:///srv/gw.sock", "0"]


def test_a_missing_file_is_created(tmp_path: Path) -> None:
    bashrc = tmp_path / ".bashrc"
    assert dotfiles.write_block(bashrc, "/s.sock") is True
    assert bashrc.read_text() == dotfiles.block_text("/s.sock") + "\n"
    assert stat.S_IMODE(bashrc.stat().st_mode) == 0o644
    assert [p.name for p in dotfiles.startup_files(tmp_path)] == [".profile", ".bashrc"]
    (tmp_path / ".bash_profile").write_text("")
    assert ".bash_profile" in [p.name for p in dotfiles.startup_files(tmp_path)]


def test_public_keys_are_validated(tmp_path: Path) -> None:
    good = _key()
    assert dotfiles.parse_public_key(good + "  \n") == good
    rsa = _key("ssh-rsa", b"\x02" * 64)
    assert dotfiles.parse_public_key(rsa).startswith("ssh-rsa ")
    for bad, why in (
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "PRIVATE"),
        ("hello world", "unknown key type"),
        ("ssh-ed25519", "not a public key line"),
        ("ssh-ed25519 AAAA!!!", "not a public key line"),
        ("ssh-ed25519 " + _key("ssh-rsa").split()[1], "says it is 'ssh-rsa'"),
        ("ssh-ed25519 QUJD", "damaged"),
    ):
        with pytest.raises(dotfiles.KeyError_) as info:
            dotfiles.parse_public_key(bad)
        assert why in str(info.value), bad


def test_a_key_is_added_once_with_safe_modes(tmp_path: Path) -> None:
    uid = os.getuid()
    count, problems = dotfiles.ssh_problems(tmp_path, uid)
    assert count == 0 and "does not exist" in problems[0][0] and "ssh-copy-id" in problems[0][1]
    assert dotfiles.add_public_key(tmp_path, _key()) is True
    assert dotfiles.add_public_key(tmp_path, _key().replace("me@laptop", "other")) is False
    ssh = tmp_path / ".ssh"
    assert stat.S_IMODE(ssh.stat().st_mode) == 0o700
    assert stat.S_IMODE((ssh / "authorized_keys").stat().st_mode) == 0o600
    assert (ssh / "authorized_keys").read_text() == _key() + "\n"
    tmp_path.chmod(0o755)
    assert dotfiles.ssh_problems(tmp_path, uid) == (1, [])
    (ssh / "authorized_keys").chmod(0o666)
    _, problems = dotfiles.ssh_problems(tmp_path, uid)
    assert problems == [
        (
            f"{ssh}/authorized_keys is writable by others (sshd then ignores your keys)",
            f"chmod 600 {ssh}/authorized_keys",
        )
    ]
    (ssh / "authorized_keys").chmod(0o600)
    ssh.chmod(0o755)
    assert dotfiles.ssh_problems(tmp_path, uid)[1] == [(f"{ssh} has mode 755", f"chmod 700 {ssh}")]
    _, problems = dotfiles.ssh_problems(tmp_path, uid + 1)
    assert any("not owned by you" in p for p, _ in problems)
