"""The PostgreSQL store's recipient groups and batch sends (mixed into ``PostgresStore``).

The same rules as the SQLite store's (``daemon/storage/sqlite_groups.py``), for several daemons at once:
a batch is inserted in one transaction (all members or none); sends with the same idempotency key, a
batch's or a single notification's, take a transaction advisory lock on the key first, so the second of
a race waits for the first to commit and then finds its batch (one batch, never two).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from daemon.core.errors import Conflict, NotFound, ValidationError
from daemon.core.groups import MAX_MEMBERS, Batch, BatchMember, Group, NewBatch, key_conflict, payload_differences
from daemon.core.models import Attempt, Status
from daemon.storage.postgres_access import PostgresAccess
from daemon.storage.postgres_rows import attempt_from_row, notification_from_row
from daemon.storage.postgres_writes import lock_key, storable

if TYPE_CHECKING:
    from daemon.storage.postgres_writes import Conn

async def _group_id(conn: Conn, name: str, lock: str = "") -> int:
    group_id = await conn.fetchval(f"SELECT id FROM groups WHERE name = $1 {lock}", name)
    if group_id is None:
        raise NotFound(f"group {name!r} does not exist")
    return int(group_id)


async def _check_recipients(conn: Conn, field: str, ids: Iterable[int]) -> None:
    """ValidationError naming ``field`` and the first id that is not a recipient; the others are locked
    (FOR KEY SHARE) until the transaction ends, so none can be removed before the members are written."""
    wanted = sorted(set(ids))
    found = {r[0] for r in await conn.fetch(
        "SELECT id FROM recipients WHERE id = ANY ($1::bigint[]) FOR KEY SHARE", wanted)}
    missing = next((r for r in wanted if r not in found), None)
    if missing is not None:
        raise ValidationError(field, f"recipient {missing} does not exist")


async def _check_size(conn: Conn, group_id: int) -> None:
    count = await conn.fetchval("SELECT count(*) FROM group_members WHERE group_id = $1", group_id)
    if count > MAX_MEMBERS:
        raise ValidationError("members", f"a group holds at most {MAX_MEMBERS} recipients ({count} given)")


async def _check_free(conn: Conn, name: str) -> None:
    if await conn.fetchval("SELECT 1 FROM groups WHERE name = $1", name) is not None:
        raise Conflict(f"group {name!r} already exists")


async def _insert_batch(conn: Conn, new: NewBatch, now: datetime) -> tuple[int, bool]:
    for field, value in (("message", new.text), ("subject", new.subject), ("idempotency_key", new.idempotency_key)):
        storable(value, field)
    key = new.idempotency_key
    if key is not None:
        await lock_key(conn, key)
        same = await conn.fetchrow("SELECT id, payload FROM batches WHERE idempotency_key = $1", key)
        if same is not None:
            differs = payload_differences(same["payload"], new)
            if differs:
                raise Conflict(key_conflict(key, f"batch {same['id']}", differs))
            return int(same["id"]), False
        single = await conn.fetchval("SELECT id FROM notifications WHERE idempotency_key = $1", key)
        if single is not None:
            raise Conflict(key_conflict(key, f"notification {single} (a send to one recipient)"))
    group_id = await _group_id(conn, new.group, "FOR KEY SHARE")
    members = [r[0] for r in await conn.fetch(
        "SELECT r.id FROM group_members m JOIN recipients r ON r.id = m.recipient_id WHERE m.group_id = $1"
        " ORDER BY r.id FOR KEY SHARE OF r", group_id)]
    if not members:
        raise ValidationError("group", f"group {new.group!r} has no members")
    batch_id = await conn.fetchval(
        "INSERT INTO batches (group_name, idempotency_key, payload, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        new.group, key, new.payload_text(), now)
    await conn.execute(
        "INSERT INTO notifications (recipient_id, text, subject, chain, status, next_attempt_at, deadline,"
        " ack_timeout, created_at, updated_at, priority, batch_id)"
        " SELECT r, $2, $3, $4, $5, $6, $7, $8, $6, $6, $9, $10 FROM unnest($1::bigint[]) AS r",
        members, new.text, new.subject, [str(c) for c in new.chain], str(Status.QUEUED), now, new.deadline,
        new.ack_timeout, new.priority.rank, batch_id)
    return int(batch_id), True


class PostgresGroups(PostgresAccess):
    """The group and batch methods of ``PostgresStore``."""

    async def add_group(self, name: str, members: Collection[int], now: datetime) -> Group:
        async with self._tx() as conn:
            await _check_free(conn, name)
            await _check_recipients(conn, "members", members)
            group_id = await conn.fetchval("INSERT INTO groups (name, created_at) VALUES ($1, $2) RETURNING id",
                                           name, now)
            await conn.execute("INSERT INTO group_members (group_id, recipient_id)"
                               " SELECT $1, unnest($2::bigint[])", group_id, sorted(set(members)))
            await _check_size(conn, group_id)
        return await self._must_group(name)

    async def get_group(self, name: str) -> Group | None:
        row = await self._one("SELECT g.name, g.created_at, coalesce(array_agg(m.recipient_id ORDER BY"
                              " m.recipient_id) FILTER (WHERE m.recipient_id IS NOT NULL), '{}') AS members"
                              " FROM groups g LEFT JOIN group_members m ON m.group_id = g.id WHERE g.name = $1"
                              " GROUP BY g.id", name)
        return Group(row["name"], tuple(row["members"]), row["created_at"]) if row else None

    async def _must_group(self, name: str) -> Group:
        group = await self.get_group(name)
        if group is None:  # removed in between, by this daemon or another
            raise NotFound(f"group {name!r} does not exist")
        return group

    async def list_groups(self) -> list[Group]:
        rows = await self._all("SELECT g.name, g.created_at, coalesce(array_agg(m.recipient_id ORDER BY"
                               " m.recipient_id) FILTER (WHERE m.recipient_id IS NOT NULL), '{}') AS members"
                               " FROM groups g LEFT JOIN group_members m ON m.group_id = g.id"
                               " GROUP BY g.id ORDER BY g.name")
        return [Group(r["name"], tuple(r["members"]), r["created_at"]) for r in rows]

    async def update_group(self, name: str, *, rename: str | None = None, members: Collection[int] | None = None,
                           add: Collection[int] = (), remove: Collection[int] = ()) -> Group:
        async with self._tx() as conn:
            group_id = await _group_id(conn, name, "FOR UPDATE")
            if rename is not None and rename != name:
                await _check_free(conn, rename)
                await conn.execute("UPDATE groups SET name = $2 WHERE id = $1", group_id, rename)
            if members is not None:  # replace: the new list is what is added to an emptied group
                await _check_recipients(conn, "members", members)
                await conn.execute("DELETE FROM group_members WHERE group_id = $1", group_id)
                add = members
            else:
                await _check_recipients(conn, "add", add)
            await conn.execute("INSERT INTO group_members (group_id, recipient_id) SELECT $1, unnest($2::bigint[])"
                               " ON CONFLICT DO NOTHING", group_id, sorted(set(add)))
            await conn.execute("DELETE FROM group_members WHERE group_id = $1 AND recipient_id = ANY ($2::bigint[])",
                               group_id, sorted(set(remove)))
            await _check_size(conn, group_id)
        return await self._must_group(rename or name)

    async def remove_group(self, name: str) -> None:
        async with self._tx() as conn:
            if await conn.fetchval("DELETE FROM groups WHERE name = $1 RETURNING id", name) is None:
                raise NotFound(f"group {name!r} does not exist")

    async def create_batch(self, new: NewBatch, now: datetime) -> tuple[Batch, bool]:
        async with self._tx() as conn:
            batch_id, created = await _insert_batch(conn, new, now)
        batch = await self.get_batch(batch_id)
        if batch is None:  # pruned in between: only possible for a repeat of a long-finished batch
            raise NotFound(f"batch {batch_id} does not exist")
        return batch, created

    async def get_batch(self, batch_id: int) -> Batch | None:
        row = await self._one("SELECT * FROM batches WHERE id = $1", batch_id)
        if row is None:
            return None
        rows = await self._all("SELECT n.*, r.name AS recipient_name FROM notifications n LEFT JOIN recipients r"
                               " ON r.id = n.recipient_id WHERE n.batch_id = $1 ORDER BY n.recipient_id, n.id",
                               batch_id)
        attempts: dict[int, list[Attempt]] = {r["id"]: [] for r in rows}
        for a in await self._all("SELECT a.* FROM attempts a JOIN notifications n ON n.id = a.notification_id"
                                 " WHERE n.batch_id = $1 ORDER BY a.id", batch_id):
            attempts[a["notification_id"]].append(attempt_from_row(a))
        members = tuple(BatchMember(notification_from_row(r, tuple(attempts[r["id"]])), r["recipient_name"])
                        for r in rows)
        return Batch(row["id"], row["group_name"], row["idempotency_key"], row["created_at"], members)

    async def prune_batches(self, before: datetime) -> None:
        """As ``sqlite_groups.prune_batches``: batches whose notifications have all been pruned go."""
        async with self._tx("pruning") as conn:
            await conn.execute("DELETE FROM batches WHERE created_at < $1 AND NOT EXISTS"
                               " (SELECT 1 FROM notifications n WHERE n.batch_id = batches.id)", before)
