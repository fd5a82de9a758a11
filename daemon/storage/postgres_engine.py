"""The delivery engine's side of the PostgreSQL store: claims, leases and attempts.

The claim rules themselves are SQL functions in ``migrations/postgres/0001_initial.sql`` (take expired
leases back, claim with ``FOR UPDATE SKIP LOCKED``, renew, recover); this module calls them and records
attempts. ``start`` and ``finish`` run in a transaction their caller opened; given an owner, they first
lock the notification's row and check the owner still holds it (``LeaseLost`` otherwise), so a daemon
whose lease ran out cannot overwrite what the daemon that took over has written since.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING

from daemon.core.errors import LeaseLost
from daemon.core.models import Attempt, AttemptRecord, Channel, NotificationUpdate, Outcome, Status
from daemon.storage.postgres_writes import FINAL, Conn, clean

if TYPE_CHECKING:
    from asyncpg import Record

log = logging.getLogger(__name__)


async def claim(conn: Conn, owner: str, now: datetime, lease_until: datetime, limit: int) -> list[Record]:
    """Take other daemons' expired leases back, then claim up to ``limit`` due rows for ``owner``."""
    for row in await conn.fetch("SELECT * FROM fnotify_take_expired($1, $2)", owner, now):
        log.warning("took over the notifications of daemon %s, whose lease expired: %d attempt(s) it had in"
                    " flight recorded interrupted, will retry", row["previous_owner"], row["interrupted_attempts"])
    rows: list[Record] = await conn.fetch("SELECT * FROM fnotify_claim($1, $2, $3, $4)", owner, now, lease_until, limit)
    return rows


async def renew(conn: Conn, owner: str, ids: Collection[int], until: datetime) -> set[int]:
    rows = await conn.fetch("SELECT fnotify_renew AS id FROM fnotify_renew($1, $2::bigint[], $3)",
                            owner, list(ids), until)
    return {row["id"] for row in rows}


async def recover(conn: Conn, owner: str, now: datetime) -> int:
    closed = await conn.fetchval("SELECT fnotify_recover($1, $2)", owner, now)
    return int(closed or 0)


async def fence(conn: Conn, notification_id: int, owner: str | None) -> None:
    """LeaseLost unless ``owner`` (when given) still holds the notification; locks its row either way."""
    if owner is None:
        return
    holder = await conn.fetchval("SELECT claimed_by FROM notifications WHERE id = $1 FOR UPDATE", notification_id)
    if holder != owner:
        raise LeaseLost(f"notification {notification_id} is no longer held by this daemon (its lease ran out"
                        " and another daemon took it over)")


async def start(conn: Conn, notification_id: int, channel: Channel, now: datetime, tries: int,
                owner: str | None) -> int:
    await fence(conn, notification_id, owner)
    attempt_id: int = await conn.fetchval(
        "INSERT INTO attempts (notification_id, channel, started_at) VALUES ($1, $2, $3) RETURNING id",
        notification_id, str(channel), now,
    )
    await conn.execute(
        f"UPDATE notifications SET status = '{Status.SENDING}', tries = $2, updated_at = $3"
        " WHERE id = $1 AND status <> ALL ($4::text[])",
        notification_id, tries, now, FINAL,
    )
    return attempt_id


async def finish(
    conn: Conn,
    attempt_id: int | None,
    notification_id: int,
    channel: Channel,
    record: AttemptRecord,
    update: NotificationUpdate,
    now: datetime,
    owner: str | None,
) -> tuple[int, datetime, str]:
    """Record the attempt and the notification's next state; returns the attempt's id and start, and the
    notification's status (a final one it reached meanwhile, cancelled say, is kept)."""
    await fence(conn, notification_id, owner)
    values = (str(record.outcome), clean(record.error), clean(record.provider_message_id), now, record.retry_at)
    if attempt_id is None:  # skipped: an attempt that never started
        aid: int = await conn.fetchval(
            "INSERT INTO attempts (outcome, error, provider_message_id, finished_at, retry_at, notification_id,"
            " channel, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $4) RETURNING id",
            *values, notification_id, str(channel),
        )
        started = now
    else:
        found = await conn.fetchval(
            "UPDATE attempts SET outcome = $1, error = $2, provider_message_id = $3, finished_at = $4,"
            " retry_at = $5, started_at = coalesce($6, started_at) WHERE id = $7 RETURNING started_at",
            *values, record.sent_at, attempt_id,
        )
        aid, started = attempt_id, found or now
    release = "claimed_by = NULL, lease_until = NULL," if update.release else ""
    status = await conn.fetchval(
        f"UPDATE notifications SET status = $2, position = $3, tries = $4, next_attempt_at = $5, {release}"
        " awaiting_ack = $6, updated_at = $7 WHERE id = $1 AND status <> ALL ($8::text[]) RETURNING status",
        notification_id, str(update.status), update.position, update.tries, update.next_attempt_at,
        update.awaiting_ack, now, FINAL,
    )
    if status is None:  # already final (cancelled while in flight): keep that status, drop the claim
        status = await conn.fetchval(
            "UPDATE notifications SET claimed_by = NULL, lease_until = NULL WHERE id = $1 RETURNING status",
            notification_id,
        )
    return aid, started, str(status or update.status)


def attempt_of(aid: int, notification_id: int, channel: Channel, record: AttemptRecord, started: datetime,
               now: datetime) -> Attempt:
    """The attempt ``finish`` recorded, as the engine reports it."""
    return Attempt(id=aid, notification_id=notification_id, channel=channel, outcome=record.outcome,
                   error=record.error, provider_message_id=record.provider_message_id, started_at=started,
                   finished_at=now, retry_at=record.retry_at)


async def release(conn: Conn, notification_id: int, now: datetime, due: datetime, error: str,
                  owner: str | None) -> None:
    """The engine abandoned its walk of this notification (an unexpected error): its open attempt is
    recorded interrupted, as a restart would, and the row goes back to the timer, due at ``due``."""
    await fence(conn, notification_id, owner)
    await conn.execute(
        "UPDATE attempts SET outcome = $2, finished_at = $3, error = $4 WHERE notification_id = $1"
        " AND finished_at IS NULL",
        notification_id, str(Outcome.INTERRUPTED), now, clean(error),
    )
    await conn.execute(
        "UPDATE notifications SET claimed_by = NULL, lease_until = NULL, updated_at = $2,"
        " next_attempt_at = CASE WHEN status = ANY ($4::text[]) THEN next_attempt_at ELSE $3 END WHERE id = $1",
        notification_id, now, due, FINAL,
    )
