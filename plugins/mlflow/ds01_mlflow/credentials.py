"""Each user's MLflow password, in a file only that user (and root) can read.

``<credentials_dir>/<user>/credentials`` is in MLflow's own format (the ``[mlflow]`` section of
``~/.mlflow/credentials``), so the directory is mounted read-only at ``~/.mlflow`` in the user's
containers and ``import mlflow`` finds it with nothing set. The directories are root's (0711:
nobody lists them, nobody but root writes them, so a user cannot plant a link for root to
follow); the file is the user's, mode 0400. Files are replaced whole (a new file renamed over
the old), so a reader never sees half a password.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import pwd
import secrets
from pathlib import Path

import attrs

FILE = "credentials"
DIR_MODE = 0o711
FILE_MODE = 0o400


@attrs.frozen(repr=False)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never the password in a log line or a traceback
        return f"Credentials(username={self.username!r})"


def new_password() -> str:
    """A random password (32 URL-safe characters; MLflow wants 12 at least)."""
    return secrets.token_urlsafe(24)


def render(credentials: Credentials) -> str:
    return (
        "[mlflow]\n"
        f"mlflow_tracking_username = {credentials.username}\n"
        f"mlflow_tracking_password = {credentials.password}\n"
    )


def parse(text: str) -> Credentials | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    section = parser["mlflow"] if parser.has_section("mlflow") else None
    if section is None:
        return None
    username = section.get("mlflow_tracking_username", "").strip()
    password = section.get("mlflow_tracking_password", "").strip()
    return Credentials(username, password) if username and password else None


class CredentialStore:
    """The per-user credential files under ``root`` (run as root: it sets owners)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def directory(self, user: str) -> Path:
        """What is mounted at ``~/.mlflow`` in the user's containers."""
        return self.root / user

    def path(self, user: str) -> Path:
        return self.directory(user) / FILE

    def read(self, user: str) -> Credentials | None:
        """The user's credentials, or None when there are none (or the file is not ds01's)."""
        try:
            fd = os.open(self.path(user), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        with os.fdopen(fd, encoding="utf-8") as handle:
            found = parse(handle.read(4096))
        return found if found is not None and found.username == user else None

    def write(self, credentials: Credentials) -> Path:
        """Write (or replace) the user's file, owned by them, mode 0400."""
        user = credentials.username
        entry = pwd.getpwnam(user)  # KeyError: not a local account, nothing written
        self.make_dir(self.root)
        directory = self.directory(user)
        self.make_dir(directory)
        temporary = directory / f".{FILE}.{secrets.token_hex(6)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(render(credentials))
                handle.flush()
                os.fchown(handle.fileno(), entry.pw_uid, entry.pw_gid)
                os.fchmod(handle.fileno(), FILE_MODE)
                os.fsync(handle.fileno())
            os.replace(temporary, self.path(user))
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return self.path(user)

    def remove(self, user: str) -> bool:
        """Forget the user's file (their MLflow account is the server's business)."""
        try:
            self.path(user).unlink()
        except FileNotFoundError:
            return False
        with contextlib.suppress(OSError):
            self.directory(user).rmdir()
        return True

    def users(self) -> list[str]:
        """The users that have a file."""
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob(f"*/{FILE}"))

    @staticmethod
    def make_dir(path: Path) -> None:
        """``path``: a directory, root's, 0711 (made if missing)."""
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, DIR_MODE)
        info = os.lstat(path)
        if not os.path.isdir(path) or os.path.islink(path):
            raise OSError(f"{path} is not a directory; remove it and try again")
        if info.st_uid != os.geteuid():
            os.chown(path, os.geteuid(), -1, follow_symlinks=False)
        if info.st_mode & 0o7777 != DIR_MODE:
            os.chmod(path, DIR_MODE)
