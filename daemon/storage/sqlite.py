"""SQLite store (WAL). All writes go through one group-commit writer on a thread of its own; reads use a
second connection so they never wait behind a write transaction.

This module holds the lifecycle, the reads and the delivery engine's writes; the other writes' SQL is in
``sqlite_recipients``, ``sqlite_notifications``, ``sqlite_bot`` and ``sqlite_maintenance``, the row
converters in ``sqlite_rows``."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from daemon.core.errors import NotFound, StorageError
from daemon.core.models import (
    Attempt,
    NewNotification,
    Notification,
    Recipient,
    Status,
)
from daemon.core.store import (
    AckOutcome,
    AckResult,
    ChannelActivity,
    LinkOutcome,
    LinkRedemption,
    Member,
)
from daemon.storage import (
    sqlite_bot,
    sqlite_claims,
    sqlite_cluster,
    sqlite_health,
    sqlite_maintenance,
    sqlite_notifications,
    sqlite_recipients,
    sqlite_schema,
    sqlite_sms,
)
from daemon.storage.sqlite_engine import SqliteEngineSide
from daemon.storage.sqlite_groups import SqliteGroups, prune_batches
from daemon.storage.sqlite_recipients import RECIPIENT_FIELDS
from daemon.storage.sqlite_rows import (
    attempt_from_row,
    inserted_notification,
    notification_from_row,
    recipient_from_row,
)
from daemon.storage.sqlite_sms import SqliteSmsLedger
from daemon.storage.writer import GroupCommitWriter, OneStatement, WriteConnection

__all__ = ["FINAL", "RECIPIENT_FIELDS", "SqliteStore"]

log = logging.getLogger(__name__)

FINAL = tuple(str(s) for s in (Status.DELIVERED, Status.ACKNOWLEDGED, Status.FAILED, Status.CANCELLED, Status.EXPIRED))


class SqliteStore(SqliteEngineSide, SqliteSmsLedger, SqliteGroups):
    """The SQLite implementation of ``daemon.core.store.Store``."""

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        self.path = path
        self._synchronous = synchronous
        self._write: WriteConnection | None = None
        self._read: aiosqlite.Connection | None = None
        self._writer: GroupCommitWriter | None = None
        self._presence = sqlite_claims.OwnerPresence(path)
        self._dead_owners: set[str] = set()  # claims found while alone with the file: their daemons are gone

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            sqlite_maintenance.create_private(self.path)  # 0600 in 0700 (SQLite would make it 0644)
            alone = self._presence.acquire()
            self._write = await WriteConnection.open(self.path, self._configure)
            await self._write.run(self._prepare)
            if alone:
                self._dead_owners = await self._write.run(sqlite_claims.current_owners)
            self._presence.share()
            self._read = await self._connect()
        except StorageError:
            await self.close()  # an open aiosqlite connection is a thread that keeps the process alive
            raise
        except sqlite3.DatabaseError as exc:
            await self.close()
            raise StorageError(f"{self.path}: cannot open the database: {exc}") from None
        except OSError as exc:
            await self.close()
            raise StorageError(f"{self.path}: cannot create the database: {exc.strerror or exc}") from None
        self._writer = GroupCommitWriter(self._write)
        self._writer.start()

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            for pragma in self._pragmas():
                await conn.execute(pragma)
        except BaseException:
            await conn.close()  # its thread would keep the process alive after "cannot start"
            raise
        return conn

    def _pragmas(self) -> tuple[str, ...]:
        return ("PRAGMA busy_timeout = 5000", f"PRAGMA synchronous = {self._synchronous}", "PRAGMA foreign_keys = ON")

    def _configure(self, raw: sqlite3.Connection) -> None:
        for pragma in self._pragmas():
            raw.execute(pragma)

    def _prepare(self, raw: sqlite3.Connection) -> None:
        sqlite_schema.prepare(raw, self.path)

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        if self._read is not None:
            await self._read.close()
        if self._write is not None:
            await self._write.close()
        self._read = self._write = None
        self._presence.release()

    @property
    def _r(self) -> aiosqlite.Connection:
        if self._read is None:
            raise StorageError("storage is not open")
        return self._read

    async def _submit(self, op: Any) -> Any:
        if self._writer is None:
            raise StorageError("storage is not open")
        return await self._writer.submit(op)

    async def _one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        rows = await self._r.execute_fetchall(sql, params)  # one thread hop, not three
        return next(iter(rows), None)

    async def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return list(await self._r.execute_fetchall(sql, params))

    # -- recipients ------------------------------------------------------------------------

    async def add_recipient(
        self, name: str, email: str | None, phone: str | None, telegram_chat_id: int | None
    ) -> Recipient:
        now = datetime.now(UTC).timestamp()
        new_id = await self._submit(
            lambda conn: sqlite_recipients.insert_recipient(conn, name, email, phone, telegram_chat_id, now)
        )
        return await self._must_recipient(new_id)

    async def get_recipient(self, recipient_id: int) -> Recipient | None:
        row = await self._one("SELECT * FROM recipients WHERE id = ?", (recipient_id,))
        return recipient_from_row(row) if row else None

    async def get_recipients(self, recipient_ids: Collection[int]) -> dict[int, Recipient]:
        ids = [int(i) for i in recipient_ids]
        if not ids:
            return {}
        rows = await self._all("SELECT * FROM recipients WHERE id IN (SELECT value FROM json_each(?))",
                               (json.dumps(ids),))
        return {r.id: r for r in map(recipient_from_row, rows)}

    async def get_recipient_by_chat(self, chat_id: int) -> Recipient | None:
        row = await self._one("SELECT * FROM recipients WHERE telegram_chat_id = ?", (chat_id,))
        return recipient_from_row(row) if row else None

    async def _must_recipient(self, recipient_id: int) -> Recipient:
        recipient = await self.get_recipient(recipient_id)
        if recipient is None:
            raise NotFound(f"recipient {recipient_id} does not exist")
        return recipient

    async def list_recipients(self) -> list[Recipient]:
        return [recipient_from_row(r) for r in await self._all("SELECT * FROM recipients ORDER BY id")]

    async def update_recipient(self, recipient_id: int, fields: dict[str, Any]) -> Recipient:
        values = sqlite_recipients.column_values(fields)
        await self._submit(lambda conn: sqlite_recipients.update_recipient(conn, recipient_id, values))
        return await self._must_recipient(recipient_id)

    async def remove_recipient(self, recipient_id: int) -> None:
        await self._submit(lambda conn: sqlite_recipients.delete_recipient(conn, recipient_id))

    async def set_telegram_blocked(self, recipient_id: int, blocked: bool) -> Recipient:
        return await self.update_recipient(recipient_id, {"telegram_blocked": blocked})

    # -- notifications ---------------------------------------------------------------------

    async def create_notification(self, new: NewNotification, now: datetime) -> tuple[Notification, bool]:
        ts = now.timestamp()

        notification_id, created = await self._submit(
            OneStatement(lambda conn: sqlite_notifications.insert_notification(conn, new, ts)))
        if created:
            return inserted_notification(notification_id, new, ts), True
        existing = await self.get_notification(notification_id)
        assert existing is not None
        return existing, False

    async def get_notification(self, notification_id: int) -> Notification | None:
        row = await self._one("SELECT * FROM notifications WHERE id = ?", (notification_id,))
        if row is None:
            return None
        attempts = await self._all("SELECT * FROM attempts WHERE notification_id = ? ORDER BY id", (notification_id,))
        return notification_from_row(row, tuple(attempt_from_row(a) for a in attempts))

    async def list_notifications(
        self,
        status: Status | None = None,
        recipient_id: int | None = None,
        limit: int = 50,
        before_id: int | None = None,
        search: str | None = None,
    ) -> list[Notification]:
        sql, params = sqlite_notifications.list_query(status, recipient_id, limit, before_id, search)
        rows = await self._all(sql, params)
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        attempts: dict[int, list[Attempt]] = {i: [] for i in ids}
        marks = ",".join("?" * len(ids))
        for a in await self._all(f"SELECT * FROM attempts WHERE notification_id IN ({marks}) ORDER BY id", tuple(ids)):
            attempts[a["notification_id"]].append(attempt_from_row(a))
        return [notification_from_row(r, tuple(attempts[r["id"]])) for r in rows]

    async def cancel(self, notification_id: int, now: datetime) -> Notification:
        def op(conn: sqlite3.Connection) -> None:
            sqlite_notifications.cancel(conn, notification_id, now.timestamp())
            sqlite_sms.end_receipt_waits(conn, notification_id, now.timestamp())  # the SMS ledger's rule

        await self._submit(op)
        return await self._must_notification(notification_id)

    async def redrive(self, notification_id: int, now: datetime) -> Notification:
        await self._submit(lambda conn: sqlite_notifications.redrive(conn, notification_id, now.timestamp()))
        return await self._must_notification(notification_id)

    async def _must_notification(self, notification_id: int) -> Notification:
        notification = await self.get_notification(notification_id)
        assert notification is not None
        return notification

    async def create_link_token(self, recipient_id: int, token: str, now: datetime, expires_at: datetime) -> None:
        await self._submit(lambda conn: sqlite_bot.insert_link_token(conn, recipient_id, token, now, expires_at))

    async def redeem_link_token(self, token: str, chat_id: int, now: datetime) -> LinkRedemption:
        outcome: LinkOutcome
        outcome, recipient_id, holder_id = await self._submit(
            lambda conn: sqlite_bot.redeem_link_token(conn, token, chat_id, now)
        )
        recipient = await self.get_recipient(recipient_id) if recipient_id is not None else None
        holder = await self.get_recipient(holder_id) if holder_id is not None else None
        return LinkRedemption(outcome, recipient, holder)

    async def acknowledge(self, notification_id: int, chat_id: int, now: datetime) -> AckResult:
        outcome = await self._submit(lambda conn: sqlite_bot.acknowledge(conn, notification_id, chat_id, now))
        if outcome is AckOutcome.NOT_FOUND:  # perhaps another chat's: say nothing about it
            return AckResult(outcome)
        return AckResult(outcome, await self.get_notification(notification_id))

    # -- operators -------------------------------------------------------------------------

    @property
    def location(self) -> str:
        return str(self.path)

    async def backup(self, path: Path) -> int:
        """A consistent online copy at the new file ``path`` (SQLite backup API); its size in bytes."""
        if self._read is None:
            raise StorageError("storage is not open")
        return await sqlite_maintenance.backup(self.path, path, self.path.parent / "backups")

    async def prune(self, before: datetime) -> int:
        """Delete final notifications last updated before ``before`` (and their attempts)."""
        total = 0
        while (deleted := await self._submit(lambda conn: sqlite_maintenance.prune_slice(conn, before))) > 0:
            total += deleted
            if deleted < sqlite_maintenance.PRUNE_SLICE:
                break
        await self._submit(lambda conn: prune_batches(conn, before.timestamp()))
        return total

    async def get_paused(self) -> bool:
        row = await self._one("SELECT paused FROM cluster_state WHERE id = 1")
        return bool(row and row[0])

    async def set_paused(self, paused: bool, now: datetime, by: str) -> None:
        await self._submit(lambda conn: conn.execute(
            "UPDATE cluster_state SET paused = ?, changed_by = ?, changed_at = ? WHERE id = 1",
            (int(paused), by, now.timestamp())))

    # -- the cluster's bookkeeping (its SQL is in daemon.storage.sqlite_cluster) ----------------

    async def heartbeat(self, owner: str, started_at: datetime, now: datetime, stale_before: datetime) -> None:
        await self._submit(lambda conn: sqlite_cluster.heartbeat(conn, owner, started_at, now, stale_before))

    async def leave(self, owner: str) -> None:
        await self._submit(lambda conn: sqlite_cluster.leave(conn, owner))

    async def members(self) -> list[Member]:
        now = datetime.now(UTC).timestamp()
        leaders = await self._all("SELECT role, owner FROM cluster_leaders WHERE lease_until > ?", (now,))
        rows = await self._all("SELECT * FROM cluster_members ORDER BY started_at, id")
        return sqlite_cluster.members(leaders, rows)

    async def lead(self, role: str, owner: str, now: datetime, until: datetime) -> bool:
        return bool(await self._submit(lambda conn: sqlite_cluster.lead(conn, role, owner, now, until)))

    async def first_time_update(self, update_id: int, now: datetime) -> bool:
        return bool(await self._submit(lambda conn: sqlite_cluster.first_time_update(conn, update_id, now)))

    async def ping(self) -> None:
        """Raise StorageError (or sqlite3.Error) unless the database answers a read; for ``/readyz``."""
        if self._writer is None:
            raise StorageError("storage is not open")
        await self._one("SELECT 1 FROM notifications LIMIT 1")

    async def counts_by_status(self) -> dict[str, int]:
        rows = await self._all("SELECT status, count(*) FROM notifications GROUP BY status")
        return {r[0]: r[1] for r in rows}

    async def channel_health(self, since: datetime) -> dict[str, dict[str, int]]:
        rows = await self._all(
            "SELECT channel, outcome, count(*) FROM attempts WHERE finished_at >= ? GROUP BY channel, outcome",
            (since.timestamp(),),
        )
        health: dict[str, dict[str, int]] = {}
        for channel, outcome, count in rows:
            health.setdefault(channel, {})[outcome] = count
        return health

    async def channel_activity(self, since: datetime, buckets: int, step: float) -> dict[str, ChannelActivity]:
        """Attempts per channel, bucket and outcome from ``since``, and recent call durations (sqlite_health)."""
        return await sqlite_health.channel_activity(self._r, since, buckets, step)
