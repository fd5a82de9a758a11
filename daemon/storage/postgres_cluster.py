"""The cluster's bookkeeping on PostgreSQL: members' heartbeats, leadership leases, handled Telegram
updates (tables in migrations/postgres/0003_cluster.sql). Each function runs one statement or a short
transaction of its caller's."""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta

from daemon.core.store import UPDATE_RETENTION, Member
from daemon.storage.local_process import gone, node_id
from daemon.storage.postgres_writes import Conn

log = logging.getLogger(__name__)

LEAD = (
    "INSERT INTO cluster_leaders AS l (role, owner, lease_until) VALUES ($1, $2, $4)"
    " ON CONFLICT (role) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until"
    " WHERE l.owner = excluded.owner OR l.lease_until <= $3"
    " RETURNING owner"
)
"""Take or renew: the ON CONFLICT ... WHERE writes only the caller's own row or an expired one; the row
lock the upsert takes makes two daemons racing for an expired lease come out with one leader."""


async def heartbeat(conn: Conn, owner: str, started_at: datetime, now: datetime, stale_before: datetime) -> None:
    await conn.execute(
        "INSERT INTO cluster_members (id, host, pid, started_at, heartbeat_at, node) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        owner, socket.gethostname(), os.getpid(), started_at, now, node_id())
    await conn.execute("DELETE FROM cluster_members WHERE heartbeat_at < $1", stale_before)


async def leave(conn: Conn, owner: str) -> None:
    await conn.execute("DELETE FROM cluster_members WHERE id = $1", owner)
    await conn.execute("DELETE FROM cluster_leaders WHERE owner = $1", owner)


async def members(conn: Conn, now: datetime) -> list[Member]:
    leads: dict[str, list[str]] = {}
    for row in await conn.fetch("SELECT role, owner FROM cluster_leaders WHERE lease_until > $1", now):
        leads.setdefault(row["owner"], []).append(row["role"])
    rows = await conn.fetch("SELECT * FROM cluster_members ORDER BY started_at, id")
    return [Member(r["id"], r["host"], r["pid"], r["started_at"], r["heartbeat_at"], tuple(leads.get(r["id"], ())))
            for r in rows]


async def lead(conn: Conn, role: str, owner: str, now: datetime, until: datetime) -> bool:
    return bool(await conn.fetchval(LEAD, role, owner, now, until) == owner)


async def first_time_update(conn: Conn, update_id: int, now: datetime) -> bool:
    new = await conn.fetchval(
        "INSERT INTO telegram_updates (update_id, handled_at) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
        update_id, now)
    if new and update_id % 100 == 0:  # now and then, not on every update
        await conn.execute("DELETE FROM telegram_updates WHERE handled_at < $1",
                           now - timedelta(seconds=UPDATE_RETENTION))
    return bool(new)


TAKE_BACK = (
    "SELECT * FROM fnotify_release(ARRAY(SELECT id FROM notifications WHERE claimed_by = ANY ($1::text[])"
    " FOR UPDATE SKIP LOCKED), $2, $3)"
)
"""The rows the gone daemons ``$1`` held: locked as the take-over of expired leases locks them, then
released (open attempts recorded interrupted, the rows due now) by the schema's own fnotify_release."""


async def take_back_from_gone(conn: Conn, owner: str, now: datetime) -> dict[str, int]:
    """Members on this node (same boot, same pid namespace) whose process is gone: their claims are
    released at once, their member and leader rows deleted. Returns attempts interrupted per member.
    A live lease is otherwise never taken; here nothing can still be writing under it, because the
    process that held it no longer exists (``local_process.gone``), and any doubt keeps the lease."""
    node = node_id()
    if node is None:
        return {}
    rows = await conn.fetch("SELECT id, pid, started_at FROM cluster_members WHERE node = $1 AND id <> $2",
                            node, owner)
    dead = [r["id"] for r in rows if gone(r["pid"], r["started_at"])]
    if not dead:
        return {}
    taken = {r["previous_owner"]: int(r["interrupted_attempts"]) for r in await conn.fetch(TAKE_BACK, dead, now, owner)}
    await conn.execute("DELETE FROM cluster_members WHERE id = ANY ($1::text[])", dead)
    await conn.execute("DELETE FROM cluster_leaders WHERE owner = ANY ($1::text[])", dead)
    for member in dead:
        log.warning("daemon %s of this machine is gone (its process no longer runs): took its claims back at"
                    " once, %d attempt(s) it had in flight recorded interrupted, will retry",
                    member, taken.get(member, 0))
    return {member: taken.get(member, 0) for member in dead}
