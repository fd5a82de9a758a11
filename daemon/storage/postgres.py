"""PostgreSQL store (asyncpg): one database that any number of daemons share.

Every write that a client gets an answer for is committed before the answer: single statements run in
autocommit, the others in a transaction that has committed when the call returns. Writes that check
before they write lock the rows they check, since another daemon may be writing them at the same moment.
Where the SQL lives: the schema and the claim rules in ``migrations/postgres/``, the clients' and the
bot's writes in ``postgres_writes``, the engine's in ``postgres_engine``, the row converters in
``postgres_rows``, connecting and upgrading in ``postgres_schema``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.core.errors import Conflict, NotFound, StorageError
from daemon.core.models import (
    FINAL_STATUSES,
    TIMED_OUTCOMES,
    Attempt,
    AttemptRecord,
    Channel,
    NewNotification,
    Notification,
    NotificationUpdate,
    Outcome,
    Recipient,
    Skip,
    Status,
)
from daemon.core.store import AckOutcome, AckResult, ChannelActivity, LinkRedemption, Member
from daemon.database_url import PostgresUrl
from daemon.storage import postgres_cluster as cluster_sql
from daemon.storage import postgres_engine as engine_sql
from daemon.storage import postgres_sms
from daemon.storage import postgres_writes as sql
from daemon.storage.postgres_groups import PostgresGroups
from daemon.storage.postgres_ratelimit import PostgresRateLimits
from daemon.storage.postgres_rows import attempt_from_row, notification_from_row, recipient_from_row
from daemon.storage.postgres_schema import connect_pool, migrate, translate
from daemon.storage.postgres_sms import PostgresSmsLedger

if TYPE_CHECKING:
    import asyncpg
    from asyncpg import Record

    from daemon.storage.postgres_writes import Conn

__all__ = ["BackupUnsupported", "PostgresStore"]

PRUNE_SLICE = 2000
MAX_DURATIONS = 10_000  # per channel, as sqlite_health: enough for a stable p95, bounded however busy


class BackupUnsupported(Conflict):
    """``fnotify backup`` copies the SQLite file; a PostgreSQL database is backed up with its own tools."""

    code = "unsupported"


class PostgresStore(PostgresSmsLedger, PostgresGroups):
    """The PostgreSQL implementation of ``daemon.storage.base.Store``."""

    def __init__(self, url: PostgresUrl, owner: str | None = None) -> None:
        self.url = url
        self.owner = owner  # the daemon id its writes' NOTIFY hints carry (fnotify.daemon)
        self._pool: asyncpg.Pool[Record] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect (StorageUnreachable, naming ``[storage] url``, when the server cannot be reached) and
        create or upgrade the schema."""
        pool = await connect_pool(self.url, self.owner)
        try:
            with translate(f"[storage] url: preparing the schema in {self.url.display}"):
                async with pool.acquire() as conn:
                    await migrate(conn, self.url.display)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @property
    def location(self) -> str:
        return self.url.display

    def rate_limits(self, clock: Callable[[], float] | None = None) -> PostgresRateLimits:
        """The rate limits every daemon on this database shares, on the server's clock (or ``clock``)."""
        return PostgresRateLimits(lambda: self._p, clock)

    @property
    def _p(self) -> asyncpg.Pool[Record]:
        if self._pool is None:
            raise StorageError("storage is not open")
        return self._pool

    @asynccontextmanager
    async def _tx(self, what: str = "database write") -> AsyncIterator[Conn]:
        """A connection in a transaction; driver errors become StorageError (or Conflict)."""
        with translate(what):
            async with self._p.acquire() as conn, conn.transaction():
                yield conn

    async def _one(self, query: str, *args: Any) -> Record | None:
        with translate("database read"):
            return await self._p.fetchrow(query, *args)

    async def _all(self, query: str, *args: Any) -> list[Record]:
        with translate("database read"):
            return await self._p.fetch(query, *args)

    # -- recipients ------------------------------------------------------------------------

    async def add_recipient(
        self, name: str, email: str | None, phone: str | None, telegram_chat_id: int | None
    ) -> Recipient:
        async with self._tx() as conn:
            row = await sql.insert_recipient(conn, name, email, phone, telegram_chat_id, datetime.now(UTC))
        return recipient_from_row(row)

    async def get_recipient(self, recipient_id: int) -> Recipient | None:
        row = await self._one("SELECT * FROM recipients WHERE id = $1", recipient_id)
        return recipient_from_row(row) if row else None

    async def get_recipients(self, recipient_ids: Collection[int]) -> dict[int, Recipient]:
        ids = [int(i) for i in recipient_ids]
        if not ids:
            return {}
        rows = await self._all("SELECT * FROM recipients WHERE id = ANY($1::bigint[])", ids)
        return {r.id: r for r in map(recipient_from_row, rows)}

    async def get_recipient_by_chat(self, chat_id: int) -> Recipient | None:
        row = await self._one("SELECT * FROM recipients WHERE telegram_chat_id = $1", chat_id)
        return recipient_from_row(row) if row else None

    async def _must_recipient(self, recipient_id: int) -> Recipient:
        recipient = await self.get_recipient(recipient_id)
        if recipient is None:
            raise NotFound(f"recipient {recipient_id} does not exist")
        return recipient

    async def list_recipients(self) -> list[Recipient]:
        return [recipient_from_row(r) for r in await self._all("SELECT * FROM recipients ORDER BY id")]

    async def update_recipient(self, recipient_id: int, fields: dict[str, Any]) -> Recipient:
        values = sql.column_values(fields)
        async with self._tx() as conn:
            await sql.update_recipient(conn, recipient_id, values)
        return await self._must_recipient(recipient_id)

    async def remove_recipient(self, recipient_id: int) -> None:
        async with self._tx() as conn:
            await sql.delete_recipient(conn, recipient_id)

    async def set_telegram_blocked(self, recipient_id: int, blocked: bool) -> Recipient:
        return await self.update_recipient(recipient_id, {"telegram_blocked": blocked})

    # -- notifications ---------------------------------------------------------------------

    async def create_notification(self, new: NewNotification, now: datetime) -> tuple[Notification, bool]:
        # no explicit transaction: the INSERT commits alone (BEGIN and COMMIT were two more round trips per
        # send), and the look-up of an existing key that may follow reads the committed row either way
        with translate("database write"):
            async with self._p.acquire() as conn:
                row = await sql.insert_notification(conn, new, now)
        if not isinstance(row, int):
            return notification_from_row(row), True
        existing = await self.get_notification(row)
        assert existing is not None
        return existing, False

    async def get_notification(self, notification_id: int) -> Notification | None:
        row = await self._one("SELECT * FROM notifications WHERE id = $1", notification_id)
        if row is None:
            return None
        attempts = await self._all("SELECT * FROM attempts WHERE notification_id = $1 ORDER BY id", notification_id)
        return notification_from_row(row, tuple(attempt_from_row(a) for a in attempts))

    async def list_notifications(
        self,
        status: Status | None = None,
        recipient_id: int | None = None,
        limit: int = 50,
        before_id: int | None = None,
        search: str | None = None,
    ) -> list[Notification]:
        if search is not None and "\x00" in search:
            return []  # no stored text holds a NUL (PostgreSQL cannot), and the query would fail on it
        query, params = sql.list_query(status, recipient_id, limit, before_id, search)
        rows = await self._all(query, *params)
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        attempts: dict[int, list[Attempt]] = {i: [] for i in ids}
        for a in await self._all("SELECT * FROM attempts WHERE notification_id = ANY ($1::bigint[]) ORDER BY id", ids):
            attempts[a["notification_id"]].append(attempt_from_row(a))
        return [notification_from_row(r, tuple(attempts[r["id"]])) for r in rows]

    async def cancel(self, notification_id: int, now: datetime) -> Notification:
        async with self._tx() as conn:
            await sql.cancel(conn, notification_id, now)
            await postgres_sms.end_receipt_waits(conn, notification_id, now)  # the SMS ledger's rule
        return await self._must_notification(notification_id)

    async def redrive(self, notification_id: int, now: datetime) -> Notification:
        async with self._tx() as conn:
            await sql.redrive(conn, notification_id, now)
        return await self._must_notification(notification_id)

    async def _must_notification(self, notification_id: int) -> Notification:
        notification = await self.get_notification(notification_id)
        if notification is None:  # pruned or removed by another daemon in between
            raise NotFound(f"notification {notification_id} does not exist")
        return notification

    # -- the engine's side (its SQL is in daemon.storage.postgres_engine) --------------------

    async def recover_interrupted(self, now: datetime, owner: str) -> int:
        async with self._tx() as conn:
            # a daemon of this machine that died (killed, crashed) left live leases: no need to wait them out
            await cluster_sql.take_back_from_gone(conn, owner, now)
            return await engine_sql.recover(conn, owner, now)

    async def claim_due(self, now: datetime, limit: int, owner: str, lease_until: datetime) -> list[Notification]:
        with translate("claiming due notifications"):
            async with self._p.acquire() as conn:
                rows = await engine_sql.claim(conn, owner, now, lease_until, limit)
        return [notification_from_row(r) for r in rows]

    async def renew_leases(self, owner: str, ids: Collection[int], until: datetime) -> set[int]:
        if not ids:
            return set()
        with translate("renewing leases"):
            async with self._p.acquire() as conn:
                return await engine_sql.renew(conn, owner, ids, until)

    async def next_due_time(self) -> datetime | None:
        row = await self._one("SELECT min(next_attempt_at) FROM notifications WHERE claimed_by IS NULL")
        return row[0] if row else None

    async def start_attempt(
        self, notification_id: int, channel: Channel, now: datetime, tries: int, owner: str | None = None
    ) -> int:
        async with self._tx() as conn:
            return await engine_sql.start(conn, notification_id, channel, now, tries, owner)

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
        async with self._tx() as conn:
            aid, started, status = await engine_sql.finish(
                conn, attempt_id, notification_id, channel, record, update, now, owner
            )
        return engine_sql.attempt_of(aid, notification_id, channel, record, started, now), Status(status)

    async def skip_then_start(
        self, skip: Skip, notification_id: int, channel: Channel, now: datetime, tries: int, owner: str | None = None
    ) -> tuple[Attempt, Status, int | None]:
        async with self._tx() as conn:
            aid, started, status = await engine_sql.finish(
                conn, None, notification_id, skip.channel, skip.record, skip.update, skip.at, owner
            )
            # the fence above locked the row for the whole transaction: no second one; cancelled while
            # walked (final): finish dropped the claim, nothing starts
            attempt_id = (None if status in FINAL_STATUSES
                          else await engine_sql.start(conn, notification_id, channel, now, tries, None))
        return engine_sql.attempt_of(aid, notification_id, skip.channel, skip.record, started, skip.at), \
            Status(status), attempt_id

    async def release_claim(
        self, notification_id: int, now: datetime, due: datetime, error: str, owner: str | None = None
    ) -> None:
        async with self._tx() as conn:
            await engine_sql.release(conn, notification_id, now, due, error, owner)

    async def awaiting_ack(self, notification_id: int) -> bool:
        row = await self._one("SELECT awaiting_ack FROM notifications WHERE id = $1", notification_id)
        return bool(row and row[0])

    # -- the Telegram bot's side -------------------------------------------------------------

    async def create_link_token(self, recipient_id: int, token: str, now: datetime, expires_at: datetime) -> None:
        async with self._tx() as conn:
            await sql.insert_link_token(conn, recipient_id, token, now, expires_at)

    async def redeem_link_token(self, token: str, chat_id: int, now: datetime) -> LinkRedemption:
        async with self._tx() as conn:
            outcome, recipient_id, holder_id = await sql.redeem_link_token(conn, token, chat_id, now)
        recipient = await self.get_recipient(recipient_id) if recipient_id is not None else None
        holder = await self.get_recipient(holder_id) if holder_id is not None else None
        return LinkRedemption(outcome, recipient, holder)

    async def acknowledge(self, notification_id: int, chat_id: int, now: datetime) -> AckResult:
        async with self._tx() as conn:
            outcome = await sql.acknowledge(conn, notification_id, chat_id, now)
        if outcome is AckOutcome.NOT_FOUND:  # perhaps another chat's: say nothing about it
            return AckResult(outcome)
        return AckResult(outcome, await self.get_notification(notification_id))

    # -- operators -------------------------------------------------------------------------

    async def backup(self, path: Path) -> int:
        raise BackupUnsupported(
            "fnotify backup copies a SQLite database; this daemon stores its data in PostgreSQL"
            f" ({self.url.display}): back that up with pg_dump (or your PostgreSQL backups) instead"
        )

    async def prune(self, before: datetime) -> int:
        """Delete final notifications last updated before ``before`` (attempts go by ON DELETE CASCADE), in
        slices so that one prune never holds many row locks for long."""
        total = 0
        while True:
            with translate("pruning"):
                result = await self._p.execute(
                    "DELETE FROM notifications WHERE id IN (SELECT id FROM notifications"
                    " WHERE status = ANY ($1::text[]) AND updated_at < $2 AND claimed_by IS NULL"
                    " LIMIT $3 FOR UPDATE SKIP LOCKED)",
                    sql.FINAL, before, PRUNE_SLICE,
                )
            deleted = int(result.split()[-1])  # "DELETE <n>"
            total += deleted
            if deleted < PRUNE_SLICE:
                await self.prune_batches(before)
                return total

    async def get_paused(self) -> bool:
        row = await self._one("SELECT paused FROM cluster_state")
        return bool(row and row[0])

    async def set_paused(self, paused: bool, now: datetime, by: str) -> None:
        """Stored, then announced on ``fnotify_paused`` in the same transaction (sent at its commit)."""
        async with self._tx() as conn:
            await conn.execute("UPDATE cluster_state SET paused = $1, changed_by = $2, changed_at = $3",
                               paused, by, now)
            await conn.execute("SELECT pg_notify('fnotify_paused', $1)", f"{by} {'true' if paused else 'false'}")

    # -- the cluster's bookkeeping (its SQL is in daemon.storage.postgres_cluster) --------------

    async def heartbeat(self, owner: str, started_at: datetime, now: datetime, stale_before: datetime) -> None:
        async with self._tx("heartbeat") as conn:
            await cluster_sql.heartbeat(conn, owner, started_at, now, stale_before)

    async def leave(self, owner: str) -> None:
        async with self._tx("leaving the cluster") as conn:
            await cluster_sql.leave(conn, owner)

    async def members(self) -> list[Member]:
        with translate("database read"):
            async with self._p.acquire() as conn:
                return await cluster_sql.members(conn, datetime.now(UTC))

    async def lead(self, role: str, owner: str, now: datetime, until: datetime) -> bool:
        with translate(f"taking or renewing the {role} lease"):
            async with self._p.acquire() as conn:
                return await cluster_sql.lead(conn, role, owner, now, until)

    async def first_time_update(self, update_id: int, now: datetime) -> bool:
        async with self._tx("recording a Telegram update") as conn:
            return await cluster_sql.first_time_update(conn, update_id, now)

    async def ping(self) -> None:
        """Raise StorageError unless the database answers a read; for ``/readyz``."""
        await self._one("SELECT 1 FROM notifications LIMIT 1")

    async def counts_by_status(self) -> dict[str, int]:
        rows = await self._all("SELECT status, count(*) FROM notifications GROUP BY status")
        return {r[0]: r[1] for r in rows}

    async def channel_health(self, since: datetime) -> dict[str, dict[str, int]]:
        rows = await self._all(
            "SELECT channel, outcome, count(*) FROM attempts WHERE finished_at >= $1 GROUP BY channel, outcome", since
        )
        health: dict[str, dict[str, int]] = {}
        for channel, outcome, count in rows:
            health.setdefault(channel, {})[outcome] = count
        return health

    async def channel_activity(self, since: datetime, buckets: int, step: float) -> dict[str, ChannelActivity]:
        """As the SQLite store's (sqlite_health): attempts per channel, bucket and outcome, newest durations."""
        end = since + timedelta(seconds=buckets * step)
        rows = await self._all(
            "SELECT channel, outcome, floor(extract(epoch FROM finished_at - $1) / $3)::integer AS bucket, count(*)"
            " FROM attempts WHERE finished_at >= $1 AND finished_at < $2 AND outcome IS NOT NULL"
            " GROUP BY channel, outcome, bucket",
            since, end, step,
        )
        series: dict[str, dict[str, list[int]]] = {}
        for channel, outcome, bucket, count in rows:
            per_outcome = series.setdefault(channel, {str(o): [0] * buckets for o in Outcome})
            if outcome in per_outcome and 0 <= bucket < buckets:
                per_outcome[outcome][bucket] = count
        activity: dict[str, ChannelActivity] = {}
        for channel, per_outcome in series.items():
            durations = await self._all(
                "SELECT extract(epoch FROM finished_at - started_at)::float8 FROM attempts WHERE finished_at >= $1"
                " AND finished_at < $2 AND channel = $3 AND outcome = ANY ($4::text[]) ORDER BY finished_at DESC"
                " LIMIT $5",
                since, end, channel, sorted(str(o) for o in TIMED_OUTCOMES), MAX_DURATIONS,
            )
            activity[channel] = ChannelActivity(per_outcome, tuple(max(d[0], 0.0) for d in durations))
        return activity

