"""The PostgreSQL store's SMS ledger: delivery receipts awaited, and what SMS has cost (for the caps).

The same rules as the SQLite store's (``daemon/storage/sqlite_sms.py``), shared by every daemon on the
database: a receipt posted to any daemon makes the notification due for whichever claims it, and the
caps count every daemon's sends.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from daemon.core.models import FINAL_STATUSES, NotificationUpdate, Outcome
from daemon.core.sms_caps import SmsUsage
from daemon.core.sms_receipt import CANCELLED_NOTE, Receipt, on_cancel
from daemon.core.sms_receipt import FINAL_STATUSES as FINAL_RECEIPTS
from daemon.storage import postgres_engine as engine_sql
from daemon.storage.postgres_access import PostgresAccess

if TYPE_CHECKING:
    from asyncpg import Record

    from daemon.storage.postgres_writes import Conn

_FINAL = [str(s) for s in FINAL_STATUSES]
KEEP_SENT = timedelta(days=2)
_RECEIPT = ("SELECT r.message_sid, r.notification_id, r.attempt_id, r.wait_until, r.timeout, r.status,"
            " r.error_code, r.reported_at FROM sms_receipts r JOIN attempts a ON a.id = r.attempt_id"
            " WHERE a.finished_at IS NULL")


def receipt_from_row(row: Record) -> Receipt:
    return Receipt(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7])


class PostgresSmsLedger(PostgresAccess):
    """The SMS methods of ``PostgresStore`` (mixed in): receipts and the caps' counts."""

    async def await_receipt(self, attempt_id: int, notification_id: int, message_sid: str, sent_at: datetime,
                            timeout: float, update: NotificationUpdate, now: datetime,
                            owner: str | None = None) -> None:
        until = update.next_attempt_at or now + timedelta(seconds=timeout)
        async with self._tx() as conn:
            await engine_sql.fence(conn, notification_id, owner)
            await conn.execute("UPDATE attempts SET provider_message_id = $1, started_at = $2 WHERE id = $3",
                               message_sid, sent_at, attempt_id)
            await conn.execute(
                "INSERT INTO sms_receipts (message_sid, notification_id, attempt_id, wait_until, timeout)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_sid) DO UPDATE SET wait_until = excluded.wait_until",
                message_sid, notification_id, attempt_id, until, timeout)
            waits = await conn.fetchval(
                "UPDATE notifications SET status = $1, position = $2, tries = $3, next_attempt_at = $4,"
                " claimed_by = NULL, lease_until = NULL, awaiting_ack = false, updated_at = $5"
                " WHERE id = $6 AND status <> ALL($7::text[]) RETURNING id",
                str(update.status), update.position, update.tries, until, now, notification_id, _FINAL)
            if waits is None:  # cancelled while the SMS was in flight: nothing to wait for, close it now
                await conn.execute("UPDATE attempts SET outcome = $1, error = $2, finished_at = $3 WHERE id = $4",
                                   str(Outcome.DELIVERED), CANCELLED_NOTE, now, attempt_id)
                await conn.execute("UPDATE notifications SET claimed_by = NULL, lease_until = NULL WHERE id = $1",
                                   notification_id)

    async def record_receipt(self, message_sid: str, status: str, error_code: int | None,
                             now: datetime) -> int | None:
        async with self._tx() as conn:
            row = await conn.fetchrow(
                "SELECT r.notification_id, a.finished_at IS NULL FROM sms_receipts r"
                " JOIN attempts a ON a.id = r.attempt_id WHERE r.message_sid = $1 FOR UPDATE OF r", message_sid)
            if row is None:
                return None
            if not row[1]:  # the attempt is closed (resolved, cancelled): too late, changes nothing
                return int(row[0])
            await conn.execute("UPDATE sms_receipts SET status = $1, error_code = $2, reported_at = $3"
                               " WHERE message_sid = $4", status, error_code, now, message_sid)
            if status in FINAL_RECEIPTS:
                await conn.execute(
                    "UPDATE notifications SET next_attempt_at = $1, updated_at = $1 WHERE id = $2"
                    " AND status <> ALL($3::text[]) AND (next_attempt_at IS NULL OR next_attempt_at > $1)",
                    now, row[0], _FINAL)
            return int(row[0])

    async def pending_receipt(self, notification_id: int) -> Receipt | None:
        rows = await self._all(f"{_RECEIPT} AND r.notification_id = $1 ORDER BY r.attempt_id DESC LIMIT 1",
                               notification_id)
        return receipt_from_row(rows[0]) if rows else None

    async def pending_receipts(self, limit: int = 500) -> list[Receipt]:
        rows = await self._all(f"{_RECEIPT} ORDER BY r.wait_until LIMIT $1", limit)
        return [receipt_from_row(row) for row in rows]

    async def record_sms_sent(self, recipient_id: int, now: datetime, segments: int) -> tuple[int, int]:
        day = datetime.combine(now.date(), datetime.min.time(), tzinfo=now.tzinfo)
        async with self._tx() as conn:
            await conn.execute("DELETE FROM sms_sent WHERE sent_at < $1", now - KEEP_SENT)
            # serialise the count with other daemons' sends, so exactly one sees the 80 % mark crossed
            await conn.execute("LOCK TABLE sms_sent IN SHARE ROW EXCLUSIVE MODE")
            before = await conn.fetchval("SELECT coalesce(sum(segments), 0) FROM sms_sent WHERE sent_at >= $1", day)
            await conn.execute("INSERT INTO sms_sent (recipient_id, sent_at, segments) VALUES ($1, $2, $3)",
                               recipient_id, now, segments)
        return int(before), int(before) + segments

    async def sms_usage(self, recipient_id: int, since: datetime, day_start: datetime) -> SmsUsage:
        rows = await self._all("SELECT sent_at FROM sms_sent WHERE recipient_id = $1 AND sent_at > $2",
                               recipient_id, since)
        total = await self._all("SELECT coalesce(sum(segments), 0) FROM sms_sent WHERE sent_at >= $1", day_start)
        return SmsUsage(tuple(row[0] for row in rows), int(total[0][0]))


async def end_receipt_waits(conn: Conn, notification_id: int, now: datetime) -> None:
    """The notification was cancelled: close the attempts it had waiting for a delivery receipt (see
    ``sqlite_sms.end_receipt_waits``); a claimed row's attempt is left to the engine that holds it."""
    rows = await conn.fetch(
        "SELECT r.attempt_id, r.status, r.error_code, r.reported_at FROM sms_receipts r"
        " JOIN attempts a ON a.id = r.attempt_id JOIN notifications n ON n.id = r.notification_id"
        " WHERE r.notification_id = $1 AND a.finished_at IS NULL AND n.claimed_by IS NULL", notification_id)
    for row in rows:
        outcome, note = on_cancel(row[1], row[2], row[3])
        await conn.execute("UPDATE attempts SET outcome = $1, error = $2, finished_at = $3 WHERE id = $4",
                           str(outcome), note, now, row[0])


__all__ = ["PostgresSmsLedger", "end_receipt_waits"]
