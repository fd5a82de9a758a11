"""The SQL of the Telegram bot's side of the SQLite store: opt-in link tokens and acknowledgements.

Each function is a write op: ``SqliteStore`` hands it to the group-commit writer, which runs it
inside its ``BEGIN IMMEDIATE`` transaction, so every check-then-write below is atomic. Checks come
before writes, as the writer requires.
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import datetime

from daemon.core.errors import NotFound
from daemon.core.models import Channel, Status
from daemon.core.store import AckOutcome, LinkOutcome

LINK_TOKEN_RETENTION = 30 * 86_400.0
"""Seconds an expired or used token is kept, so that opening it says "expired" / "used", not "unknown"."""

_ACKABLE = (str(Status.QUEUED), str(Status.SENDING), str(Status.HELD), str(Status.DELIVERED))


def token_hash(token: str) -> str:
    """What is stored instead of the token: tokens carry 192 random bits, so a plain SHA-256 will do."""
    return hashlib.sha256(token.encode()).hexdigest()


def insert_link_token(
    conn: sqlite3.Connection, recipient_id: int, token: str, now: datetime, expires_at: datetime
) -> None:
    if conn.execute("SELECT 1 FROM recipients WHERE id = ?", (recipient_id,)).fetchone() is None:
        raise NotFound(f"recipient {recipient_id} does not exist")
    conn.execute("DELETE FROM link_tokens WHERE expires_at < ?", (now.timestamp() - LINK_TOKEN_RETENTION,))
    conn.execute(
        "INSERT INTO link_tokens (token_hash, recipient_id, created_at, expires_at) VALUES (?,?,?,?)",
        (token_hash(token), recipient_id, now.timestamp(), expires_at.timestamp()),
    )


def redeem_link_token(
    conn: sqlite3.Connection, token: str, chat_id: int, now: datetime
) -> tuple[LinkOutcome, int | None, int | None]:
    """Link ``chat_id`` to the token's recipient; returns the outcome, that recipient's id and, when
    the chat is linked to someone else, that recipient's id. Only LINKED changes anything."""
    digest = token_hash(token)
    row = conn.execute(
        "SELECT recipient_id, expires_at, used_at, used_by_chat FROM link_tokens WHERE token_hash = ?", (digest,)
    ).fetchone()
    if row is None:
        return LinkOutcome.UNKNOWN, None, None
    recipient_id, expires_at, used_at, used_by_chat = row
    holder_row = conn.execute("SELECT id FROM recipients WHERE telegram_chat_id = ?", (chat_id,)).fetchone()
    holder = holder_row[0] if holder_row else None
    if used_at is not None:
        # the same /start delivered twice (an update not confirmed before a restart) is no refusal
        same = used_by_chat == chat_id and holder == recipient_id
        return (LinkOutcome.ALREADY_LINKED if same else LinkOutcome.USED), recipient_id, None
    if expires_at <= now.timestamp():
        return LinkOutcome.EXPIRED, recipient_id, None
    if holder is not None and holder != recipient_id:
        return LinkOutcome.CHAT_TAKEN, recipient_id, holder
    opt_out_row = conn.execute("SELECT opt_out FROM recipients WHERE id = ?", (recipient_id,)).fetchone()
    # opening the link is opting in: Telegram is taken off the opt-out list and the blocked flag cleared
    opt_out = ",".join(c for c in (opt_out_row[0] if opt_out_row else "").split(",") if c and c != Channel.TELEGRAM)
    conn.execute(
        "UPDATE link_tokens SET used_at = ?, used_by_chat = ? WHERE token_hash = ?", (now.timestamp(), chat_id, digest)
    )
    conn.execute(
        "UPDATE recipients SET telegram_chat_id = ?, telegram_blocked = 0, opt_out = ? WHERE id = ?",
        (chat_id, opt_out, recipient_id),
    )
    return LinkOutcome.LINKED, recipient_id, None


def acknowledge(conn: sqlite3.Connection, notification_id: int, chat_id: int, now: datetime) -> AckOutcome:
    """Mark a notification acknowledged from chat ``chat_id``: it must be its recipient's chat and the
    notification must have asked for an acknowledgement. Ends the chain: no further channel is tried."""
    row = conn.execute(
        "SELECT n.status, n.ack_timeout, r.telegram_chat_id FROM notifications n"
        " LEFT JOIN recipients r ON r.id = n.recipient_id WHERE n.id = ?",
        (notification_id,),
    ).fetchone()
    if row is None or row[1] is None or row[2] != chat_id:
        return AckOutcome.NOT_FOUND  # also when it is another chat's: nothing is revealed
    status = row[0]
    if status == Status.ACKNOWLEDGED:
        return AckOutcome.ALREADY
    if status not in _ACKABLE:
        return AckOutcome.CLOSED
    # the claim is left alone: an attempt running now finds the final status and stops there
    conn.execute(
        "UPDATE notifications SET status = ?, next_attempt_at = NULL, awaiting_ack = 0, updated_at = ? WHERE id = ?",
        (str(Status.ACKNOWLEDGED), now.timestamp(), notification_id),
    )
    return AckOutcome.ACKNOWLEDGED
