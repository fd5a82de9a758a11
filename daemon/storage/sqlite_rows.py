"""Rows of the SQLite store turned into models: timestamps are REAL seconds since the epoch (UTC),
channel lists are comma-separated text."""

from __future__ import annotations

import math
import sqlite3
from datetime import UTC, datetime

from daemon.core.models import (
    MAX_WAIT,
    Attempt,
    Channel,
    NewNotification,
    Notification,
    Outcome,
    Priority,
    Recipient,
    Status,
)


def to_timestamp(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def to_datetime(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def to_seconds(value: float | None) -> float | None:
    """A stored duration, held to ``MAX_WAIT``: rows written before the edge refused ``inf`` or ``1e12``
    would otherwise overflow the engine's datetime arithmetic and make the HTTP API emit ``Infinity``."""
    if value is None or (math.isfinite(value) and value <= MAX_WAIT.total_seconds()):
        return value
    return MAX_WAIT.total_seconds()


def recipient_from_row(row: sqlite3.Row) -> Recipient:
    return Recipient(
        id=row["id"],
        name=row["name"],
        email=row["email"],
        phone=row["phone"],
        telegram_chat_id=row["telegram_chat_id"],
        opt_out=frozenset(Channel(c) for c in row["opt_out"].split(",") if c),
        telegram_blocked=bool(row["telegram_blocked"]),
        timezone=row["timezone"],
        quiet_hours=row["quiet_hours"],
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
    )


def attempt_from_row(row: sqlite3.Row) -> Attempt:
    return Attempt(
        id=row["id"],
        notification_id=row["notification_id"],
        channel=Channel(row["channel"]),
        outcome=Outcome(row["outcome"]) if row["outcome"] else None,
        error=row["error"],
        provider_message_id=row["provider_message_id"],
        started_at=datetime.fromtimestamp(row["started_at"], UTC),
        finished_at=to_datetime(row["finished_at"]),
        retry_at=to_datetime(row["retry_at"]),
    )


def inserted_notification(notification_id: int, new: NewNotification, ts: float) -> Notification:
    """The notification ``insert_notification`` stored for ``new`` at ``ts``, as ``notification_from_row``
    would read it back (times through the same REAL seconds), without reading it: a send's reply."""
    at = datetime.fromtimestamp(ts, UTC)
    return Notification(
        id=notification_id,
        recipient_id=new.recipient_id,
        text=new.text,
        subject=new.subject,
        chain=tuple(new.chain),
        status=Status.QUEUED,
        idempotency_key=new.idempotency_key,
        position=0,
        tries_on_channel=0,
        next_attempt_at=at,
        created_at=at,
        updated_at=at,
        deadline=to_datetime(to_timestamp(new.deadline)),
        ack_timeout=None if new.ack_timeout is None else to_seconds(float(new.ack_timeout)),  # a REAL column
        priority=new.priority,
    )


def notification_from_row(row: sqlite3.Row, attempts: tuple[Attempt, ...] = ()) -> Notification:
    return Notification(
        id=row["id"],
        recipient_id=row["recipient_id"],
        text=row["text"],
        subject=row["subject"],
        chain=tuple(Channel(c) for c in row["chain"].split(",")),
        status=Status(row["status"]),
        idempotency_key=row["idempotency_key"],
        position=row["position"],
        tries_on_channel=row["tries"],
        next_attempt_at=to_datetime(row["next_attempt_at"]),
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
        updated_at=datetime.fromtimestamp(row["updated_at"], UTC),
        deadline=to_datetime(row["deadline"]),
        ack_timeout=to_seconds(row["ack_timeout"]),
        attempts=attempts,
        priority=Priority.from_rank(row["priority"]),
        batch_id=row["batch_id"],
    )
