"""The SQLite store's recipient groups and batch sends (mixed into ``SqliteStore``).

Each write below is one write op of the group-commit writer: it runs inside the writer's ``BEGIN
IMMEDIATE`` transaction and its own savepoint, so a batch is all of its notifications or none, and the
idempotency check and the insert it guards are one atomic step (two sends with the same key, however
close, make one batch).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable
from datetime import UTC, datetime

from daemon.core.errors import Conflict, NotFound, ValidationError
from daemon.core.groups import MAX_MEMBERS, Batch, BatchMember, Group, NewBatch, key_conflict, payload_differences
from daemon.core.models import Attempt, Status
from daemon.storage.sqlite_access import SqliteAccess
from daemon.storage.sqlite_rows import attempt_from_row, notification_from_row, to_timestamp


def _group_id(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute("SELECT id FROM groups WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"group {name!r} does not exist")
    return int(row[0])


def _check_recipients(conn: sqlite3.Connection, field: str, ids: Iterable[int]) -> None:
    """ValidationError naming ``field`` and the first id that is not a recipient."""
    for recipient_id in sorted(set(ids)):
        if conn.execute("SELECT 1 FROM recipients WHERE id = ?", (recipient_id,)).fetchone() is None:
            raise ValidationError(field, f"recipient {recipient_id} does not exist")


def _check_free(conn: sqlite3.Connection, name: str) -> None:
    if conn.execute("SELECT 1 FROM groups WHERE name = ?", (name,)).fetchone() is not None:
        raise Conflict(f"group {name!r} already exists")


def _check_size(conn: sqlite3.Connection, group_id: int) -> None:
    count = conn.execute("SELECT count(*) FROM group_members WHERE group_id = ?", (group_id,)).fetchone()[0]
    if count > MAX_MEMBERS:
        raise ValidationError("members", f"a group holds at most {MAX_MEMBERS} recipients ({count} given)")


def insert_group(conn: sqlite3.Connection, name: str, members: Collection[int], ts: float) -> None:
    _check_free(conn, name)
    _check_recipients(conn, "members", members)
    group_id = conn.execute("INSERT INTO groups (name, created_at) VALUES (?, ?)", (name, ts)).lastrowid
    conn.executemany("INSERT INTO group_members (group_id, recipient_id) VALUES (?, ?)",
                     [(group_id, r) for r in sorted(set(members))])
    _check_size(conn, int(group_id or 0))


def update_group(conn: sqlite3.Connection, name: str, rename: str | None, members: Collection[int] | None,
                 add: Collection[int], remove: Collection[int]) -> None:
    group_id = _group_id(conn, name)
    if rename is not None and rename != name:
        _check_free(conn, rename)
        conn.execute("UPDATE groups SET name = ? WHERE id = ?", (rename, group_id))
    if members is not None:  # replace: the new list is what is added to an emptied group
        _check_recipients(conn, "members", members)
        conn.execute("DELETE FROM group_members WHERE group_id = ?", (group_id,))
        add = members
    else:
        _check_recipients(conn, "add", add)
    conn.executemany("INSERT OR IGNORE INTO group_members (group_id, recipient_id) VALUES (?, ?)",
                     [(group_id, r) for r in sorted(set(add))])
    conn.executemany("DELETE FROM group_members WHERE group_id = ? AND recipient_id = ?",
                     [(group_id, r) for r in sorted(set(remove))])
    _check_size(conn, group_id)


def delete_group(conn: sqlite3.Connection, name: str) -> None:
    if conn.execute("DELETE FROM groups WHERE name = ?", (name,)).rowcount == 0:
        raise NotFound(f"group {name!r} does not exist")


def insert_batch(conn: sqlite3.Connection, new: NewBatch, ts: float) -> tuple[int, bool]:
    """The new batch's id and True; or, for a key seen before, that batch's id and False."""
    key = new.idempotency_key
    if key is not None:
        same = conn.execute("SELECT id, payload FROM batches WHERE idempotency_key = ?", (key,)).fetchone()
        if same is not None:
            differs = payload_differences(same["payload"], new)
            if differs:
                raise Conflict(key_conflict(key, f"batch {same['id']}", differs))
            return int(same["id"]), False
        single = conn.execute("SELECT id FROM notifications WHERE idempotency_key = ?", (key,)).fetchone()
        if single is not None:
            raise Conflict(key_conflict(key, f"notification {single[0]} (a send to one recipient)"))
    group_id = _group_id(conn, new.group)
    members = [r[0] for r in conn.execute(
        "SELECT recipient_id FROM group_members WHERE group_id = ? ORDER BY recipient_id", (group_id,))]
    if not members:
        raise ValidationError("group", f"group {new.group!r} has no members")
    batch_id = conn.execute("INSERT INTO batches (group_name, idempotency_key, payload, created_at) VALUES (?,?,?,?)",
                            (new.group, key, new.payload_text(), ts)).lastrowid
    conn.executemany(
        "INSERT INTO notifications (recipient_id, text, subject, chain, status, next_attempt_at, deadline,"
        " ack_timeout, created_at, updated_at, priority, batch_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        [(r, new.text, new.subject, ",".join(new.chain), str(Status.QUEUED), ts, to_timestamp(new.deadline),
          new.ack_timeout, ts, ts, new.priority.rank, batch_id) for r in members],
    )
    return int(batch_id or 0), True


def unused_key(conn: sqlite3.Connection, key: str) -> None:
    """A send to one recipient may not take a key a batch has: Conflict."""
    row = conn.execute("SELECT id FROM batches WHERE idempotency_key = ?", (key,)).fetchone()
    if row is not None:
        raise Conflict(key_conflict(key, f"batch {row[0]} (a send to a group)"))


def prune_batches(conn: sqlite3.Connection, before: float) -> int:
    """Forget batches older than ``before`` whose notifications have all been pruned (their keys with them,
    as a pruned notification's key is)."""
    return conn.execute(
        "DELETE FROM batches WHERE created_at < ? AND NOT EXISTS"
        " (SELECT 1 FROM notifications n WHERE n.batch_id = batches.id)", (before,)).rowcount


class SqliteGroups(SqliteAccess):
    """The group and batch methods of ``SqliteStore``."""

    async def add_group(self, name: str, members: Collection[int], now: datetime) -> Group:
        await self._submit(lambda conn: insert_group(conn, name, members, now.timestamp()))
        return await self._must_group(name)

    async def get_group(self, name: str) -> Group | None:
        row = await self._one("SELECT id, name, created_at FROM groups WHERE name = ?", (name,))
        if row is None:
            return None
        ids = await self._all("SELECT recipient_id FROM group_members WHERE group_id = ? ORDER BY recipient_id",
                              (row["id"],))
        return Group(row["name"], tuple(r[0] for r in ids), datetime.fromtimestamp(row["created_at"], UTC))

    async def _must_group(self, name: str) -> Group:
        group = await self.get_group(name)
        if group is None:  # removed in between
            raise NotFound(f"group {name!r} does not exist")
        return group

    async def list_groups(self) -> list[Group]:
        members: dict[int, list[int]] = {}
        for row in await self._all("SELECT group_id, recipient_id FROM group_members ORDER BY recipient_id"):
            members.setdefault(row[0], []).append(row[1])
        return [Group(r["name"], tuple(members.get(r["id"], ())), datetime.fromtimestamp(r["created_at"], UTC))
                for r in await self._all("SELECT id, name, created_at FROM groups ORDER BY name")]

    async def update_group(self, name: str, *, rename: str | None = None, members: Collection[int] | None = None,
                           add: Collection[int] = (), remove: Collection[int] = ()) -> Group:
        await self._submit(lambda conn: update_group(conn, name, rename, members, add, remove))
        return await self._must_group(rename or name)

    async def remove_group(self, name: str) -> None:
        await self._submit(lambda conn: delete_group(conn, name))

    async def create_batch(self, new: NewBatch, now: datetime) -> tuple[Batch, bool]:
        batch_id, created = await self._submit(lambda conn: insert_batch(conn, new, now.timestamp()))
        batch = await self.get_batch(batch_id)
        if batch is None:  # pruned in between: only possible for a repeat of a long-finished batch
            raise NotFound(f"batch {batch_id} does not exist")
        return batch, created

    async def get_batch(self, batch_id: int) -> Batch | None:
        row = await self._one("SELECT * FROM batches WHERE id = ?", (batch_id,))
        if row is None:
            return None
        rows = await self._all("SELECT n.*, r.name AS recipient_name FROM notifications n LEFT JOIN recipients r"
                               " ON r.id = n.recipient_id WHERE n.batch_id = ? ORDER BY n.recipient_id, n.id",
                               (batch_id,))
        attempts: dict[int, list[Attempt]] = {r["id"]: [] for r in rows}
        for a in await self._all("SELECT a.* FROM attempts a JOIN notifications n ON n.id = a.notification_id"
                                 " WHERE n.batch_id = ? ORDER BY a.id", (batch_id,)):
            attempts[a["notification_id"]].append(attempt_from_row(a))
        members = tuple(BatchMember(notification_from_row(r, tuple(attempts[r["id"]])), r["recipient_name"])
                        for r in rows)
        return Batch(row["id"], row["group_name"], row["idempotency_key"],
                     datetime.fromtimestamp(row["created_at"], UTC), members)
