"""Personal API tokens: made, listed, revoked and checked, kept hashed in the plugin's own
SQLite file (``paths.state_dir``/``web.db``, 0600).

A token reads ``ds01_<id>_<secret>``: the id finds the row, the secret is kept only as its
SHA-256 and compared in constant time. A token acts for its owner's uid with the owner's rights
as passwd and the admin group say at the moment of each request, never as they were when it was
made; ``read`` tokens may only call GET operations, ``write`` tokens anything their owner may.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
from pathlib import Path
from typing import Any

import attrs

from ds01_core.api import utc_text
from ds01_web.private_db import private_db

SCOPES = ("read", "write")
PREFIX = "ds01"
_TOKEN = re.compile(r"^ds01_([0-9a-f]{16})_([A-Za-z0-9_-]{20,128})$")
#: how often ``last_used`` is written for a token used again and again
LAST_USED_EVERY = dt.timedelta(seconds=60)
_DUMMY = hashlib.sha256(b"not a token").hexdigest()
#: token files made and given their schema by this process

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    owner_uid INTEGER NOT NULL,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created TEXT NOT NULL,
    expires TEXT NOT NULL,
    last_used TEXT,
    revoked TEXT
);
CREATE INDEX IF NOT EXISTS tokens_owner ON tokens (owner_uid);
"""


@attrs.frozen
class Token:
    """One token as stored (never its secret)."""

    id: str
    owner_uid: int
    owner: str
    name: str
    scopes: tuple[str, ...]
    created: dt.datetime
    expires: dt.datetime
    last_used: dt.datetime | None
    revoked: dt.datetime | None

    def state(self, now: dt.datetime) -> str:
        if self.revoked is not None:
            return "revoked"
        return "expired" if now >= self.expires else "active"

    def to_json(self, now: dt.datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "scopes": list(self.scopes),
            "created": utc_text(self.created),
            "expires": utc_text(self.expires),
            "last_used": utc_text(self.last_used) if self.last_used else None,
            "revoked": utc_text(self.revoked) if self.revoked else None,
            "state": self.state(now),
        }


@attrs.frozen
class Refused:
    """Why a presented token was not accepted (for the audit log only, never the caller)."""

    reason: str
    token_id: str | None = None
    owner: str | None = None


def _time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def _row(row: sqlite3.Row) -> Token:
    return Token(
        row["id"],
        row["owner_uid"],
        row["owner"],
        row["name"],
        tuple(row["scopes"].split(",")),
        dt.datetime.fromisoformat(row["created"]),
        dt.datetime.fromisoformat(row["expires"]),
        _time(row["last_used"]),
        _time(row["revoked"]),
    )


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """The token table in ``path`` (made 0600 on first use); a connection per call, so any
    thread may use one store."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def under(cls, state_dir: str | os.PathLike[str]) -> TokenStore:
        return cls(Path(state_dir) / "web.db")

    def _db(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return private_db(self.path, SCHEMA)

    def create(
        self,
        owner_uid: int,
        owner: str,
        name: str,
        scopes: tuple[str, ...],
        now: dt.datetime,
        expires: dt.datetime,
    ) -> tuple[Token, str]:
        """A new token and its full text (``ds01_<id>_<secret>``), shown to its owner once."""
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        with self._db() as db:
            db.execute(
                "INSERT INTO tokens (id, owner_uid, owner, name, scopes, secret_sha256, created, "
                "expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    token_id,
                    owner_uid,
                    owner,
                    name,
                    ",".join(scopes),
                    digest(secret),
                    now.isoformat(),
                    expires.isoformat(),
                ),
            )
        token = Token(token_id, owner_uid, owner, name, scopes, now, expires, None, None)
        return token, f"{PREFIX}_{token_id}_{secret}"

    def of_owner(self, owner_uid: int) -> list[Token]:
        with self._db() as db:
            rows = db.execute(
                "SELECT * FROM tokens WHERE owner_uid = ? ORDER BY created, id", (owner_uid,)
            ).fetchall()
        return [_row(r) for r in rows]

    def get(self, token_id: str) -> Token | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM tokens WHERE id = ?", (token_id,)).fetchone()
        return _row(row) if row else None

    def revoke(self, token_id: str, now: dt.datetime) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE tokens SET revoked = ? WHERE id = ? AND revoked IS NULL",
                (now.isoformat(), token_id),
            )

    def check(self, presented: str, now: dt.datetime) -> Token | Refused:
        """The token ``presented`` names when its secret matches and it is neither expired nor
        revoked; else why not. Every path costs one hash comparison."""
        match = _TOKEN.fullmatch(presented)
        if match is None:
            hmac.compare_digest(_DUMMY, digest(presented))
            return Refused("malformed")
        token_id, secret = match.groups()
        with self._db() as db:
            row = db.execute("SELECT * FROM tokens WHERE id = ?", (token_id,)).fetchone()
            stored = row["secret_sha256"] if row else _DUMMY
            matches = hmac.compare_digest(stored, digest(secret))
            if row is None or not matches:
                return Refused("unknown", token_id)
            token = _row(row)
            if token.revoked is not None:
                return Refused("revoked", token_id, token.owner)
            if now >= token.expires:
                return Refused("expired", token_id, token.owner)
            if token.last_used is None or now - token.last_used >= LAST_USED_EVERY:
                db.execute(
                    "UPDATE tokens SET last_used = ? WHERE id = ?", (now.isoformat(), token_id)
                )
        return token


__all__ = ["SCOPES", "Refused", "Token", "TokenStore"]
