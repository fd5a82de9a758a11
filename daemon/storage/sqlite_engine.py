"""The SQLite store's engine side (mixed into ``SqliteStore``): recovery, claims and leases, the
timer's next due time, and writing each attempt with the notification's next state. The claim rules
themselves are ``sqlite_claims``; every write goes through the group-commit writer."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from daemon.core.errors import LeaseLost
from daemon.core.models import (
    FINAL_STATUSES,
    Attempt,
    AttemptRecord,
    Channel,
    Notification,
    NotificationUpdate,
    Skip,
    Status,
)
from daemon.storage import sqlite_claims, sqlite_notifications
from daemon.storage.sqlite_access import SqliteAccess
from daemon.storage.sqlite_rows import notification_from_row, to_datetime, to_timestamp

log = logging.getLogger(__name__)

FINAL_SQL = ",".join(f"'{s}'" for s in (Status.DELIVERED, Status.ACKNOWLEDGED, Status.FAILED, Status.CANCELLED,
                                        Status.EXPIRED))


class SqliteEngineSide(SqliteAccess):
    """What the delivery engine asks of the SQLite store."""

    _dead_owners: set[str]  # claims found while alone with the file: their daemons are gone

    async def recover_interrupted(self, now: datetime, owner: str) -> int:
        dead, self._dead_owners = self._dead_owners, set()
        result: int = await self._submit(lambda conn: sqlite_claims.recover(conn, owner, now.timestamp(), dead))
        return result

    async def claim_due(self, now: datetime, limit: int, owner: str, lease_until: datetime) -> list[Notification]:
        rows, taken = await self._submit(
            lambda conn: sqlite_claims.claim(conn, owner, now.timestamp(), lease_until.timestamp(), limit)
        )
        for previous, attempts in taken.items():
            log.warning("took over the notifications of daemon %s, whose lease expired: %d attempt(s) it had in"
                        " flight recorded interrupted, will retry", previous, attempts)
        return [notification_from_row(r) for r in rows]

    async def renew_leases(self, owner: str, ids: Collection[int], until: datetime) -> set[int]:
        if not ids:
            return set()
        held: set[int] = await self._submit(lambda conn: sqlite_claims.renew(conn, owner, ids, until.timestamp()))
        return held

    async def next_due_time(self) -> datetime | None:
        # "IS NOT NULL" lets SQLite answer from the partial index notifications_due (one row read);
        # without it, min() reads every row of the table, a backlog and all
        row = await self._one("SELECT min(next_attempt_at) FROM notifications"
                              " WHERE claimed_by IS NULL AND next_attempt_at IS NOT NULL")
        return to_datetime(row[0]) if row else None

    async def start_attempt(
        self, notification_id: int, channel: Channel, now: datetime, tries: int, owner: str | None = None
    ) -> int:
        ts = now.timestamp()
        result: int = await self._submit(lambda conn: _start(conn, notification_id, channel, ts, tries, owner))
        return result

    async def finish_attempt(
        self,
        attempt_id: int | None,
        notification_id: int,
        channel: Channel,
        record: AttemptRecord,
        update: NotificationUpdate,
        now: datetime,
        owner: str | None = None,
    ) -> tuple[Attempt, Status]:
        ts = now.timestamp()
        aid, started, status = await self._submit(
            lambda conn: _finish(conn, attempt_id, notification_id, channel, record, update, ts, owner)
        )
        return _attempt(aid, notification_id, channel, record, started, now), Status(status)

    async def skip_then_start(
        self, skip: Skip, notification_id: int, channel: Channel, now: datetime, tries: int, owner: str | None = None
    ) -> tuple[Attempt, Status, int | None]:
        at, ts = skip.at.timestamp(), now.timestamp()

        def op(conn: sqlite3.Connection) -> tuple[int, float, str, int | None]:
            aid, started, status = _finish(conn, None, notification_id, skip.channel, skip.record, skip.update, at,
                                           owner)
            if status in FINAL_STATUSES:  # cancelled while walked: finish dropped the claim, start nothing
                return aid, started, status, None
            # the fence above holds for the whole transaction: no second one
            return aid, started, status, _start(conn, notification_id, channel, ts, tries, None)

        aid, started, status, attempt_id = await self._submit(op)
        return _attempt(aid, notification_id, skip.channel, skip.record, started, skip.at), Status(status), attempt_id

    async def release_claim(
        self, notification_id: int, now: datetime, due: datetime, error: str, owner: str | None = None
    ) -> None:
        ts, due_ts = now.timestamp(), due.timestamp()

        def op(conn: sqlite3.Connection) -> None:
            _fence(conn, notification_id, owner)
            sqlite_notifications.release_claim(conn, notification_id, ts, due_ts, error)

        await self._submit(op)

    async def awaiting_ack(self, notification_id: int) -> bool:
        row = await self._one("SELECT awaiting_ack FROM notifications WHERE id = ?", (notification_id,))
        return bool(row and row[0])

    # -- the Telegram bot's side (its SQL is in daemon.storage.sqlite_bot) -------------------

def _start(conn: sqlite3.Connection, notification_id: int, channel: Channel, ts: float, tries: int,
           owner: str | None) -> int:
    _fence(conn, notification_id, owner)
    cur = conn.execute(
        "INSERT INTO attempts (notification_id, channel, started_at) VALUES (?,?,?)",
        (notification_id, str(channel), ts),
    )
    conn.execute(
        f"UPDATE notifications SET status = '{Status.SENDING}', tries = ?, updated_at = ?"
        f" WHERE id = ? AND status NOT IN ({FINAL_SQL})",
        (tries, ts, notification_id),
    )
    return cur.lastrowid or 0


def _finish(conn: sqlite3.Connection, attempt_id: int | None, notification_id: int, channel: Channel,
            record: AttemptRecord, update: NotificationUpdate, ts: float, owner: str | None) -> tuple[int, float, str]:
    """Record the attempt and the notification's next state; the attempt's id and start, and the status."""
    _fence(conn, notification_id, owner)
    values = (str(record.outcome), record.error, record.provider_message_id, ts, to_timestamp(record.retry_at))
    if attempt_id is None:  # skipped: an attempt that never started
        cur = conn.execute(
            "INSERT INTO attempts (outcome, error, provider_message_id, finished_at, retry_at,"
            " notification_id, channel, started_at) VALUES (?,?,?,?,?,?,?,?)",
            (*values, notification_id, str(channel), ts),
        )
        aid, started = cur.lastrowid or 0, ts
    else:
        rows = _fetchall(
            conn,
            "UPDATE attempts SET outcome = ?, error = ?, provider_message_id = ?, finished_at = ?,"
            " retry_at = ?, started_at = coalesce(?, started_at) WHERE id = ? RETURNING started_at",
            (*values, to_timestamp(record.sent_at), attempt_id),
        )
        aid, started = attempt_id, rows[0][0] if rows else ts
    release = "claimed_by = NULL, lease_until = NULL," if update.release else ""
    updated = _fetchall(
        conn,
        f"UPDATE notifications SET status = ?, position = ?, tries = ?, next_attempt_at = ?, {release}"
        f" awaiting_ack = ?, updated_at = ? WHERE id = ? AND status NOT IN ({FINAL_SQL}) RETURNING status",
        (str(update.status), update.position, update.tries, to_timestamp(update.next_attempt_at),
         int(update.awaiting_ack), ts, notification_id),
    )
    if updated:
        return aid, started, str(updated[0][0])
    # already final (cancelled while in flight): keep that status, drop the claim
    final = _fetchall(
        conn,
        "UPDATE notifications SET claimed_by = NULL, lease_until = NULL WHERE id = ? RETURNING status",
        (notification_id,),
    )
    return aid, started, str(final[0][0]) if final else str(update.status)


def _attempt(aid: int, notification_id: int, channel: Channel, record: AttemptRecord, started: float,
             now: datetime) -> Attempt:
    return Attempt(id=aid, notification_id=notification_id, channel=channel, outcome=record.outcome,
                   error=record.error, provider_message_id=record.provider_message_id,
                   started_at=datetime.fromtimestamp(started, UTC), finished_at=now, retry_at=record.retry_at)


def _fetchall(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    return conn.execute(sql, params).fetchall()


def _fence(conn: sqlite3.Connection, notification_id: int, owner: str | None) -> None:
    """LeaseLost unless ``owner`` (when given) still holds the notification's claim."""
    if owner is not None and not sqlite_claims.holds(conn, notification_id, owner):
        raise LeaseLost(f"notification {notification_id} is no longer held by this daemon (its lease ran out"
                        " and another daemon took it over)")

