"""The SQL of the PostgreSQL store's writes for clients and the bot: recipients, notifications, opt-in
links, acknowledgements (the delivery engine's are in ``postgres_engine``).

Each function runs on a connection inside a transaction its caller opened, so every check-then-write is
atomic; rows a check depends on are locked (``FOR UPDATE`` / ``FOR KEY SHARE``), because unlike SQLite's
single writer, another daemon may be writing the same rows at the same moment.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

from daemon.core.errors import Conflict, NotFound, ValidationError
from daemon.core.groups import key_conflict
from daemon.core.models import FINAL_STATUSES, Channel, NewNotification, Status
from daemon.core.store import AckOutcome, LinkOutcome
from daemon.storage.sqlite_bot import LINK_TOKEN_RETENTION, token_hash
from daemon.storage.sqlite_recipients import RECIPIENT_FIELDS

if TYPE_CHECKING:
    from asyncpg import Record
    from asyncpg.pool import PoolConnectionProxy

Conn: TypeAlias = "PoolConnectionProxy[Record]"

FINAL = sorted(str(s) for s in FINAL_STATUSES)
_ACKABLE = [str(Status.QUEUED), str(Status.SENDING), str(Status.HELD), str(Status.DELIVERED)]
TIME_TOLERANCE = 0.001  # seconds, as the SQLite store compares (it keeps REAL timestamps)


def storable(value: str | None, field: str) -> str | None:
    """``value``, refused (naming ``field``) when it holds a NUL character: PostgreSQL text cannot."""
    if value is not None and "\x00" in value:
        raise ValidationError(field, "contains a NUL character (U+0000), which the database cannot store")
    return value


KEY_LOCK = 0x69646B79  # "idky": the advisory-lock class of idempotency keys (the key's hash is the object)


async def lock_key(conn: Conn, key: str) -> None:
    """Serialise sends with ``key`` until this transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", KEY_LOCK, key)


async def unused_key(conn: Conn, key: str) -> None:
    """A send to one recipient may not take a key a batch has (call under ``lock_key``): Conflict."""
    batch_id = await conn.fetchval("SELECT id FROM batches WHERE idempotency_key = $1", key)
    if batch_id is not None:
        raise Conflict(key_conflict(key, f"batch {batch_id} (a send to a group)"))


def clean(value: str | None) -> str | None:
    """Text the daemon writes itself (a provider's error, say) made storable: NUL and lone surrogates
    are written as escapes rather than refused, since losing the record would be worse."""
    if value is None:
        return None
    return value.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")


# -- recipients -----------------------------------------------------------------------------------

