"""The SQL of the SQLite store's recipient writes: add, update, remove.

Each write function is a write op: ``SqliteStore`` hands it to the group-commit writer, which runs it
inside its ``BEGIN IMMEDIATE`` transaction, so every check-then-write below is atomic. Checks come
before writes, as the writer requires.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from daemon.core.errors import Conflict, NotFound
from daemon.core.models import FINAL_STATUSES

RECIPIENT_FIELDS = ("name", "email", "phone", "telegram_chat_id", "opt_out", "telegram_blocked", "timezone",
                    "quiet_hours")
_FINAL = ",".join(f"'{s}'" for s in sorted(FINAL_STATUSES))


def column_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` as column values (opt_out as comma-separated text, telegram_blocked as 0 / 1);
    ValueError names any that is not a recipient field."""
    unknown = set(fields) - set(RECIPIENT_FIELDS)
    if unknown:
        raise ValueError(f"not recipient fields: {sorted(unknown)}")
    values = dict(fields)
    if "opt_out" in values:
        values["opt_out"] = ",".join(sorted(str(c) for c in values["opt_out"]))
    if "telegram_blocked" in values:
        values["telegram_blocked"] = int(bool(values["telegram_blocked"]))
    return values


def insert_recipient(
    conn: sqlite3.Connection, name: str, email: str | None, phone: str | None, telegram_chat_id: int | None,
    now: float,
) -> int:
    """Add a recipient; returns its id. Conflict when the chat is linked to another recipient."""
    if telegram_chat_id is not None:
        ensure_chat_free(conn, telegram_chat_id, None)
    cur = conn.execute(
        "INSERT INTO recipients (name, email, phone, telegram_chat_id, created_at) VALUES (?,?,?,?,?)",
        (name, email, phone, telegram_chat_id, now),
    )
    return cur.lastrowid or 0


def update_recipient(conn: sqlite3.Connection, recipient_id: int, values: Mapping[str, Any]) -> None:
    """Set the columns in ``values`` (from ``column_values``)."""
    if conn.execute("SELECT 1 FROM recipients WHERE id = ?", (recipient_id,)).fetchone() is None:
        raise NotFound(f"recipient {recipient_id} does not exist")
    if values.get("telegram_chat_id") is not None:
        ensure_chat_free(conn, values["telegram_chat_id"], recipient_id)
    if values:
        assignments = ", ".join(f"{k} = ?" for k in values)
        conn.execute(f"UPDATE recipients SET {assignments} WHERE id = ?", (*values.values(), recipient_id))


def delete_recipient(conn: sqlite3.Connection, recipient_id: int) -> None:
    """Remove a recipient that has no unfinished notification (Conflict otherwise)."""
    pending = conn.execute(
        f"SELECT count(*) FROM notifications WHERE recipient_id = ? AND status NOT IN ({_FINAL})",
        (recipient_id,),
    ).fetchone()
    if pending and pending[0]:
        raise Conflict(f"recipient {recipient_id} has {pending[0]} unfinished notification(s); cancel them first")
    cur = conn.execute("DELETE FROM recipients WHERE id = ?", (recipient_id,))
    if cur.rowcount == 0:
        raise NotFound(f"recipient {recipient_id} does not exist")


def ensure_chat_free(conn: sqlite3.Connection, chat_id: int, recipient_id: int | None) -> None:
    """Conflict when Telegram chat ``chat_id`` is linked to a recipient other than ``recipient_id``."""
    row = conn.execute("SELECT id FROM recipients WHERE telegram_chat_id = ?", (chat_id,)).fetchone()
    if row is not None and row[0] != recipient_id:
        raise Conflict(f"Telegram chat {chat_id} is already linked to recipient {row[0]}")
