"""The SQLite store's SMS ledger: delivery receipts awaited, and what SMS has cost (for the caps).

Rules (the same as PostgreSQL's, ``migrations/*/0003_sms_receipts.sql``):

* ``await_receipt`` leaves the attempt open (outcome NULL) with the provider's id and the notification
  ``sending``, released, due at the receipt timeout: a timer on disk that survives restarts;
* ``record_receipt`` keeps the last status reported; a final one makes the notification due at once
  (the engine's next claim closes the attempt through ``failover``). A receipt is pending while its
  attempt is open, so a closed attempt (resolved, interrupted, cancelled) ends the wait by itself;
* a cancel closes the attempt of a wait (``end_receipt_waits``, ``sms_receipt.on_cancel`` says how),
  and so does ``await_receipt`` for a notification cancelled while its SMS was in flight. A receipt
  for a closed attempt is known (the callback answers 200) but changes nothing.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from daemon.core.errors import LeaseLost
from daemon.core.models import FINAL_STATUSES, NotificationUpdate, Outcome
from daemon.core.sms_caps import SmsUsage
from daemon.core.sms_receipt import CANCELLED_NOTE, Receipt, on_cancel
from daemon.core.sms_receipt import FINAL_STATUSES as FINAL_RECEIPTS
from daemon.storage import sqlite_claims
from daemon.storage.sqlite_access import SqliteAccess
from daemon.storage.sqlite_rows import to_datetime

_FINAL = ",".join(f"'{s}'" for s in sorted(FINAL_STATUSES))
KEEP_SENT = timedelta(days=2)
"""``sms_sent`` rows older than this are dropped: the longest cap looks back one UTC day."""

_RECEIPT = ("SELECT r.message_sid, r.notification_id, r.attempt_id, r.wait_until, r.timeout, r.status,"
            " r.error_code, r.reported_at FROM sms_receipts r JOIN attempts a ON a.id = r.attempt_id"
            " WHERE a.finished_at IS NULL")


def receipt_from_row(row: sqlite3.Row) -> Receipt:
    wait_until = to_datetime(row[3])
    assert wait_until is not None
    return Receipt(row[0], row[1], row[2], wait_until, row[4], row[5], row[6], to_datetime(row[7]))


def await_receipt(conn: sqlite3.Connection, attempt_id: int, notification_id: int, sid: str, sent_at: float,
                  timeout: float, update: NotificationUpdate, ts: float, owner: str | None) -> None:
    if owner is not None and not sqlite_claims.holds(conn, notification_id, owner):
        raise LeaseLost(f"notification {notification_id} is no longer held by this daemon")
    until = update.next_attempt_at.timestamp() if update.next_attempt_at else ts + timeout
    conn.execute("UPDATE attempts SET provider_message_id = ?, started_at = ? WHERE id = ?",
                 (sid, sent_at, attempt_id))
    conn.execute(
        "INSERT INTO sms_receipts (message_sid, notification_id, attempt_id, wait_until, timeout)"
        " VALUES (?,?,?,?,?) ON CONFLICT (message_sid) DO UPDATE SET wait_until = excluded.wait_until",
        (sid, notification_id, attempt_id, until, timeout),
    )
    waits = conn.execute(
        "UPDATE notifications SET status = ?, position = ?, tries = ?, next_attempt_at = ?, claimed_by = NULL,"
        f" lease_until = NULL, awaiting_ack = 0, updated_at = ? WHERE id = ? AND status NOT IN ({_FINAL})",
        (str(update.status), update.position, update.tries, until, ts, notification_id),
    ).rowcount
    if not waits:  # cancelled while the SMS was in flight: nothing to wait for, close it now
        conn.execute("UPDATE attempts SET outcome = ?, error = ?, finished_at = ? WHERE id = ?",
                     (str(Outcome.DELIVERED), CANCELLED_NOTE, ts, attempt_id))
        conn.execute("UPDATE notifications SET claimed_by = NULL, lease_until = NULL WHERE id = ?", (notification_id,))


def end_receipt_waits(conn: sqlite3.Connection, notification_id: int, ts: float) -> None:
    """The notification was cancelled: close the attempts it had waiting for a delivery receipt. A claimed
    row's attempt is left to the engine that holds it (it is resolving that receipt now)."""
    rows = conn.execute(
        "SELECT r.attempt_id, r.status, r.error_code, r.reported_at FROM sms_receipts r"
        " JOIN attempts a ON a.id = r.attempt_id JOIN notifications n ON n.id = r.notification_id"
        " WHERE r.notification_id = ? AND a.finished_at IS NULL AND n.claimed_by IS NULL", (notification_id,),
    ).fetchall()
    for attempt_id, status, code, reported_at in rows:
        outcome, note = on_cancel(status, code, to_datetime(reported_at))
        conn.execute("UPDATE attempts SET outcome = ?, error = ?, finished_at = ? WHERE id = ?",
                     (str(outcome), note, ts, attempt_id))