def column_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` as column values (opt_out as a sorted text[]); ValueError names any that is not a field."""
    unknown = set(fields) - set(RECIPIENT_FIELDS)
    if unknown:
        raise ValueError(f"not recipient fields: {sorted(unknown)}")
    values = dict(fields)
    if "opt_out" in values:
        values["opt_out"] = sorted(str(c) for c in values["opt_out"])
    if "telegram_blocked" in values:
        values["telegram_blocked"] = bool(values["telegram_blocked"])
    for field in ("name", "email", "phone"):
        if isinstance(values.get(field), str):
            storable(values[field], field)
    return values


async def ensure_chat_free(conn: Conn, chat_id: int, recipient_id: int | None) -> None:
    holder = await conn.fetchval("SELECT id FROM recipients WHERE telegram_chat_id = $1", chat_id)
    if holder is not None and holder != recipient_id:
        raise Conflict(f"Telegram chat {chat_id} is already linked to recipient {holder}")


async def insert_recipient(
    conn: Conn, name: str, email: str | None, phone: str | None, telegram_chat_id: int | None, now: datetime
) -> Record:
    for field, value in (("name", name), ("email", email), ("phone", phone)):
        storable(value, field)
    if telegram_chat_id is not None:
        await ensure_chat_free(conn, telegram_chat_id, None)
    row = await conn.fetchrow(
        "INSERT INTO recipients (name, email, phone, telegram_chat_id, created_at) VALUES ($1, $2, $3, $4, $5)"
        " RETURNING *",
        name, email, phone, telegram_chat_id, now,
    )
    assert row is not None
    return row


async def update_recipient(conn: Conn, recipient_id: int, values: Mapping[str, Any]) -> None:
    if await conn.fetchval("SELECT 1 FROM recipients WHERE id = $1 FOR UPDATE", recipient_id) is None:
        raise NotFound(f"recipient {recipient_id} does not exist")
    if values.get("telegram_chat_id") is not None:
        await ensure_chat_free(conn, values["telegram_chat_id"], recipient_id)
    if values:
        assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(values, start=2))
        await conn.execute(f"UPDATE recipients SET {assignments} WHERE id = $1", recipient_id, *values.values())


async def delete_recipient(conn: Conn, recipient_id: int) -> None:
    """Remove a recipient with no unfinished notification. The row lock makes a concurrent send for it
    (which takes FOR KEY SHARE on it) either finish first and be counted, or find it gone."""
    if await conn.fetchval("SELECT 1 FROM recipients WHERE id = $1 FOR UPDATE", recipient_id) is None:
        raise NotFound(f"recipient {recipient_id} does not exist")
    pending = await conn.fetchval(
        "SELECT count(*) FROM notifications WHERE recipient_id = $1 AND status <> ALL ($2::text[])",
        recipient_id, FINAL,
    )
    if pending:
        raise Conflict(f"recipient {recipient_id} has {pending} unfinished notification(s); cancel them first")
    await conn.execute("DELETE FROM recipients WHERE id = $1", recipient_id)


# -- notifications --------------------------------------------------------------------------------

async def insert_notification(conn: Conn, new: NewNotification, now: datetime) -> Record | int:
    """Queue ``new``: its new row, or the id of the notification with the same idempotency key (Conflict
    when that one was asked with another payload). A concurrent send with the same key waits for the
    first one's commit, then finds its row."""
    for field, value in (("message", new.text), ("subject", new.subject), ("idempotency_key", new.idempotency_key)):
        storable(value, field)
    if new.idempotency_key is not None:  # a key is the batch's or the notification's, never both
        await lock_key(conn, new.idempotency_key)
        await unused_key(conn, new.idempotency_key)
    row = await conn.fetchrow(
        "INSERT INTO notifications (recipient_id, text, subject, chain, status, idempotency_key,"
        " next_attempt_at, deadline, ack_timeout, created_at, updated_at, priority)"
        " SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $7, $7, $10"
        " WHERE EXISTS (SELECT 1 FROM recipients WHERE id = $1 FOR KEY SHARE)"
        " ON CONFLICT (idempotency_key) DO NOTHING RETURNING *",
        new.recipient_id, new.text, new.subject, [str(c) for c in new.chain], str(Status.QUEUED),
        new.idempotency_key, now, new.deadline, new.ack_timeout, new.priority.rank,
    )
    if row is not None:
        return row
    if new.idempotency_key is not None:
        same = await conn.fetchrow("SELECT * FROM notifications WHERE idempotency_key = $1", new.idempotency_key)
        if same is not None:
            differs = payload_differences(same, new)
            if differs:
                raise Conflict(
                    f"idempotency_key {new.idempotency_key!r} was used for notification {same['id']} with another"
                    f" {', '.join(differs)}: a repeat must send the same request; use a new key for a new notification"
                )
            return int(same["id"])
    raise NotFound(f"recipient {new.recipient_id} does not exist")


def payload_differences(row: Record, new: NewNotification) -> list[str]:
    """As ``sqlite_notifications.payload_differences``: the request fields in which ``new`` differs from
    the stored notification with the same key (``expires_in`` compared as a distance from creation)."""
    differs = [name for name, stored, given in (
        ("recipient_id", row["recipient_id"], new.recipient_id),
        ("message", row["text"], new.text),
        ("subject", row["subject"], new.subject),
        ("chain", list(row["chain"]), [str(c) for c in new.chain]),
        ("ack_timeout", row["ack_timeout"], new.ack_timeout),
        ("priority", row["priority"], new.priority.rank),
    ) if stored != given]
    deadline: datetime | None = row["deadline"]
    if new.expires_in is not None:
        same_deadline = deadline is not None and _close((deadline - row["created_at"]).total_seconds(),
                                                         new.expires_in)
    elif new.deadline is None or deadline is None:
        same_deadline = new.deadline is None and deadline is None
    else:
        same_deadline = _close(deadline.timestamp(), new.deadline.timestamp())
    if not same_deadline:
        differs.append("expires_in" if new.expires_in is not None else "deadline")
    return differs


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= TIME_TOLERANCE


async def set_status_if(
    conn: Conn, notification_id: int, now: datetime, allowed: list[str], sets: str, verb: str
) -> None:
    """Apply the assignments ``sets`` ($2 is ``now``) when the status is one of ``allowed``; Conflict otherwise."""
    status = await conn.fetchval("SELECT status FROM notifications WHERE id = $1 FOR UPDATE", notification_id)
    if status is None:
        raise NotFound(f"notification {notification_id} does not exist")
    if status not in allowed:
        raise Conflict(f"notification {notification_id} is {status}: cannot {verb} it")
    await conn.execute(f"UPDATE notifications SET {sets}, updated_at = $2 WHERE id = $1", notification_id, now)


async def cancel(conn: Conn, notification_id: int, now: datetime) -> None:
    await set_status_if(conn, notification_id, now, [str(Status.QUEUED), str(Status.SENDING), str(Status.HELD)],
                        f"status = '{Status.CANCELLED}', next_attempt_at = NULL", "cancel")


async def redrive(conn: Conn, notification_id: int, now: datetime) -> None:
    await set_status_if(
        conn, notification_id, now, [str(Status.FAILED), str(Status.EXPIRED)],
        f"status = '{Status.QUEUED}', position = 0, tries = 0, deadline = NULL, awaiting_ack = false,"
        " next_attempt_at = $2",
        "retry",
    )


def list_query(
    status: Status | None, recipient_id: int | None, limit: int, before_id: int | None, search: str | None
) -> tuple[str, list[Any]]:
    """The SELECT of a page of notifications, newest first, and its parameters."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("status = ", status), ("recipient_id = ", recipient_id), ("id < ", before_id)):
        if value is not None:
            params.append(str(value) if isinstance(value, Status) else value)
            where.append(f"{column}${len(params)}")
    if search:
        params.append(search)
        where.append(f"strpos(lower(text), lower(${len(params)})) > 0")
    sql = "SELECT * FROM notifications"
    if where:
        sql += " WHERE " + " AND ".join(where)
    params.append(limit)
    return sql + f" ORDER BY id DESC LIMIT ${len(params)}", params


# -- the Telegram bot's side ----------------------------------------------------------------------

async def insert_link_token(conn: Conn, recipient_id: int, token: str, now: datetime, expires_at: datetime) -> None:
    if await conn.fetchval("SELECT 1 FROM recipients WHERE id = $1 FOR KEY SHARE", recipient_id) is None:
        raise NotFound(f"recipient {recipient_id} does not exist")
    await conn.execute("DELETE FROM link_tokens WHERE expires_at < $1", now - timedelta(seconds=LINK_TOKEN_RETENTION))
    await conn.execute(
        "INSERT INTO link_tokens (token_hash, recipient_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        token_hash(token), recipient_id, now, expires_at,
    )


async def redeem_link_token(
    conn: Conn, token: str, chat_id: int, now: datetime
) -> tuple[LinkOutcome, int | None, int | None]:
    """As ``sqlite_bot.redeem_link_token``; the token's row lock makes a /start delivered to two daemons
    at once redeem it once (the second finds it used by the same chat: ALREADY_LINKED)."""
    digest = token_hash(token)
    row = await conn.fetchrow(
        "SELECT recipient_id, expires_at, used_at, used_by_chat FROM link_tokens WHERE token_hash = $1 FOR UPDATE",
        digest,
    )
    if row is None:
        return LinkOutcome.UNKNOWN, None, None
    recipient_id: int = row["recipient_id"]
    holder = await conn.fetchval("SELECT id FROM recipients WHERE telegram_chat_id = $1", chat_id)
    if row["used_at"] is not None:
        same = row["used_by_chat"] == chat_id and holder == recipient_id
        return (LinkOutcome.ALREADY_LINKED if same else LinkOutcome.USED), recipient_id, None
    if row["expires_at"] <= now:
        return LinkOutcome.EXPIRED, recipient_id, None
    if holder is not None and holder != recipient_id:
        return LinkOutcome.CHAT_TAKEN, recipient_id, holder
    # opening the link is opting in: Telegram is taken off the opt-out list and the blocked flag cleared
    await conn.execute("UPDATE link_tokens SET used_at = $2, used_by_chat = $3 WHERE token_hash = $1",
                       digest, now, chat_id)
    await conn.execute(
        "UPDATE recipients SET telegram_chat_id = $2, telegram_blocked = false,"
        " opt_out = array_remove(opt_out, $3) WHERE id = $1",
        recipient_id, chat_id, str(Channel.TELEGRAM),
    )
    return LinkOutcome.LINKED, recipient_id, None


async def acknowledge(conn: Conn, notification_id: int, chat_id: int, now: datetime) -> AckOutcome:
    """As ``sqlite_bot.acknowledge``: only the recipient's chat, only a notification that asked for it."""
    row = await conn.fetchrow(
        "SELECT n.status, n.ack_timeout, r.telegram_chat_id FROM notifications n"
        " LEFT JOIN recipients r ON r.id = n.recipient_id WHERE n.id = $1 FOR UPDATE OF n",
        notification_id,
    )
    if row is None or row["ack_timeout"] is None or row["telegram_chat_id"] != chat_id:
        return AckOutcome.NOT_FOUND  # also when it is another chat's: nothing is revealed
    if row["status"] == Status.ACKNOWLEDGED:
        return AckOutcome.ALREADY
    if row["status"] not in _ACKABLE:
        return AckOutcome.CLOSED
    # the claim is left alone: an attempt running now finds the final status and stops there
    await conn.execute(
        "UPDATE notifications SET status = $2, next_attempt_at = NULL, awaiting_ack = false, updated_at = $3"
        " WHERE id = $1",
        notification_id, str(Status.ACKNOWLEDGED), now,
    )
    return AckOutcome.ACKNOWLEDGED
