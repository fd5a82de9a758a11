"""The SQL of the SQLite store's notification operations (the delivery engine's are in ``sqlite``).

``insert_notification``, ``cancel`` and ``redrive`` are write ops: ``SqliteStore`` hands them to the
group-commit writer, which runs them inside its ``BEGIN IMMEDIATE`` transaction, so every
check-then-write below is atomic. Checks come before writes, as the writer requires.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from daemon.core.errors import Conflict, NotFound
from daemon.core.models import FINAL_STATUSES, NewNotification, Outcome, Status
from daemon.storage import sqlite_groups
from daemon.storage.sqlite_rows import to_timestamp

QUEUED = str(Status.QUEUED)


def insert_notification(conn: sqlite3.Connection, new: NewNotification, ts: float) -> tuple[int, bool]:
    """Queue ``new``: its new id and True, or the id of the notification with the same idempotency key
    and False (Conflict when that one was asked with another payload). NotFound when the recipient
    does not exist. It writes with one statement and raises only when that wrote nothing (the writer
    runs it as a ``OneStatement``, without a savepoint). The new row is not read back:
    ``sqlite_rows.inserted_notification`` builds it from ``new`` (``RETURNING *`` was half of the
    writer thread's CPU per send)."""
    if new.idempotency_key is not None:
        same = conn.execute("SELECT * FROM notifications WHERE idempotency_key = ?", (new.idempotency_key,)).fetchall()
        if same:
            differs = payload_differences(same[0], new)
            if differs:
                raise Conflict(
                    f"idempotency_key {new.idempotency_key!r} was used for notification {same[0]['id']} with another"
                    f" {', '.join(differs)}: a repeat must send the same request; use a new key for a new notification"
                )
            return int(same[0]["id"]), False
        sqlite_groups.unused_key(conn, new.idempotency_key)
    # one statement checks the recipient and inserts (hops cost ~0.1 ms each)
    cursor = conn.execute(
        "INSERT INTO notifications (recipient_id, text, subject, chain, status, idempotency_key,"
        " next_attempt_at, deadline, ack_timeout, created_at, updated_at, priority)"
        " SELECT ?,?,?,?,?,?,?,?,?,?,?,? WHERE EXISTS (SELECT 1 FROM recipients WHERE id = ?)",
        (
            new.recipient_id,
            new.text,
            new.subject,
            ",".join(new.chain),
            QUEUED,
            new.idempotency_key,
            ts,
            to_timestamp(new.deadline),
            new.ack_timeout,
            ts,
            ts,
            new.priority.rank,
            new.recipient_id,
        ),
    )
    if cursor.rowcount != 1 or cursor.lastrowid is None:
        raise NotFound(f"recipient {new.recipient_id} does not exist")
    return cursor.lastrowid, True


TIME_TOLERANCE = 0.001  # seconds: timestamps are stored as REAL


def payload_differences(row: sqlite3.Row, new: NewNotification) -> list[str]:
    """The request fields in which ``new`` differs from the stored notification ``row`` (same key).

    ``expires_in`` is relative: a retry a second later sets a later deadline, so it is compared with
    the stored deadline's distance from the stored creation time (how the first request set it)."""
    differs = [name for name, stored, given in (
        ("recipient_id", row["recipient_id"], new.recipient_id),
        ("message", row["text"], new.text),
        ("subject", row["subject"], new.subject),
        ("chain", row["chain"], ",".join(new.chain)),
        ("ack_timeout", row["ack_timeout"], new.ack_timeout),
        ("priority", row["priority"], new.priority.rank),
    ) if stored != given]
    deadline: float | None = row["deadline"]
    if new.expires_in is not None:
        same_deadline = deadline is not None and _close(deadline - row["created_at"], new.expires_in)
    elif new.deadline is None or deadline is None:
        same_deadline = new.deadline is None and deadline is None
    else:
        same_deadline = _close(deadline, new.deadline.timestamp())
    if not same_deadline:
        differs.append("expires_in" if new.expires_in is not None else "deadline")
    return differs


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= TIME_TOLERANCE


def set_status_if(
    conn: sqlite3.Connection, notification_id: int, ts: float, allowed: tuple[str, ...], sets: str, verb: str
) -> None:
    """Apply the assignments ``sets`` when the notification's status is one of ``allowed``; Conflict
    (saying it cannot ``verb`` it) otherwise."""
    row = conn.execute("SELECT status FROM notifications WHERE id = ?", (notification_id,)).fetchone()
    if row is None:
        raise NotFound(f"notification {notification_id} does not exist")
    if row[0] not in allowed:
        raise Conflict(f"notification {notification_id} is {row[0]}: cannot {verb} it")
    conn.execute(f"UPDATE notifications SET {sets}, updated_at = ? WHERE id = ?", (ts, notification_id))


def cancel(conn: sqlite3.Connection, notification_id: int, ts: float) -> None:
    """Cancel a queued, sending or held notification (Conflict when it is final)."""
    set_status_if(
        conn,
        notification_id,
        ts,
        (str(Status.QUEUED), str(Status.SENDING), str(Status.HELD)),
        f"status = '{Status.CANCELLED}', next_attempt_at = NULL",
        "cancel",
    )


def redrive(conn: sqlite3.Connection, notification_id: int, ts: float) -> None:
    """Queue a failed or expired notification again, from the start of its chain, due at ``ts``."""
    set_status_if(
        conn,
        notification_id,
        ts,
        (str(Status.FAILED), str(Status.EXPIRED)),
        f"status = '{Status.QUEUED}', position = 0, tries = 0, deadline = NULL, awaiting_ack = 0,"
        f" next_attempt_at = {ts!r}",
        "retry",
    )


def release_claim(conn: sqlite3.Connection, notification_id: int, ts: float, due: float, error: str) -> None:
    """The engine abandoned its walk of this notification (an unexpected error): record its open attempt
    as interrupted, as a restart would, and hand the row back to the timer, due at ``due``."""
    conn.execute(
        "UPDATE attempts SET outcome = ?, finished_at = ?, error = ? WHERE notification_id = ? AND finished_at IS NULL",
        (str(Outcome.INTERRUPTED), ts, error.encode("utf-8", "backslashreplace").decode(), notification_id),
    )
    final = ",".join("?" * len(FINAL_STATUSES))
    conn.execute(
        f"UPDATE notifications SET claimed_by = NULL, lease_until = NULL, updated_at = ?,"
        f" next_attempt_at = CASE WHEN status IN ({final}) THEN next_attempt_at ELSE ? END WHERE id = ?",
        (ts, *sorted(FINAL_STATUSES), due, notification_id),
    )


def list_query(
    status: Status | None, recipient_id: int | None, limit: int, before_id: int | None, search: str | None
) -> tuple[str, tuple[Any, ...]]:
    """The SELECT of a page of notifications, newest first, and its parameters."""
    where: list[str] = []
    params: list[Any] = []
    for clause, value in (("status = ?", status), ("recipient_id = ?", recipient_id), ("id < ?", before_id)):
        if value is not None:
            where.append(clause)
            params.append(str(value) if isinstance(value, Status) else value)
    if search:
        where.append("instr(lower(text), lower(?)) > 0")
        params.append(search)
    sql = "SELECT * FROM notifications"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + " ORDER BY id DESC LIMIT ?", (*params, limit)
