"""Rows of the PostgreSQL store turned into models: times are timestamptz (aware datetimes), channel
lists are ``text[]``, flags are booleans."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from daemon.core.models import Attempt, Channel, Notification, Outcome, Priority, Recipient, Status

if TYPE_CHECKING:
    from asyncpg import Record

Row: TypeAlias = "Record"


def recipient_from_row(row: Row) -> Recipient:
    return Recipient(
        id=row["id"],
        name=row["name"],
        email=row["email"],
        phone=row["phone"],
        telegram_chat_id=row["telegram_chat_id"],
        opt_out=frozenset(Channel(c) for c in row["opt_out"]),
        telegram_blocked=row["telegram_blocked"],
        timezone=row["timezone"],
        quiet_hours=row["quiet_hours"],
        created_at=row["created_at"],
    )


def attempt_from_row(row: Row) -> Attempt:
    return Attempt(
        id=row["id"],
        notification_id=row["notification_id"],
        channel=Channel(row["channel"]),
        outcome=Outcome(row["outcome"]) if row["outcome"] else None,
        error=row["error"],
        provider_message_id=row["provider_message_id"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        retry_at=row["retry_at"],
    )


def notification_from_row(row: Row, attempts: tuple[Attempt, ...] = ()) -> Notification:
    return Notification(
        id=row["id"],
        recipient_id=row["recipient_id"],
        text=row["text"],
        subject=row["subject"],
        chain=tuple(Channel(c) for c in row["chain"]),
        status=Status(row["status"]),
        idempotency_key=row["idempotency_key"],
        position=row["position"],
        tries_on_channel=row["tries"],
        next_attempt_at=row["next_attempt_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        deadline=row["deadline"],
        ack_timeout=row["ack_timeout"],
        attempts=attempts,
        priority=Priority.from_rank(row["priority"]),
        batch_id=row["batch_id"],
    )