def record_receipt(conn: sqlite3.Connection, sid: str, status: str, code: int | None, ts: float) -> int | None:
    """Keep the status reported for an open wait; returns the notification's id for any known sid (None:
    unknown). A receipt for a closed attempt (resolved, cancelled) is too late: it changes nothing."""
    row = conn.execute("SELECT r.notification_id, a.finished_at IS NULL FROM sms_receipts r"
                       " JOIN attempts a ON a.id = r.attempt_id WHERE r.message_sid = ?", (sid,)).fetchone()
    if row is None:
        return None
    notification_id, open_ = row
    if not open_:
        return int(notification_id)
    conn.execute("UPDATE sms_receipts SET status = ?, error_code = ?, reported_at = ? WHERE message_sid = ?",
                 (status, code, ts, sid))
    if status in FINAL_RECEIPTS:
        conn.execute(
            f"UPDATE notifications SET next_attempt_at = ?, updated_at = ? WHERE id = ? AND status NOT IN ({_FINAL})"
            " AND (next_attempt_at IS NULL OR next_attempt_at > ?)",
            (ts, ts, notification_id, ts),
        )
    return int(notification_id)


def record_sent(conn: sqlite3.Connection, recipient_id: int, ts: float, segments: int) -> tuple[int, int]:
    """Record one accepted SMS; returns the segments sent today before and after it."""
    day = ts - ts % 86_400
    conn.execute("DELETE FROM sms_sent WHERE sent_at < ?", (ts - KEEP_SENT.total_seconds(),))
    before = conn.execute("SELECT coalesce(sum(segments), 0) FROM sms_sent WHERE sent_at >= ?", (day,)).fetchone()[0]
    conn.execute("INSERT INTO sms_sent (recipient_id, sent_at, segments) VALUES (?,?,?)", (recipient_id, ts, segments))
    return int(before), int(before) + segments


class SqliteSmsLedger(SqliteAccess):
    """The SMS methods of ``SqliteStore`` (mixed in): receipts and the caps' counts."""

    async def await_receipt(self, attempt_id: int, notification_id: int, message_sid: str, sent_at: datetime,
                            timeout: float, update: NotificationUpdate, now: datetime,
                            owner: str | None = None) -> None:
        await self._submit(lambda conn: await_receipt(conn, attempt_id, notification_id, message_sid,
                                                      sent_at.timestamp(), timeout, update, now.timestamp(), owner))

    async def record_receipt(self, message_sid: str, status: str, error_code: int | None,
                             now: datetime) -> int | None:
        result: int | None = await self._submit(
            lambda conn: record_receipt(conn, message_sid, status, error_code, now.timestamp()))
        return result

    async def pending_receipt(self, notification_id: int) -> Receipt | None:
        rows = await self._all(f"{_RECEIPT} AND r.notification_id = ? ORDER BY r.attempt_id DESC LIMIT 1",
                               (notification_id,))
        return receipt_from_row(rows[0]) if rows else None

    async def pending_receipts(self, limit: int = 500) -> list[Receipt]:
        rows = await self._all(f"{_RECEIPT} ORDER BY r.wait_until LIMIT ?", (limit,))
        return [receipt_from_row(row) for row in rows]

    async def record_sms_sent(self, recipient_id: int, now: datetime, segments: int) -> tuple[int, int]:
        result: tuple[int, int] = await self._submit(
            lambda conn: record_sent(conn, recipient_id, now.timestamp(), segments))
        return result

    async def sms_usage(self, recipient_id: int, since: datetime, day_start: datetime) -> SmsUsage:
        rows = await self._all("SELECT sent_at FROM sms_sent WHERE recipient_id = ? AND sent_at > ?",
                               (recipient_id, since.timestamp()))
        total = await self._all("SELECT coalesce(sum(segments), 0) FROM sms_sent WHERE sent_at >= ?",
                                (day_start.timestamp(),))
        sends = tuple(at for row in rows if (at := to_datetime(row[0])) is not None)
        return SmsUsage(sends, int(total[0][0]))
