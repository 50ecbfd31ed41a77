"""At most ``max`` notices per user in any window of ``per``, across every ds01 process.

Each notice that goes out is one row in the state store; the check, the clean-up of rows older
than the window and the new row happen in one ``BEGIN IMMEDIATE`` transaction, so two
processes telling the same user at once cannot both take the last place.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from ds01_core.api import DeliveryResult
from ds01_notify.config import RateLimitConfig
from ds01_notify.store import ensure_tables, transaction
from ds01_notify.text import iso

if TYPE_CHECKING:
    from ds01_core.api import Runtime

CHANNEL = "rate-limit"

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS notify_sent (user TEXT NOT NULL, sent_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS notify_sent_user ON notify_sent (user, sent_at)",
    "CREATE INDEX IF NOT EXISTS notify_sent_at ON notify_sent (sent_at)",
)


def admit(
    runtime: Runtime, user: str, cfg: RateLimitConfig, now: dt.datetime
) -> DeliveryResult | None:
    """Count one notice for ``user`` and return None, or, over the limit, count nothing and
    return the refusal to report instead of delivering."""
    if cfg.max <= 0:
        return None
    ensure_tables(runtime, "ratelimit", SCHEMA)
    moment = now.timestamp()
    with transaction(runtime) as db:
        db.execute("DELETE FROM notify_sent WHERE sent_at <= ?", (moment - cfg.per,))
        count, oldest = db.execute(
            "SELECT COUNT(*), MIN(sent_at) FROM notify_sent WHERE user = ?", (user,)
        ).fetchone()
        if count >= cfg.max:
            free_at = dt.datetime.fromtimestamp(oldest + cfg.per, dt.UTC)
            return DeliveryResult(
                CHANNEL,
                False,
                f"{user} was sent {count} notices in the last {cfg.per} (the limit is "
                f"{cfg.max}); this one was not sent. The next can go at {iso(free_at)}",
            )
        db.execute("INSERT INTO notify_sent (user, sent_at) VALUES (?, ?)", (user, moment))
    return None


def sent_recently(runtime: Runtime, user: str, cfg: RateLimitConfig, now: dt.datetime) -> int:
    """How many notices ``user`` was sent in the current window (0 before the first)."""
    ensure_tables(runtime, "ratelimit", SCHEMA)
    row = runtime.state.db.execute(
        "SELECT COUNT(*) FROM notify_sent WHERE user = ? AND sent_at > ?",
        (user, now.timestamp() - cfg.per),
    ).fetchone()
    return int(row[0])
